// Protocol numbers and message types, one home for all of the project's packet code (the
// judge, the reader, the filters, the name and key extraction).

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_ICMPV6 = 58;
export const IPPROTO_SCTP = 132;
export const IPPROTO_UDPLITE = 136;
/** IPv6 extension headers walked over: hop-by-hop, routing, destination options, mobility, HIP, shim6. */
export const IPV6_EXTENSIONS: ReadonlySet<number> = new Set([0, 43, 60, 135, 139, 140]);
export const IPV6_FRAGMENT = 44;
export const IPV6_AH = 51;
/** At most this many IPv6 extension headers are walked. */
export const IPV6_MAX_EXTENSIONS = 16;

export const ICMP_ECHO_REPLY = 0;
export const ICMP_ECHO_REQUEST = 8;
export const ICMP6_ECHO_REQUEST = 128;
export const ICMP6_ECHO_REPLY = 129;
/** ICMP errors, which quote the packet they answer: unreachable, source quench, redirect, time exceeded, parameter problem. */
export const ICMP_ERRORS: readonly number[] = [3, 4, 5, 11, 12];
/** ICMPv6 errors: unreachable, packet too big, time exceeded, parameter problem. */
export const ICMP6_ERRORS: readonly number[] = [1, 2, 3, 4];

export function isIcmpError(version: 4 | 6, type: number): boolean {
  return version === 4 ? ICMP_ERRORS.includes(type) : type >= 1 && type <= 4;
}

/** Protocols whose header starts with 16-bit source and destination ports. */
export function hasPorts(proto: number): boolean {
  return proto === IPPROTO_TCP || proto === IPPROTO_UDP || proto === IPPROTO_UDPLITE || proto === IPPROTO_SCTP;
}

// ICMP request/response pairs: the responder's "port" of a flow is the other half's type (as
// Zeek and Community ID have it); any other message is one-way.
const ICMP4_PAIRS: Record<number, number> = { 8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 10: 9, 9: 10, 17: 18, 18: 17 };
const ICMP6_PAIRS: Record<number, number> = { 128: 129, 129: 128, 133: 134, 134: 133, 135: 136, 136: 135, 130: 131, 131: 130, 144: 145, 145: 144, 139: 140, 140: 139 };

/** The type of the other half of an ICMP or ICMPv6 request/response pair; undefined for a one-way message. */
export function icmpCounterpart(proto: number, type: number): number | undefined {
  return (proto === IPPROTO_ICMP ? ICMP4_PAIRS : ICMP6_PAIRS)[type];
}
