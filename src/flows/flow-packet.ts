// One captured frame as the flow table needs it: time, addresses and ports (ICMP: type and
// code), lengths, TCP header fields, the transport payload, which way it went and the process
// behind it. Built from a file's record (tracedump flows) or from the live capture's packets.
import { walkIp } from '../packet/ip';
import { type Direction, ETHERTYPE_IPV4, ETHERTYPE_IPV6, flagsDirection, linkLayer } from '../packet/link';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP } from '../packet/protocols';

export interface PacketProcess {
  pid: number | null;
  tid: number | null;
  comm: string | null;
  exe: string | null;
}

export interface FlowPacket {
  /** Capture time in microseconds since the epoch. */
  us: number;
  version: 4 | 6;
  proto: number;
  /** Address bytes (latin1 strings, 4 or 16 characters). */
  src: string;
  dst: string;
  /** TCP/UDP ports; ICMP: type and code. */
  sport: number;
  dport: number;
  /** The IP packet's length (header included), as the header says. */
  ipLen: number;
  /** Transport payload length from the IP length (more than captured when the snap length cut it). */
  payloadLen: number;
  /** The captured part of the transport payload. */
  payload: Buffer;
  tcpFlags: number;
  seq: number;
  ack: number;
  window: number;
  /** From the program's side: 'out' sent by it, 'in' received; null when the file does not say. */
  direction: Direction;
  /** The process behind the packet (asked once per flow: reading it may parse a comment). */
  process: () => PacketProcess;
}

export const NO_PROCESS: PacketProcess = { pid: null, tid: null, comm: null, exe: null };
const noProcess = () => NO_PROCESS;

/**
 * The flow view of a frame, or undefined when it is not a whole-enough IPv4/IPv6 packet of a
 * protocol with flows (later fragments, non-IP frames and other protocols are not).
 */
export function flowPacket(
  linktype: number,
  data: Buffer,
  us: number,
  flags: number | undefined,
  process: () => PacketProcess = noProcess,
): FlowPacket | undefined {
  const l = linkLayer(linktype, data);
  if (l.other !== undefined || (l.ethertype !== ETHERTYPE_IPV4 && l.ethertype !== ETHERTYPE_IPV6)) return undefined;
  const h = walkIp(data, l.hdr);
  if (!h || h.truncated || (h.fragment && h.fragment.offset !== 0)) return undefined;
  const ipLen = h.len ?? data.length - l.hdr;
  const l4 = h.l4;
  const l4Len = ipLen - (l4 - l.hdr);
  const src = data.toString('latin1', h.src, h.src + h.addrLen);
  const dst = data.toString('latin1', h.dst, h.dst + h.addrLen);
  const p: FlowPacket = {
    us,
    version: h.version,
    proto: h.proto,
    src,
    dst,
    sport: 0,
    dport: 0,
    ipLen,
    payloadLen: 0,
    payload: EMPTY,
    tcpFlags: 0,
    seq: 0,
    ack: 0,
    window: 0,
    direction: flagsDirection(flags) ?? l.direction,
    process,
  };
  if (h.proto === IPPROTO_TCP) {
    if (data.length < l4 + 20) return undefined;
    const off = (data[l4 + 12] >> 4) * 4;
    p.sport = data.readUInt16BE(l4);
    p.dport = data.readUInt16BE(l4 + 2);
    p.seq = data.readUInt32BE(l4 + 4);
    p.ack = data.readUInt32BE(l4 + 8);
    p.tcpFlags = data[l4 + 13];
    p.window = data.readUInt16BE(l4 + 14);
    p.payloadLen = Math.max(0, l4Len - off);
    p.payload = data.subarray(Math.min(data.length, l4 + off), Math.min(data.length, l4 + off + p.payloadLen));
  } else if (h.proto === IPPROTO_UDP) {
    if (data.length < l4 + 8) return undefined;
    p.sport = data.readUInt16BE(l4);
    p.dport = data.readUInt16BE(l4 + 2);
    p.payloadLen = Math.max(0, l4Len - 8);
    p.payload = data.subarray(l4 + 8, Math.min(data.length, l4 + 8 + p.payloadLen));
  } else if (h.proto === IPPROTO_ICMP || h.proto === IPPROTO_ICMPV6) {
    if (data.length < l4 + 4) return undefined;
    p.sport = data[l4];
    p.dport = data[l4 + 1];
    p.payloadLen = Math.max(0, l4Len - 8);
    p.payload = data.subarray(Math.min(data.length, l4 + 8), Math.min(data.length, l4 + l4Len));
  } else {
    return undefined;
  }
  return p;
}

const EMPTY = Buffer.alloc(0);
