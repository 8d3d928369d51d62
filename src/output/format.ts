// What a capture file format makes of the packets: the bytes that open the file, one record
// per packet (with any block it needs first or after), and the bytes that close it.
import type { SllPacket } from './pcap';

/** The process a packet belongs to, as the file records it. */
export interface PacketOwner {
  pid: number;
  tid: number;
  comm: string;
  /** The socket's identity (flows of one socket share it). */
  inode: number;
  /** Its port is shared with another process: said (pcapng comment) on the packets it receives. */
  shared?: string;
}

/** What the file says at its end about the capture. */
export interface CaptureTotals {
  /** ns since the epoch */
  start: bigint;
  end: bigint;
  /** Packets the kernel dropped (its ring overflowed). */
  kernelDrops: number;
  /** What else the capture lacks or cannot tell apart, in words (report/summary.ts gapParts); empty: nothing. */
  gaps?: string;
}

export interface CaptureFormat {
  readonly name: 'pcap' | 'pcapng';
  header(): Buffer;
  /** A block that must precede this packet's record (a new interface), if any. */
  before(p: SllPacket, owner: PacketOwner): Buffer | undefined;
  recordSize(p: SllPacket, owner: PacketOwner): number;
  /** Writes the record at `at` in `out` (room checked by the caller); returns the end. */
  writeRecord(out: Buffer, at: number, p: SllPacket, owner: PacketOwner): number;
  /** A block that follows this packet's record (names it resolved), if any. */
  after(p: SllPacket, owner: PacketOwner): Buffer | undefined;
  trailer(totals: CaptureTotals): Buffer | undefined;
  /** A block holding TLS key log lines, or undefined where the format cannot hold them. */
  secrets(keyLog: Buffer): Buffer | undefined;
  /** What the native path needs to write this format's records itself. */
  readonly known: KnownRecordFormat;
}

/** A format as the native path writes it (capture/native-path.ts, native/fast_path.cc). */
export interface KnownRecordFormat {
  readonly name: 'pcap' | 'pcapng';
  /** The interface id of an ifindex whose interface block is in the file (pcap: always 0). */
  interfaceId(ifindex: number): number | undefined;
  /** The options an owner's packets carry (pcapng; none in pcap). Only for owners whose port is not shared. */
  ownerOptions(owner: PacketOwner): Buffer;
  /** Records the native path wrote for an interface id (pcapng's statistics count them). */
  countRecords(ifid: number, n: number): void;
  /** The record writeRecord makes, without counting it (the native path's check). */
  encode(out: Buffer, at: number, p: SllPacket, owner: PacketOwner): number;
}

/** A capture file as it is at the end: what the summary says of it. */
export interface FileFigures {
  path: string;
  packets: number;
  bytes: number;
}
