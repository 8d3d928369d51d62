// Reads the packet records of a capture batch (layout in native/capture.h).
import type { SllPacket } from '../output/pcap';

export { captureMs } from '../output/pcap';

export const RECORD_HEADER_SIZE = 28;

export const PACKET_HOST = 0;
export const PACKET_OUTGOING = 4;
export const ARPHRD_LOOPBACK = 772;

/** Record flag: not wanted (-i/-f); the reader passes over it. */
const RECORD_SKIP = 1;

/** A captured packet: what a pcap record needs, plus its captured length. */
export interface PacketRecord extends SllPacket {
  /** Bytes captured (data.length; data is a view into the batch). */
  caplen: number;
}

/**
 * The records of a batch. A batch is the kernel ring's block itself: a record's header sits
 * right before its data, and `gap` bytes (the next frame's kernel headers) may separate a
 * record's data from the next record. (An array, not a generator: this runs for every packet,
 * and a generator's steps cost the most before the JIT has warmed up.)
 */
export function readRecords(batch: Buffer): PacketRecord[] {
  const out: PacketRecord[] = [];
  for (let at = 0; at + RECORD_HEADER_SIZE <= batch.length; at = recordEnd(batch, at)) {
    const r = recordAt(batch, at);
    if (r) out.push(r);
  }
  return out;
}

/** Whether a whole record header starts at `at`. */
export function hasRecord(batch: Buffer, at: number): boolean {
  return at + RECORD_HEADER_SIZE <= batch.length;
}

/** Where the next record after the one at `at` starts. */
export function recordEnd(batch: Buffer, at: number): number {
  return at + RECORD_HEADER_SIZE + u32(batch, at + 8) + (batch[at + 26] | (batch[at + 27] << 8));
}

/** The record at `at` (its data a view into the batch), or undefined when it is not wanted (-i/-f). */
export function recordAt(batch: Buffer, at: number): PacketRecord | undefined {
  if (batch[at + 25] & RECORD_SKIP) return undefined;
  const caplen = u32(batch, at + 8);
  const start = at + RECORD_HEADER_SIZE;
  return record(
    u32(batch, at),
    u32(batch, at + 4),
    caplen,
    u32(batch, at + 12),
    u32(batch, at + 16) | 0,
    batch[at + 20] | (batch[at + 21] << 8),
    batch[at + 22] | (batch[at + 23] << 8),
    batch[at + 24],
    batch.subarray(start, start + caplen),
  );
}

// Little-endian 32 bits as a non-negative number (byte loads: no bounds-checked call).
function u32(b: Buffer, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16)) + b[at + 3] * 0x1000000;
}

/** The record with its own copy of the packet (a batch's memory is reused after its call). */
export function copyRecord(r: PacketRecord): PacketRecord {
  return record(r.sec, r.nsec, r.caplen, r.len, r.ifindex, r.protocol, r.hatype, r.pkttype, Buffer.from(r.data));
}

// One constructor, so that every record has the same shape (the code reading them stays fast).
function record(
  sec: number,
  nsec: number,
  caplen: number,
  len: number,
  ifindex: number,
  protocol: number,
  hatype: number,
  pkttype: number,
  data: Buffer,
): PacketRecord {
  return { sec, nsec, caplen, len, ifindex, protocol, hatype, pkttype, data };
}
