// Finds the transport endpoints of a packet (from its network header): TCP/UDP ports, the
// packet an ICMP/ICMPv6 error quotes, and fragments. Addresses stay as raw bytes (latin1
// strings) so that table lookups cost no formatting.

import { walkIp } from './ip';
import {
  ICMP6_ECHO_REPLY,
  ICMP6_ECHO_REQUEST,
  ICMP_ECHO_REPLY,
  ICMP_ECHO_REQUEST,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPPROTO_UDPLITE,
  isIcmpError,
} from './protocols';

export { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE };

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
  const h = walkIp(d);
  if (!h || h.truncated) return undefined;
  const family = h.version;
  const src = family === 4 ? ip4(d, h.src) : d.toString('latin1', h.src, h.src + 16);
  const dst = family === 4 ? ip4(d, h.dst) : d.toString('latin1', h.dst, h.dst + 16);
  const fragment = h.fragment && { id: h.fragment.id, first: h.fragment.offset === 0 };
  const { proto, l4 } = h;
  if (isTransport(proto)) return transport(family, proto, src, dst, d, l4, fragment);
  const icmp = family === 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6;
  if (proto !== icmp || fragment || d.length < l4 + 8) return undefined;
  const type = d[l4];
  if (type === (family === 4 ? ICMP_ECHO_REQUEST : ICMP6_ECHO_REQUEST)) return echo(family, proto, src, dst, d, l4, true);
  if (type === (family === 4 ? ICMP_ECHO_REPLY : ICMP6_ECHO_REPLY)) return echo(family, proto, src, dst, d, l4, false);
  if (!inner && isIcmpError(family, type)) return quoted(d, l4 + 8);
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
