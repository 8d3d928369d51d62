// A small pcap reader for the capture tests: classic pcap (µs or ns, either byte order) with
// LINUX_SLL2 (276), LINUX_SLL (113), Ethernet (1) or raw IP (12/101/228/229) link layers;
// decodes IPv4/IPv6 + TCP/UDP and ICMP/ICMPv6 errors (with the quoted packet's tuple).
import { createHash } from 'node:crypto';
import fs from 'node:fs';

export const LINKTYPE_LINUX_SLL = 113;
export const LINKTYPE_LINUX_SLL2 = 276;

export interface PcapFile {
  nanosecond: boolean;
  linktype: number;
  snaplen: number;
  packets: Packet[];
  /** Records the reader could not decode as IP (with the reason), by record number (1-based). */
  undecoded: string[];
}

export interface Packet {
  /** 1-based record number in its file. */
  no: number;
  /** Epoch milliseconds (ns precision kept as far as a double does). */
  ms: number;
  capLen: number;
  origLen: number;
  /** SLL/SLL2 packet type (0 host, 4 outgoing...), -1 when the link layer has none. */
  pkttype: number;
  ifindex: number;
  /** 'tcp' | 'udp' | 'icmp' | 'icmp6' | other protocol number as text. */
  proto: string;
  ipVersion: 4 | 6;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  /** IP total length (IPv4) or 40 + payload length (IPv6): the length on the wire. */
  ipLen: number;
  tcpFlags: number;
  seq: number;
  ack: number;
  /** TCP/UDP payload length on the wire (from the headers, not the capture). */
  payloadLen: number;
  /** For ICMP errors: the quoted packet's transport tuple (as sent by its sender). */
  inner?: { proto: string; src: string; dst: string; sport: number; dport: number };
  /** The IP packet bytes as captured. */
  ip: Buffer;
}

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;

export function flagString(f: number): string {
  const names: [number, string][] = [
    [TCP_SYN, 'S'],
    [TCP_FIN, 'F'],
    [TCP_RST, 'R'],
    [TCP_PSH, 'P'],
    [TCP_ACK, '.'],
  ];
  return names
    .filter(([b]) => f & b)
    .map(([, n]) => n)
    .join('');
}

function ipv4(b: Buffer, o: number): string {
  return `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
}

function ipv6(b: Buffer, o: number): string {
  const g: string[] = [];
  for (let i = 0; i < 8; i++) g.push(b.readUInt16BE(o + 2 * i).toString(16));
  return canonIp(g.join(':'));
}

/**
 * Canonical text of an IP address, so that the fixture's getsockname() text and the
 * decoder's agree: IPv4 dotted quad (also for IPv4-mapped IPv6), IPv6 as 8 lowercase hex
 * groups with the longest run of zero groups compressed (RFC 5952), no zone.
 */
export function canonIp(a: string): string {
  a = a.split('%')[0].toLowerCase();
  if (!a.includes(':')) return a;
  const m = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  let groups: number[];
  const parse = (s: string) => (s === '' ? [] : s.split(':').map((x) => parseInt(x, 16)));
  let tail: number[] = [];
  let head = a;
  if (m) {
    const q = m[2].split('.').map(Number);
    tail = [(q[0] << 8) | q[1], (q[2] << 8) | q[3]];
    head = m[1].endsWith('::') ? m[1] : m[1].slice(0, -1);
  }
  if (head.includes('::')) {
    const [l, r] = head.split('::');
    const left = parse(l);
    const right = [...parse(r), ...tail];
    groups = [...left, ...new Array(8 - left.length - right.length).fill(0), ...right];
  } else {
    groups = [...parse(head), ...tail];
  }
  if (groups.length !== 8 || groups.some((x) => Number.isNaN(x))) return a;
  if (groups.slice(0, 5).every((x) => x === 0) && groups[5] === 0xffff)
    return `${groups[6] >> 8}.${groups[6] & 255}.${groups[7] >> 8}.${groups[7] & 255}`;
  // longest run of zeros (length >= 2)
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

interface L4 {
  proto: string;
  sport: number;
  dport: number;
  tcpFlags: number;
  seq: number;
  ack: number;
  payloadLen: number;
}

function l4(b: Buffer, o: number, protoNum: number, l4Len: number): L4 {
  const r: L4 = { proto: String(protoNum), sport: 0, dport: 0, tcpFlags: 0, seq: 0, ack: 0, payloadLen: 0 };
  if (protoNum === 6) {
    r.proto = 'tcp';
    if (b.length >= o + 4) {
      r.sport = b.readUInt16BE(o);
      r.dport = b.readUInt16BE(o + 2);
    }
    if (b.length >= o + 14) {
      r.seq = b.readUInt32BE(o + 4);
      r.ack = b.readUInt32BE(o + 8);
      r.tcpFlags = b[o + 13];
      r.payloadLen = l4Len - (b[o + 12] >> 4) * 4;
    }
  } else if (protoNum === 17) {
    r.proto = 'udp';
    if (b.length >= o + 4) {
      r.sport = b.readUInt16BE(o);
      r.dport = b.readUInt16BE(o + 2);
    }
    r.payloadLen = l4Len - 8;
  } else if (protoNum === 1) r.proto = 'icmp';
  else if (protoNum === 58) r.proto = 'icmp6';
  return r;
}

interface IpInfo {
  version: 4 | 6;
  src: string;
  dst: string;
  protoNum: number;
  ipLen: number;
  l4Off: number;
}

function ipHeader(b: Buffer, o: number): IpInfo | string {
  if (b.length < o + 1) return 'empty';
  const v = b[o] >> 4;
  if (v === 4) {
    if (b.length < o + 20) return 'short IPv4 header';
    const ihl = (b[o] & 15) * 4;
    return {
      version: 4,
      src: ipv4(b, o + 12),
      dst: ipv4(b, o + 16),
      protoNum: b[o + 9],
      ipLen: b.readUInt16BE(o + 2),
      l4Off: o + ihl,
    };
  }
  if (v === 6) {
    if (b.length < o + 40) return 'short IPv6 header';
    let nh = b[o + 6];
    let off = o + 40;
    // skip hop-by-hop, routing, destination options extension headers
    while ((nh === 0 || nh === 43 || nh === 60) && b.length >= off + 2) {
      const next = b[off];
      off += (b[off + 1] + 1) * 8;
      nh = next;
    }
    return {
      version: 6,
      src: ipv6(b, o + 8),
      dst: ipv6(b, o + 24),
      protoNum: nh,
      ipLen: 40 + b.readUInt16BE(o + 4),
      l4Off: off,
    };
  }
  return `IP version ${v}`;
}

function decodeIp(b: Buffer): Omit<Packet, 'no' | 'ms' | 'capLen' | 'origLen' | 'pkttype' | 'ifindex'> | string {
  const h = ipHeader(b, 0);
  if (typeof h === 'string') return h;
  const t = l4(b, h.l4Off, h.protoNum, h.ipLen - h.l4Off);
  const p: Omit<Packet, 'no' | 'ms' | 'capLen' | 'origLen' | 'pkttype' | 'ifindex'> = {
    proto: t.proto,
    ipVersion: h.version,
    src: h.src,
    dst: h.dst,
    sport: t.sport,
    dport: t.dport,
    ipLen: h.ipLen,
    tcpFlags: t.tcpFlags,
    seq: t.seq,
    ack: t.ack,
    payloadLen: t.payloadLen,
    ip: b,
  };
  const o = h.l4Off;
  const isErr =
    (t.proto === 'icmp' && [3, 4, 5, 11, 12].includes(b[o])) ||
    (t.proto === 'icmp6' && [1, 2, 3, 4].includes(b[o]));
  if (isErr && b.length > o + 8) {
    const ih = ipHeader(b, o + 8);
    if (typeof ih !== 'string') {
      const it = l4(b, ih.l4Off, ih.protoNum, ih.ipLen - ih.l4Off);
      p.inner = { proto: it.proto, src: ih.src, dst: ih.dst, sport: it.sport, dport: it.dport };
    }
  }
  return p;
}

/** Reads a classic pcap file (throws on a bad header or a truncated record). */
export function readPcap(file: string): PcapFile {
  const buf = fs.readFileSync(file);
  if (buf.length < 24) throw new Error(`${file}: ${buf.length} bytes, no pcap header`);
  const m = buf.readUInt32LE(0);
  let le: boolean;
  let ns: boolean;
  if (m === 0xa1b2c3d4 || m === 0xa1b23c4d) {
    le = true;
    ns = m === 0xa1b23c4d;
  } else {
    const mb = buf.readUInt32BE(0);
    if (mb !== 0xa1b2c3d4 && mb !== 0xa1b23c4d) throw new Error(`${file}: bad magic ${m.toString(16)}`);
    le = false;
    ns = mb === 0xa1b23c4d;
  }
  const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const snaplen = u32(16);
  const linktype = u32(20) & 0x0fffffff;
  const packets: Packet[] = [];
  const undecoded: string[] = [];
  let off = 24;
  let no = 0;
  while (off < buf.length) {
    if (off + 16 > buf.length) throw new Error(`${file}: truncated record header at ${off}`);
    no++;
    const sec = u32(off);
    const frac = u32(off + 4);
    const capLen = u32(off + 8);
    const origLen = u32(off + 12);
    off += 16;
    if (off + capLen > buf.length) throw new Error(`${file}: record ${no} truncated (${capLen} bytes at ${off})`);
    const data = buf.subarray(off, off + capLen);
    off += capLen;
    const ms = sec * 1000 + (ns ? frac / 1e6 : frac / 1e3);
    let pkttype = -1;
    let ifindex = 0;
    let ipOff = 0;
    let ethertype = 0;
    if (linktype === LINKTYPE_LINUX_SLL2) {
      if (capLen < 20) {
        undecoded.push(`#${no}: short SLL2 header`);
        continue;
      }
      ethertype = data.readUInt16BE(0);
      ifindex = data.readUInt32BE(4);
      pkttype = data[10];
      ipOff = 20;
    } else if (linktype === LINKTYPE_LINUX_SLL) {
      if (capLen < 16) {
        undecoded.push(`#${no}: short SLL header`);
        continue;
      }
      pkttype = data.readUInt16BE(0);
      ethertype = data.readUInt16BE(14);
      ipOff = 16;
    } else if (linktype === 1) {
      ethertype = data.readUInt16BE(12);
      ipOff = 14;
      while (ethertype === 0x8100 && capLen >= ipOff + 4) {
        ethertype = data.readUInt16BE(ipOff + 2);
        ipOff += 4;
      }
    } else if (linktype === 12 || linktype === 101) {
      ethertype = data[0] >> 4 === 6 ? 0x86dd : 0x0800;
    } else if (linktype === 228) ethertype = 0x0800;
    else if (linktype === 229) ethertype = 0x86dd;
    else throw new Error(`${file}: unsupported linktype ${linktype}`);
    if (ethertype !== 0x0800 && ethertype !== 0x86dd) {
      undecoded.push(`#${no}: ethertype 0x${ethertype.toString(16)}`);
      continue;
    }
    const d = decodeIp(data.subarray(ipOff));
    if (typeof d === 'string') {
      undecoded.push(`#${no}: ${d}`);
      continue;
    }
    packets.push({ no, ms, capLen, origLen, pkttype, ifindex, ...d });
  }
  return { nanosecond: ns, linktype, snaplen, packets, undecoded };
}

/**
 * Identity of a wire packet, the same in tracedump's file and the oracle's: addresses, ports,
 * IP length and a hash of the first `prefix` captured bytes of the IP packet (TCP seq/ack,
 * flags, timestamps, IP id, payload: distinct packets differ there).
 */
export function packetKey(p: Packet, prefix = Infinity): string {
  const n = Math.min(p.ip.length, prefix);
  const h = createHash('sha1').update(p.ip.subarray(0, n)).digest('hex').slice(0, 16);
  return `${p.proto} ${p.src}.${p.sport}>${p.dst}.${p.dport} len=${p.ipLen} ${h}`;
}

/** One line describing a packet for failure messages. */
export function describe(p: Packet): string {
  const t = (p.ms / 1000).toFixed(6);
  const addr = (a: string, port: number) => (a.includes(':') ? `[${a}]:${port}` : `${a}:${port}`);
  let s = `${t} ${p.proto} ${addr(p.src, p.sport)} > ${addr(p.dst, p.dport)} len=${p.ipLen}`;
  if (p.proto === 'tcp') s += ` [${flagString(p.tcpFlags)}] seq=${p.seq} ack=${p.ack} data=${p.payloadLen}`;
  else if (p.proto === 'udp') s += ` data=${p.payloadLen}`;
  if (p.inner) s += ` quoting ${p.inner.proto} ${addr(p.inner.src, p.inner.sport)} > ${addr(p.inner.dst, p.inner.dport)}`;
  return s;
}
