// The one walk over an IPv4 or IPv6 header to the transport header: options, IPv6 extension
// headers (AH included) and fragments. Every reader of packets (the live judge, `tracedump
// read`, the DNS and TLS extraction) goes through it, so they agree on what a packet is.
import { IPV6_AH, IPV6_EXTENSIONS, IPV6_FRAGMENT, IPV6_MAX_EXTENSIONS } from './protocols';

export interface IpHeader {
  version: 4 | 6;
  /** The transport protocol (after IPv6 extension headers). */
  proto: number;
  /** Offsets of the source and destination addresses, and their length (4 or 16). */
  src: number;
  dst: number;
  addrLen: 4 | 16;
  /** The packet's length from its header; undefined when the header does not say (a jumbogram). */
  len: number | undefined;
  /** Offset of the transport header (past the IP header and its extensions). */
  l4: number;
  /** A fragment: the datagram's id, this fragment's offset in 8-byte units, more to come. */
  fragment: { id: number; offset: number; more: boolean } | undefined;
  /** The extension headers ran past the captured bytes (or past the walk's limit): l4 is where the walk stopped. */
  truncated: boolean;
}

/**
 * The IP header at `at`, or undefined when there is no whole fixed header of version 4 or 6.
 * `into`: an object to fill and return instead of a new one (a reader of every packet of a
 * large file reuses one); `end`: where the packet's captured bytes end in d (default: d's end).
 */
export function walkIp(d: Buffer, at = 0, into?: IpHeader, end = d.length): IpHeader | undefined {
  if (end < at + 1) return undefined;
  const version = d[at] >> 4;
  if (version === 4) {
    if (end < at + 20) return undefined;
    const ihl = (d[at] & 0x0f) * 4;
    if (ihl < 20) return undefined;
    const frag = d.readUInt16BE(at + 6);
    const offset = frag & 0x1fff;
    const more = (frag & 0x2000) !== 0;
    return fill(into, version, d[at + 9], at + 12, at + 16, 4, d.readUInt16BE(at + 2), at + ihl, offset || more ? { id: d.readUInt16BE(at + 4), offset, more } : undefined, end < at + ihl);
  }
  if (version !== 6 || end < at + 40) return undefined;
  const payload = d.readUInt16BE(at + 4);
  let next = d[at + 6];
  let l4 = at + 40;
  let fragment: IpHeader['fragment'];
  let truncated = false;
  for (let hops = 0; ; hops++) {
    const extension = IPV6_EXTENSIONS.has(next) || next === IPV6_AH || next === IPV6_FRAGMENT;
    if (!extension) break;
    if (hops === IPV6_MAX_EXTENSIONS || end < l4 + (next === IPV6_FRAGMENT ? 8 : 2)) {
      truncated = true;
      break;
    }
    if (next === IPV6_FRAGMENT) {
      const word = d.readUInt16BE(l4 + 2);
      fragment = { id: d.readUInt32BE(l4 + 4), offset: word >> 3, more: (word & 1) !== 0 };
      next = d[l4];
      l4 += 8;
    } else {
      const len = next === IPV6_AH ? (d[l4 + 1] + 2) * 4 : (d[l4 + 1] + 1) * 8;
      next = d[l4];
      l4 += len;
    }
  }
  if (l4 > end) truncated = true;
  return fill(into, version, next, at + 8, at + 24, 16, payload === 0 ? undefined : 40 + payload, l4, fragment, truncated);
}

function fill(
  into: IpHeader | undefined,
  version: 4 | 6,
  proto: number,
  src: number,
  dst: number,
  addrLen: 4 | 16,
  len: number | undefined,
  l4: number,
  fragment: IpHeader['fragment'],
  truncated: boolean,
): IpHeader {
  if (!into) return { version, proto, src, dst, addrLen, len, l4, fragment, truncated };
  into.version = version;
  into.proto = proto;
  into.src = src;
  into.dst = dst;
  into.addrLen = addrLen;
  into.len = len;
  into.l4 = l4;
  into.fragment = fragment;
  into.truncated = truncated;
  return into;
}
