// Classic pcap with nanosecond timestamps and LINUX_SLL2 link headers (they keep the
// interface index and the direction). Pure: it only makes bytes.

import { LINKTYPE_LINUX_SLL2 } from '../packet/link';
import { PCAP_MAGIC_NSEC, PCAP_RECORD_HEADER_SIZE, SLL2_HEADER_SIZE } from './pcap-spec';

export { LINKTYPE_LINUX_SLL2, PCAP_MAGIC_NSEC, PCAP_RECORD_HEADER_SIZE, SLL2_HEADER_SIZE };

export function pcapFileHeader(snaplen: number, linktype = LINKTYPE_LINUX_SLL2): Buffer {
  const b = Buffer.alloc(24);
  b.writeUInt32LE(PCAP_MAGIC_NSEC, 0);
  b.writeUInt16LE(2, 4);
  b.writeUInt16LE(4, 6);
  b.writeInt32LE(0, 8); // thiszone
  b.writeUInt32LE(0, 12); // sigfigs
  b.writeUInt32LE(snaplen + SLL2_HEADER_SIZE, 16);
  b.writeUInt32LE(linktype, 20);
  return b;
}

export interface SllPacket {
  sec: number;
  nsec: number;
  /** Length on the wire of the network-layer packet. */
  len: number;
  ifindex: number;
  /** Ethertype of the network layer (0x0800 IPv4, 0x86dd IPv6). */
  protocol: number;
  /** ARPHRD_* type of the interface. */
  hatype: number;
  /** PACKET_* direction (0 to us, 4 outgoing). */
  pkttype: number;
  /** The packet from its network header. */
  data: Buffer;
}

/**
 * A packet's capture time in ms since the epoch, as every judge and writer of it takes it (the
 * native path, native/fast_path.cc, does the same arithmetic in doubles).
 */
export function captureMs(p: { sec: number; nsec: number }): number {
  return p.sec * 1000 + p.nsec / 1e6;
}

/** Bytes one record takes. */
export function pcapRecordSize(p: SllPacket): number {
  return PCAP_RECORD_HEADER_SIZE + SLL2_HEADER_SIZE + p.data.length;
}

/** Writes one record at `at` in `out` (which must have room); returns the next offset. */
export function writePcapRecord(out: Buffer, at: number, p: SllPacket): number {
  u32le(out, at, p.sec);
  u32le(out, at + 4, p.nsec);
  u32le(out, at + 8, p.data.length + SLL2_HEADER_SIZE);
  u32le(out, at + 12, p.len + SLL2_HEADER_SIZE);
  const h = at + PCAP_RECORD_HEADER_SIZE;
  writeSll2Header(out, h, p);
  out.set(p.data, h + SLL2_HEADER_SIZE);
  return h + SLL2_HEADER_SIZE + p.data.length;
}

/** The 20-byte LINUX_SLL2 header of a packet (pcap and pcapng alike). */
export function writeSll2Header(out: Buffer, h: number, p: SllPacket): void {
  out[h] = p.protocol >>> 8;
  out[h + 1] = p.protocol;
  out[h + 2] = 0;
  out[h + 3] = 0;
  const i = p.ifindex >>> 0;
  out[h + 4] = i >>> 24;
  out[h + 5] = i >>> 16;
  out[h + 6] = i >>> 8;
  out[h + 7] = i;
  out[h + 8] = p.hatype >>> 8;
  out[h + 9] = p.hatype;
  out[h + 10] = p.pkttype;
  for (let k = 11; k < SLL2_HEADER_SIZE; k++) out[h + k] = 0; // address length, address
}

// Byte stores and TypedArray.set rather than Buffer's write and copy methods: a record is
// written for every packet, and these stay cheap before the JIT has warmed up too.
export function u32le(out: Buffer, at: number, v: number): void {
  out[at] = v;
  out[at + 1] = v >>> 8;
  out[at + 2] = v >>> 16;
  out[at + 3] = v >>> 24;
}
