// Decodes one captured frame for printing: the link layer (LINUX_SLL2, LINUX_SLL, Ethernet,
// raw IP, BSD loopback), IPv4/IPv6 with extension headers and fragments, the transport ports
// and TCP flags, ICMP/ICMPv6 messages (with the endpoints of the packet an error quotes) and ARP.
// The IP header is walked by packet/ip.ts, as the live judge walks it.
import { ipv4Text, ipv6Text } from '../packet/address';
import { walkIp } from '../packet/ip';
import { type Direction, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, flagsDirection, ipEthertype, linkLayer } from '../packet/link';
import { hasPorts, isIcmpError } from '../packet/protocols';


export interface Quoted {
  proto: string;
  src: string;
  sport: number | null;
  dst: string;
  dport: number | null;
}

export interface Decoded {
  /** From epb_flags, else from the SLL/SLL2 packet type; null when the file does not say. */
  direction: Direction;
  /** LINUX_SLL2 interface index. */
  ifindex: number | null;
  /** 'tcp', 'udp', 'icmp', 'icmp6', 'arp', ... */
  proto: string;
  src: string | null;
  sport: number | null;
  dst: string | null;
  dport: number | null;
  /**
   * tcpdump's length: the payload of a TCP or UDP segment; the IP payload of other IP
   * packets (an ICMP message); the frame after its link header for what is not IP.
   */
  len: number;
  /** Length of the packet from its network header (the IP length when the header says it). */
  iplen: number;
  /** Bytes of it (from the network header) captured. */
  caplen: number;
  /** TCP flags ("S", "SA", "FPA"...), null for other protocols or when not captured. */
  flags: string | null;
  /** A short description: the ICMP message, a fragment, an ARP operation. */
  info: string | null;
  /** For an ICMP error: the packet it quotes. */
  quoted: Quoted | null;
}

const ETHERTYPES: Record<number, string> = {
  0x0806: 'arp',
  0x8035: 'rarp',
  0x88cc: 'lldp',
  0x888e: 'eapol',
  0x8847: 'mpls',
  0x8848: 'mpls',
  0x8863: 'pppoed',
  0x8864: 'pppoes',
  0x88f7: 'ptp',
  0x8906: 'fcoe',
};

const IP_PROTOCOLS: Record<number, string> = {
  1: 'icmp',
  2: 'igmp',
  4: 'ipip',
  6: 'tcp',
  17: 'udp',
  41: 'ipv6',
  47: 'gre',
  50: 'esp',
  51: 'ah',
  58: 'icmp6',
  89: 'ospf',
  103: 'pim',
  112: 'vrrp',
  132: 'sctp',
  136: 'udplite',
};


/** TCP flags in bit order: FIN SYN RST PSH ACK URG ECE CWR. */
const FLAG_LETTERS = 'FSRPAUEC';

export function tcpFlagString(f: number): string {
  let s = '';
  for (let i = 0; i < 8; i++) if (f & (1 << i)) s += FLAG_LETTERS[i];
  return s;
}

function protoName(n: number): string {
  return IP_PROTOCOLS[n] ?? `ip-proto-${n}`;
}

const ICMP4_TYPES: Record<number, string> = {
  0: 'echo reply',
  3: 'unreachable',
  4: 'source quench',
  5: 'redirect',
  8: 'echo request',
  9: 'router advertisement',
  10: 'router solicitation',
  11: 'time exceeded',
  12: 'parameter problem',
  13: 'timestamp request',
  14: 'timestamp reply',
};
const ICMP4_UNREACH: Record<number, string> = {
  0: 'net unreachable',
  1: 'host unreachable',
  2: 'protocol unreachable',
  3: 'port unreachable',
  4: 'need to fragment',
  9: 'net prohibited',
  10: 'host prohibited',
  13: 'administratively prohibited',
};
const ICMP6_TYPES: Record<number, string> = {
  1: 'unreachable',
  2: 'packet too big',
  3: 'time exceeded',
  4: 'parameter problem',
  128: 'echo request',
  129: 'echo reply',
  130: 'multicast listener query',
  131: 'multicast listener report',
  132: 'multicast listener done',
  133: 'router solicitation',
  134: 'router advertisement',
  135: 'neighbor solicitation',
  136: 'neighbor advertisement',
  137: 'redirect',
  143: 'multicast listener report v2',
};
const ICMP6_UNREACH: Record<number, string> = {
  0: 'no route',
  1: 'administratively prohibited',
  2: 'beyond scope',
  3: 'address unreachable',
  4: 'port unreachable',
  5: 'source address failed policy',
  6: 'reject route',
};

interface Ip {
  proto: number;
  src: string;
  dst: string;
  /** IP length from the header, or undefined when the header does not say (IPv6 jumbogram). */
  len?: number;
  /** Offset of the transport header (in the buffer given). */
  l4: number;
  /** A fragment that is not the first: no transport header in it. */
  laterFragment: boolean;
  fragment: boolean;
}

function ip(d: Buffer, o: number, ethertype: number): Ip | undefined {
  if (ethertype !== ETHERTYPE_IPV4 && ethertype !== ETHERTYPE_IPV6) return undefined;
  const h = walkIp(d, o);
  if (!h || h.version !== (ethertype === ETHERTYPE_IPV4 ? 4 : 6)) return undefined;
  return {
    proto: h.proto,
    src: h.version === 4 ? ipv4Text(d, h.src) : ipv6Text(d, h.src),
    dst: h.version === 4 ? ipv4Text(d, h.dst) : ipv6Text(d, h.dst),
    len: h.len,
    l4: h.l4,
    laterFragment: !!h.fragment && h.fragment.offset !== 0,
    fragment: !!h.fragment,
  };
}

/** What tcpdump calls a packet's length: the transport payload of TCP and UDP, else the IP payload. */
function payloadLength(d: Buffer, h: Ip, ipPayload: number): number {
  if (ipPayload < 0) return 0;
  if (h.laterFragment) return ipPayload;
  if (h.proto === 6 && d.length > h.l4 + 12) return Math.max(0, ipPayload - (d[h.l4 + 12] >> 4) * 4);
  if (h.proto === 17 || h.proto === 136) return Math.max(0, ipPayload - 8);
  return ipPayload;
}

function ports(d: Buffer, h: Ip): { sport: number | null; dport: number | null } {
  if (!hasPorts(h.proto) || h.laterFragment || d.length < h.l4 + 4) return { sport: null, dport: null };
  return { sport: d.readUInt16BE(h.l4), dport: d.readUInt16BE(h.l4 + 2) };
}

function icmpInfo(d: Buffer, h: Ip): { info: string | null; quoted: Quoted | null } {
  if (h.laterFragment || d.length < h.l4 + 2) return { info: null, quoted: null };
  const type = d[h.l4];
  const code = d[h.l4 + 1];
  const v6 = h.proto === 58;
  const typeName = (v6 ? ICMP6_TYPES : ICMP4_TYPES)[type] ?? `type ${type}`;
  let info = typeName;
  const isError = isIcmpError(v6 ? 6 : 4, type);
  if (type === (v6 ? 1 : 3)) info = (v6 ? ICMP6_UNREACH : ICMP4_UNREACH)[code] ?? `unreachable code ${code}`;
  else if (code !== 0) info += ` code ${code}`;
  let quoted: Quoted | null = null;
  if (isError && d.length >= h.l4 + 8) {
    const q = d.subarray(h.l4 + 8);
    const et = ipEthertype(q, 0);
    const inner = et >= 0 ? ip(q, 0, et) : undefined;
    if (inner) {
      const p = ports(q, inner);
      quoted = { proto: protoName(inner.proto), src: inner.src, sport: p.sport, dst: inner.dst, dport: p.dport };
    }
  }
  return { info, quoted };
}

function arp(d: Buffer, o: number): { src: string | null; dst: string | null; info: string | null } {
  // htype 2, ptype 2, hlen 1, plen 1, op 2, sha, spa, tha, tpa
  if (d.length < o + 8) return { src: null, dst: null, info: null };
  const hlen = d[o + 4];
  const plen = d[o + 5];
  const op = d.readUInt16BE(o + 6);
  const info = op === 1 ? 'request' : op === 2 ? 'reply' : `operation ${op}`;
  if (plen !== 4 || d.length < o + 8 + 2 * hlen + 8) return { src: null, dst: null, info };
  return { src: ipv4Text(d, o + 8 + hlen), dst: ipv4Text(d, o + 8 + 2 * hlen + 4), info };
}

/**
 * Decodes a frame. `origLen` is its length on the wire with the link header; `flags` the
 * block's epb_flags (pcapng), which give the direction where the link layer does not.
 */
export function decode(linktype: number, data: Buffer, origLen: number, flags?: number): Decoded {
  const l = linkLayer(linktype, data);
  const direction = flagsDirection(flags) ?? l.direction;
  const wire = Math.max(0, origLen - l.hdr);
  const captured = Math.max(0, data.length - l.hdr);
  const out: Decoded = {
    direction,
    ifindex: l.ifindex,
    proto: '',
    src: null,
    sport: null,
    dst: null,
    dport: null,
    len: wire,
    iplen: wire,
    caplen: Math.min(captured, wire),
    flags: null,
    info: null,
    quoted: null,
  };
  if (l.other !== undefined) {
    out.proto = l.other;
    return out;
  }
  const h = ip(data, l.hdr, l.ethertype);
  if (!h) {
    if (l.ethertype === ETHERTYPE_ARP) Object.assign(out, arp(data, l.hdr));
    out.proto =
      l.ethertype === ETHERTYPE_IPV4 ? 'ipv4' : l.ethertype === ETHERTYPE_IPV6 ? 'ipv6' : l.ethertype < 0 ? 'unknown' : ETHERTYPES[l.ethertype] ?? `ethertype-0x${l.ethertype.toString(16).padStart(4, '0')}`;
    if (out.proto === 'ipv4' || out.proto === 'ipv6')
      out.info = data.length < l.hdr + (out.proto === 'ipv4' ? 20 : 40) ? 'header not captured' : 'bad header';
    return out;
  }
  // the IP length: what the wire carried of the packet, without any link-layer padding
  if (h.len !== undefined && h.len <= wire) {
    out.iplen = h.len;
    out.caplen = Math.min(captured, h.len);
  }
  out.len = payloadLength(data, h, out.iplen - (h.l4 - l.hdr));
  out.proto = protoName(h.proto);
  out.src = h.src;
  out.dst = h.dst;
  const p = ports(data, h);
  out.sport = p.sport;
  out.dport = p.dport;
  if (h.proto === 6 && !h.laterFragment && data.length > h.l4 + 13) out.flags = tcpFlagString(data[h.l4 + 13]);
  if (h.proto === 1 || h.proto === 58) {
    const i = icmpInfo(data, h);
    out.info = i.info;
    out.quoted = i.quoted;
  }
  if (h.fragment) out.info = out.info ? `${out.info}, fragment` : 'fragment';
  return out;
}
