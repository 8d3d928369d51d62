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

/** The IP header at `at`, or undefined when there is no whole fixed header of version 4 or 6. */
export function walkIp(d: Buffer, at = 0): IpHeader | undefined {
  if (d.length < at + 1) return undefined;
  const version = d[at] >> 4;
  if (version === 4) {
    if (d.length < at + 20) return undefined;
    const ihl = (d[at] & 0x0f) * 4;
    if (ihl < 20) return undefined;
    const frag = d.readUInt16BE(at + 6);
    const offset = frag & 0x1fff;
    const more = (frag & 0x2000) !== 0;
    return {
      version,
      proto: d[at + 9],
      src: at + 12,
      dst: at + 16,
      addrLen: 4,
      len: d.readUInt16BE(at + 2),
      l4: at + ihl,
      fragment: offset || more ? { id: d.readUInt16BE(at + 4), offset, more } : undefined,
      truncated: d.length < at + ihl,
    };
  }
  if (version !== 6 || d.length < at + 40) return undefined;
  const payload = d.readUInt16BE(at + 4);
  let next = d[at + 6];
  let l4 = at + 40;
  let fragment: IpHeader['fragment'];
  let truncated = false;
  for (let hops = 0; ; hops++) {
    const extension = IPV6_EXTENSIONS.has(next) || next === IPV6_AH || next === IPV6_FRAGMENT;
    if (!extension) break;
    if (hops === IPV6_MAX_EXTENSIONS || d.length < l4 + (next === IPV6_FRAGMENT ? 8 : 2)) {
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
  if (l4 > d.length) truncated = true;
  return { version, proto: next, src: at + 8, dst: at + 24, addrLen: 16, len: payload === 0 ? undefined : 40 + payload, l4, fragment, truncated };
}
