// Reads the packet records of a capture batch (layout in native/capture.h).
import type { SllPacket } from '../output/pcap';

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
 * record's data from the next record.
 */
export function* readRecords(batch: Buffer): Generator<PacketRecord> {
  let at = 0;
  while (at + RECORD_HEADER_SIZE <= batch.length) {
    const caplen = batch.readUInt32LE(at + 8);
    const start = at + RECORD_HEADER_SIZE;
    const flags = batch[at + 25];
    const gap = batch.readUInt16LE(at + 26);
    if (!(flags & RECORD_SKIP))
      yield record(
        batch.readUInt32LE(at),
        batch.readUInt32LE(at + 4),
        caplen,
        batch.readUInt32LE(at + 12),
        batch.readInt32LE(at + 16),
        batch.readUInt16LE(at + 20),
        batch.readUInt16LE(at + 22),
        batch[at + 24],
        batch.subarray(start, start + caplen),
      );
    at = start + caplen + gap;
  }
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
