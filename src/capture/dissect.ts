// Finds the transport endpoints of a packet (from its network header): TCP/UDP ports, the
// packet an ICMP/ICMPv6 error quotes, and fragments. Addresses stay as raw bytes (latin1
// strings) so that table lookups cost no formatting.

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_UDPLITE = 136;
export const IPPROTO_ICMPV6 = 58;

export interface Endpoints {
  family: 4 | 6;
  proto: number;
  /** Raw address bytes as a latin1 string (4 or 16 chars). */
  src: string;
  dst: string;
  sport: number;
  dport: number;
}

export interface Dissected extends Endpoints {
  /** TCP flags byte (0 for other protocols). */
  tcpFlags: number;
  /** TCP sequence number (0 for other protocols). */
  tcpSeq: number;
  /** Set when the packet is an ICMP error: the endpoints are those of the packet it quotes. */
  icmpError: boolean;
  /** A fragment: (src,dst,proto,id) identifies its datagram; ports are known only in the first. */
  fragment?: { id: number; first: boolean };
  /** Where the transport payload starts in the packet; -1 when unknown (ICMP errors, later fragments). */
  payload: number;
}

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_ACK = 0x10;

const IPV6_EXT = new Set([0, 43, 60]);
const IPV6_FRAGMENT = 44;

function isTransport(p: number): boolean {
  return p === IPPROTO_TCP || p === IPPROTO_UDP || p === IPPROTO_UDPLITE;
}

/**
 * An ICMP echo (types 8/0, ICMPv6 128/129) as a ping socket's kernel sees it: the identifier is
 * the pinger's port, the other end's is 0 (request: sport = id, dport = 0; reply: the reverse).
 */
function echo(family: 4 | 6, proto: number, src: string, dst: string, d: Buffer, l4: number, request: boolean): Dissected | undefined {
  if (d.length < l4 + 8) return undefined;
  const id = d.readUInt16BE(l4 + 4);
  return {
    family,
    proto,
    src,
    dst,
    sport: request ? id : 0,
    dport: request ? 0 : id,
    tcpFlags: 0,
    tcpSeq: 0,
    icmpError: false,
    fragment: undefined,
    payload: l4 + 8,
  };
}

/** Returns undefined for packets that are not IPv4/IPv6 TCP, UDP, ICMP echoes or ICMP errors about them. */
export function dissect(d: Buffer, inner = false): Dissected | undefined {
  if (d.length < 1) return undefined;
  const version = d[0] >> 4;
  if (version === 4) return dissect4(d, inner);
  if (version === 6) return dissect6(d, inner);
  return undefined;
}

function transport(
  family: 4 | 6,
  proto: number,
  src: string,
  dst: string,
  d: Buffer,
  l4: number,
  fragment: Dissected['fragment'],
): Dissected | undefined {
  if (fragment && !fragment.first)
    return { family, proto, src, dst, sport: 0, dport: 0, tcpFlags: 0, tcpSeq: 0, icmpError: false, fragment, payload: -1 };
  if (d.length < l4 + 4) return undefined;
  return {
    family,
    proto,
    src,
    dst,
    sport: d.readUInt16BE(l4),
    dport: d.readUInt16BE(l4 + 2),
    tcpFlags: proto === IPPROTO_TCP && d.length > l4 + 13 ? d[l4 + 13] : 0,
    tcpSeq: proto === IPPROTO_TCP && d.length >= l4 + 8 ? d.readUInt32BE(l4 + 4) : 0,
    icmpError: false,
    fragment,
    payload: proto !== IPPROTO_TCP ? l4 + 8 : d.length > l4 + 12 ? l4 + (d[l4 + 12] >> 4) * 4 : -1,
  };
}

function quoted(d: Buffer, at: number): Dissected | undefined {
  const q = dissect(d.subarray(at), true);
  return q && !q.icmpError ? { ...q, icmpError: true, fragment: undefined, payload: -1 } : undefined;
}

// The last two IPv4 addresses made: a flow's packets name the same two, either way round, so
// they share the strings (no new ones to allocate, hash and collect for every packet).
const recentAddresses = new Int32Array([0, 0]);
const recentStrings = ['', ''];

function ip4(d: Buffer, at: number): string {
  const n = (d[at] << 24) | (d[at + 1] << 16) | (d[at + 2] << 8) | d[at + 3];
  if (n === recentAddresses[0] && recentStrings[0] !== '') return recentStrings[0];
  if (n === recentAddresses[1] && recentStrings[1] !== '') return recentStrings[1];
  // (four bytes: cheaper than a call into Buffer's latin1 decoder)
  const s = String.fromCharCode(d[at], d[at + 1], d[at + 2], d[at + 3]);
  recentAddresses[1] = recentAddresses[0];
  recentStrings[1] = recentStrings[0];
  recentAddresses[0] = n;
  recentStrings[0] = s;
  return s;
}

function dissect4(d: Buffer, inner: boolean): Dissected | undefined {
  if (d.length < 20) return undefined;
  const ihl = (d[0] & 0x0f) * 4;
  if (ihl < 20 || d.length < ihl) return undefined;
  const proto = d[9];
  const src = ip4(d, 12);
  const dst = ip4(d, 16);
  const frag = d.readUInt16BE(6);
  const offset = frag & 0x1fff;
  const more = (frag & 0x2000) !== 0;
  const fragment = offset || more ? { id: d.readUInt16BE(4), first: offset === 0 } : undefined;
  if (isTransport(proto)) return transport(4, proto, src, dst, d, ihl, fragment);
  if (proto === IPPROTO_ICMP && !fragment && d.length >= ihl + 8) {
    const type = d[ihl];
    if (type === 8 || type === 0) return echo(4, proto, src, dst, d, ihl, type === 8);
    if (!inner && (type === 3 || type === 4 || type === 11 || type === 12)) return quoted(d, ihl + 8);
  }
  return undefined;
}

function dissect6(d: Buffer, inner: boolean): Dissected | undefined {
  if (d.length < 40) return undefined;
  const src = d.toString('latin1', 8, 24);
  const dst = d.toString('latin1', 24, 40);
  let next = d[6];
  let at = 40;
  let fragment: Dissected['fragment'];
  for (let hops = 0; hops < 8; hops++) {
    if (IPV6_EXT.has(next)) {
      if (d.length < at + 2) return undefined;
      const len = (d[at + 1] + 1) * 8;
      next = d[at];
      at += len;
    } else if (next === IPV6_FRAGMENT) {
      if (d.length < at + 8) return undefined;
      const off = d.readUInt16BE(at + 2) >> 3;
      fragment = { id: d.readUInt32BE(at + 4), first: off === 0 };
      next = d[at];
      at += 8;
    } else break;
  }
  if (isTransport(next)) return transport(6, next, src, dst, d, at, fragment);
  if (next === IPPROTO_ICMPV6 && !fragment && d.length >= at + 8) {
    const type = d[at];
    if (type === 128 || type === 129) return echo(6, next, src, dst, d, at, type === 128);
    if (!inner && type >= 1 && type <= 4) return quoted(d, at + 8);
  }
  return undefined;
}
