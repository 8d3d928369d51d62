// One captured frame as the flow table needs it: time, the flow key (both directions alike)
// and which end sent it, lengths, TCP header fields, the transport payload, which way it went
// from the program's side and the process behind it. Built from a file's record (tracedump
// flows) or from the live capture's packets.
//
// This runs for every packet of files of millions: one FlowPacket is filled again for each
// frame (valid until the next), the key is one string, and addresses, payload and process are
// made only when asked (at a flow's start, for its first payloads).
import { type IpHeader, walkIp } from '../packet/ip';
import {
  type Direction,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  LINKTYPE_ETHERNET,
  LINKTYPE_LINUX_SLL2,
  LINKTYPE_RAW,
  flagsDirection,
  linkLayer,
  sllDirection,
} from '../packet/link';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, icmpCounterpart } from '../packet/protocols';
import type { CaptureRecord } from '../read/reader';

export interface PacketProcess {
  pid: number | null;
  tid: number | null;
  comm: string | null;
  exe: string | null;
}

export const NO_PROCESS: PacketProcess = { pid: null, tid: null, comm: null, exe: null };
const noProcess = () => NO_PROCESS;

export class FlowPacket {
  /** Capture time in microseconds since the epoch. */
  us = 0;
  version: 4 | 6 = 4;
  proto = 0;
  /** A hash of the flow key (the protocol and both ends, the lower first; ICMP one-way: as sent). */
  keyHash = 0;
  /** The key's bytes (keyBytes[0, keyLength)), valid until the next packet. */
  keyBytes: Buffer = EMPTY;
  keyLength = 0;
  /** The sender is the key's first end. */
  first = true;
  /** TCP/UDP ports; ICMP: type and code. */
  sport = 0;
  dport = 0;
  /** The IP packet's length (header included), as the header says. */
  ipLen = 0;
  /** Transport payload length from the IP length (more than captured when the snap length cut it). */
  payloadLen = 0;
  tcpFlags = 0;
  seq = 0;
  ack = 0;
  window = 0;
  /** From the program's side: 'out' sent by it, 'in' received; null when the file does not say. */
  direction: Direction = null;
  /** The process behind the packet (asked once per flow: reading it may parse a comment). */
  process: () => PacketProcess = noProcess;

  data: Buffer = EMPTY;
  srcAt = 0;
  dstAt = 0;
  addrLen = 4;
  payloadAt = 0;
  payloadEnd = 0;

  /** Address bytes (latin1 strings, 4 or 16 characters). */
  get src(): string {
    return this.data.toString('latin1', this.srcAt, this.srcAt + this.addrLen);
  }

  get dst(): string {
    return this.data.toString('latin1', this.dstAt, this.dstAt + this.addrLen);
  }

  /** The flow key as a string (made for a new flow; lookups compare the bytes). */
  get key(): string {
    return this.keyBytes.toString('latin1', 0, this.keyLength);
  }

  /** Whether a flow's key (a string from `key`) is this packet's. */
  keyIs(key: string): boolean {
    if (key.length !== this.keyLength) return false;
    for (let i = 0; i < key.length; i++) if (key.charCodeAt(i) !== this.keyBytes[i]) return false;
    return true;
  }

  /** The captured part of the transport payload (a view: valid until the next packet). */
  get payload(): Buffer {
    return this.payloadAt >= this.payloadEnd ? EMPTY : this.data.subarray(this.payloadAt, this.payloadEnd);
  }
}

const EMPTY = Buffer.alloc(0);

/** A capture time (seconds and nanoseconds) as flow packets keep it: microseconds since the epoch. */
export function captureUs(sec: number, nsec: number): number {
  return sec * 1e6 + Math.floor(nsec / 1000);
}

/** Fills one FlowPacket per frame. */
export class FlowPacketReader {
  private readonly p = new FlowPacket();
  private readonly ip = {} as IpHeader;
  private readonly keyBytes = Buffer.alloc(2 + 2 * (16 + 2));
  // the time of the last record that had one (a Simple Packet Block has none: it takes this)
  private lastUs = 0;

  /** The flow view of a capture file's record, read in place where the reader allows it. */
  readRecord(rec: CaptureRecord, process: () => PacketProcess = noProcess): FlowPacket | undefined {
    const us = rec.sec === undefined ? this.lastUs : captureUs(rec.sec, rec.nsec ?? 0);
    this.lastUs = us;
    return rec.dataBuffer !== undefined && rec.dataOffset !== undefined
      ? this.readAt(rec.iface.linktype, rec.dataBuffer, rec.dataOffset, rec.dataOffset + rec.caplen, us, rec.flags, process)
      : this.read(rec.iface.linktype, rec.data, us, rec.flags, process);
  }

  /**
   * The flow view of a frame, or undefined when it is not a whole-enough IPv4/IPv6 packet of a
   * protocol with flows (later fragments, non-IP frames and other protocols are not).
   */
  read(linktype: number, frame: Buffer, us: number, flags: number | undefined, process: () => PacketProcess = noProcess): FlowPacket | undefined {
    return this.readAt(linktype, frame, 0, frame.length, us, flags, process);
  }

  /** The same for a frame at data[start, end) (a reader's buffer: no view of the frame is made). */
  readAt(linktype: number, data: Buffer, start: number, end: number, us: number, flags: number | undefined, process: () => PacketProcess = noProcess): FlowPacket | undefined {
    let hdr: number;
    let linkDirection: Direction = null;
    if (linktype === LINKTYPE_LINUX_SLL2 && end - start >= 20) {
      const et = (data[start] << 8) | data[start + 1];
      if (et !== ETHERTYPE_IPV4 && et !== ETHERTYPE_IPV6) return undefined;
      hdr = start + 20;
      linkDirection = sllDirection(data[start + 10]);
    } else if (linktype === LINKTYPE_RAW) {
      hdr = start;
    } else if (linktype === LINKTYPE_ETHERNET && end - start >= 14 && ((data[start + 12] << 8) | data[start + 13]) === ETHERTYPE_IPV4) {
      hdr = start + 14;
    } else {
      const l = linkLayer(linktype, data.subarray(start, end));
      if (l.other !== undefined || (l.ethertype !== ETHERTYPE_IPV4 && l.ethertype !== ETHERTYPE_IPV6)) return undefined;
      hdr = start + l.hdr;
      linkDirection = l.direction;
    }
    const h = walkIp(data, hdr, this.ip, end);
    if (!h || h.truncated || (h.fragment && h.fragment.offset !== 0)) return undefined;
    const p = this.p;
    const ipLen = h.len ?? end - hdr;
    const l4 = h.l4;
    const l4Len = ipLen - (l4 - hdr);
    p.us = us;
    p.version = h.version;
    p.proto = h.proto;
    p.ipLen = ipLen;
    p.data = data;
    p.srcAt = h.src;
    p.dstAt = h.dst;
    p.addrLen = h.addrLen;
    p.tcpFlags = 0;
    p.seq = p.ack = p.window = 0;
    p.direction = flagsDirection(flags) ?? linkDirection;
    p.process = process;
    if (h.proto === IPPROTO_TCP) {
      if (end < l4 + 20) return undefined;
      const off = (data[l4 + 12] >> 4) * 4;
      p.sport = (data[l4] << 8) | data[l4 + 1];
      p.dport = (data[l4 + 2] << 8) | data[l4 + 3];
      p.seq = data.readUInt32BE(l4 + 4);
      p.ack = data.readUInt32BE(l4 + 8);
      p.tcpFlags = data[l4 + 13];
      p.window = (data[l4 + 14] << 8) | data[l4 + 15];
      p.payloadLen = Math.max(0, l4Len - off);
      p.payloadAt = Math.min(end, l4 + off);
      p.payloadEnd = Math.min(end, l4 + off + p.payloadLen);
    } else if (h.proto === IPPROTO_UDP) {
      if (end < l4 + 8) return undefined;
      p.sport = (data[l4] << 8) | data[l4 + 1];
      p.dport = (data[l4 + 2] << 8) | data[l4 + 3];
      p.payloadLen = Math.max(0, l4Len - 8);
      p.payloadAt = l4 + 8;
      p.payloadEnd = Math.min(end, l4 + 8 + p.payloadLen);
    } else if (h.proto === IPPROTO_ICMP || h.proto === IPPROTO_ICMPV6) {
      if (end < l4 + 4) return undefined;
      p.sport = data[l4];
      p.dport = data[l4 + 1];
      p.payloadLen = Math.max(0, l4Len - 8);
      p.payloadAt = Math.min(end, l4 + 8);
      p.payloadEnd = Math.min(end, l4 + l4Len);
    } else {
      return undefined;
    }
    this.makeKey(p, data, h);
    return p;
  }

  /** proto, then the lower (address, port) end, then the other: one string for both directions. */
  private makeKey(p: FlowPacket, data: Buffer, h: IpHeader): void {
    const k = this.keyBytes;
    const n = h.addrLen;
    let sport = p.sport;
    let dport = p.dport;
    let oneWay = false;
    let tie = sport - dport;
    if (p.proto === IPPROTO_ICMP || p.proto === IPPROTO_ICMPV6) {
      const pair = icmpCounterpart(p.proto, p.sport);
      if (pair === undefined) oneWay = true;
      else {
        sport = dport = Math.min(p.sport, pair);
        tie = p.sport - pair; // a request and its reply between the same address: opposite ends
      }
    }
    let cmp = 0;
    if (oneWay) cmp = -1;
    else for (let i = 0; i < n && cmp === 0; i++) cmp = data[h.src + i] - data[h.dst + i];
    if (cmp === 0) cmp = tie;
    const first = cmp <= 0;
    const a = first ? h.src : h.dst;
    const b = first ? h.dst : h.src;
    const ap = first ? sport : dport;
    const bp = first ? dport : sport;
    k[0] = p.proto;
    for (let i = 0; i < n; i++) {
      k[1 + i] = data[a + i];
      k[3 + n + i] = data[b + i];
    }
    k[1 + n] = ap >> 8;
    k[2 + n] = ap & 0xff;
    k[3 + 2 * n] = bp >> 8;
    k[4 + 2 * n] = bp & 0xff;
    let len = 5 + 2 * n;
    if (oneWay) k[len++] = 0x3e; // '>': one way, as sent
    let hash = 0x811c9dc5; // FNV-1a
    for (let i = 0; i < len; i++) hash = Math.imul(hash ^ k[i], 0x01000193);
    p.keyBytes = k;
    p.keyLength = len;
    p.keyHash = hash;
    p.first = first;
  }
}
