// pcapng blocks (little-endian sections): Section Header, Interface Description, Enhanced
// Packet (with direction, process and thread), Name Resolution, Decryption Secrets and
// Interface Statistics.
// Pure: it only makes bytes. Layout: draft-ietf-opsawg-pcapng.
import { LINKTYPE_LINUX_SLL2, SLL2_HEADER_SIZE, type SllPacket, u32le, writeSll2Header } from './pcap';
import {
  BLOCK_DSB,
  BLOCK_EPB,
  BLOCK_IDB,
  BLOCK_ISB,
  BLOCK_NRB,
  BLOCK_SHB,
  BYTE_ORDER_MAGIC,
  EPB_FLAGS,
  EPB_INBOUND,
  EPB_OUTBOUND,
  EPB_PROCESSID_THREADID,
  IF_NAME,
  IF_TSRESOL,
  ISB_ENDTIME,
  ISB_IFDROP,
  ISB_IFRECV,
  ISB_STARTTIME,
  NRB_IPV4,
  NRB_IPV6,
  OPT_COMMENT,
  SECRETS_TLS_KEY_LOG,
  SHB_HARDWARE,
  SHB_OS,
  SHB_USERAPPL,
} from './pcapng-spec';

export const PACKET_OUTGOING = 4;

const pad4 = (n: number) => (n + 3) & ~3;

/** An option's value holds at most this many bytes (its length is 16 bits). */
export const MAX_OPTION_BYTES = 0xffff;
const CUT_MARK = Buffer.from(' [...]');

/** Text cut to what an option holds, on a character boundary, with a mark where it was cut. */
function optionText(text: string): Buffer {
  const b = Buffer.from(text, 'utf8');
  if (b.length <= MAX_OPTION_BYTES) return b;
  let end = MAX_OPTION_BYTES - CUT_MARK.length;
  while (end > 0 && (b[end] & 0xc0) === 0x80) end--; // not inside a UTF-8 sequence
  return Buffer.concat([b.subarray(0, end), CUT_MARK]);
}

/** One option, padded: code, length, value (text longer than an option holds is cut). */
export function option(code: number, value: Buffer | string): Buffer {
  const v = typeof value === 'string' ? optionText(value) : value;
  if (v.length > MAX_OPTION_BYTES) throw new RangeError(`pcapng option ${code}: ${v.length} bytes is more than an option holds`);
  const b = Buffer.alloc(4 + pad4(v.length));
  b.writeUInt16LE(code, 0);
  b.writeUInt16LE(v.length, 2);
  v.copy(b, 4);
  return b;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0, 0);
  return b;
}

function u64(n: number | bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n), 0);
  return b;
}

/** A pcapng timestamp in nanoseconds (if_tsresol 9) at `at`: high word, then low word. */
// A packet's sec and nsec as the 64-bit nanosecond count, high word first, in exact double
// arithmetic (every intermediate below 2^53): no BigInt per packet.
function writePacketTimestamp(out: Buffer, at: number, sec: number, nsec: number): void {
  const a = (sec % 65536) * 1e9 + nsec; // < 2^47
  const b = Math.floor(sec / 65536) * 1e9; // < 2^46; the count is b * 2^16 + a
  const low = (b % 65536) * 65536 + (a % 4294967296);
  u32le(out, at, Math.floor(b / 65536) + Math.floor(a / 4294967296) + Math.floor(low / 4294967296));
  u32le(out, at + 4, low % 4294967296);
}

function writeTimestamp(out: Buffer, at: number, ns: bigint): void {
  out.writeUInt32LE(Number(ns >> 32n), at);
  out.writeUInt32LE(Number(ns & 0xffffffffn), at + 4);
}

function timestamp(ns: bigint): Buffer {
  const b = Buffer.alloc(8);
  writeTimestamp(b, 0, ns);
  return b;
}

const END_OF_OPTIONS = Buffer.alloc(4);

/** type, length, body, options (with their end marker when there are any), length. */
function block(type: number, body: Buffer, options: Buffer[] = []): Buffer {
  const opts = options.length ? Buffer.concat([...options, END_OF_OPTIONS]) : Buffer.alloc(0);
  const len = 12 + body.length + opts.length;
  const b = Buffer.alloc(len);
  b.writeUInt32LE(type, 0);
  b.writeUInt32LE(len, 4);
  body.copy(b, 8);
  opts.copy(b, 8 + body.length);
  b.writeUInt32LE(len, len - 4);
  return b;
}

export interface SectionInfo {
  hardware: string;
  os: string;
  userappl: string;
  /** opt_comment values, in order. */
  comments?: string[];
}

export function sectionHeader(info: SectionInfo): Buffer {
  const body = Buffer.alloc(16);
  body.writeUInt32LE(BYTE_ORDER_MAGIC, 0);
  body.writeUInt16LE(1, 4);
  body.writeUInt16LE(0, 6);
  body.writeBigInt64LE(-1n, 8); // section length not given
  const opts = [option(SHB_HARDWARE, info.hardware), option(SHB_OS, info.os), option(SHB_USERAPPL, info.userappl)];
  for (const c of info.comments ?? []) if (c) opts.push(option(OPT_COMMENT, c));
  return block(BLOCK_SHB, body, opts);
}

/** An interface of LINUX_SLL2 packets with nanosecond timestamps. */
export function interfaceDescription(name: string | undefined, snaplen: number): Buffer {
  const body = Buffer.alloc(8);
  body.writeUInt16LE(LINKTYPE_LINUX_SLL2, 0);
  body.writeUInt32LE(snaplen + SLL2_HEADER_SIZE, 4);
  const opts = [option(IF_TSRESOL, Buffer.from([9]))];
  if (name) opts.unshift(option(IF_NAME, name));
  return block(BLOCK_IDB, body, opts);
}

/**
 * The options of a packet that belongs to a process: its pid and tid (epb_processid_threadid)
 * and a comment that any Wireshark shows. Made once per owner and reused.
 */
export function processOptions(pid: number, tid: number, comment?: string): Buffer {
  const ids = Buffer.alloc(8);
  ids.writeUInt32LE(pid >>> 0, 0);
  ids.writeUInt32LE(tid >>> 0, 4);
  const parts = [option(EPB_PROCESSID_THREADID, ids)];
  if (comment) parts.push(option(OPT_COMMENT, comment));
  return Buffer.concat(parts);
}

/** Bytes an Enhanced Packet Block takes with these extra options. */
export function enhancedPacketSize(p: SllPacket, extra: Buffer): number {
  // type+len (8), ifid ts ts caplen origlen (20), data, flags option (8), extra, end (4), len (4)
  return 8 + 20 + pad4(SLL2_HEADER_SIZE + p.data.length) + 8 + extra.length + 4 + 4;
}

/** Writes an Enhanced Packet Block at `at` in `out` (which must have room); returns the end. */
export function writeEnhancedPacket(out: Buffer, at: number, p: SllPacket, ifid: number, extra: Buffer): number {
  const len = enhancedPacketSize(p, extra);
  const caplen = SLL2_HEADER_SIZE + p.data.length;
  u32le(out, at, BLOCK_EPB);
  u32le(out, at + 4, len);
  u32le(out, at + 8, ifid);
  writePacketTimestamp(out, at + 12, p.sec, p.nsec);
  u32le(out, at + 20, caplen);
  u32le(out, at + 24, p.len + SLL2_HEADER_SIZE);
  let o = at + 28;
  writeSll2Header(out, o, p);
  out.set(p.data, o + SLL2_HEADER_SIZE);
  o += caplen;
  const padded = at + 28 + pad4(caplen);
  while (o < padded) out[o++] = 0;
  u32le(out, o, EPB_FLAGS | (4 << 16)); // option code, length 4
  u32le(out, o + 4, p.pkttype === PACKET_OUTGOING ? EPB_OUTBOUND : EPB_INBOUND);
  o += 8;
  out.set(extra, o);
  o += extra.length;
  u32le(out, o, 0); // end of options
  u32le(out, o + 4, len);
  return o + 8;
}

/** Name Resolution Block: addresses (4 or 16 bytes) and the name each resolved from. */
export function nameResolution(records: Array<{ address: Buffer; name: string }>): Buffer {
  const parts: Buffer[] = [];
  for (const r of records) {
    const name = Buffer.from(r.name + '\0', 'utf8');
    const value = Buffer.concat([r.address, name]);
    parts.push(option(r.address.length === 4 ? NRB_IPV4 : NRB_IPV6, value));
  }
  parts.push(Buffer.alloc(4)); // nrb_record_end
  return block(BLOCK_NRB, Buffer.concat(parts));
}

export interface InterfaceStats {
  ifid: number;
  /** ns since the epoch */
  start: bigint;
  end: bigint;
  received: number;
  dropped?: number;
  comment?: string;
}

/** Decryption Secrets Block holding NSS key log lines (Wireshark decrypts TLS with them). */
export function decryptionSecrets(keyLog: Buffer): Buffer {
  const body = Buffer.alloc(8 + pad4(keyLog.length));
  body.writeUInt32LE(SECRETS_TLS_KEY_LOG, 0);
  body.writeUInt32LE(keyLog.length, 4);
  keyLog.copy(body, 8);
  return block(BLOCK_DSB, body);
}

export function interfaceStatistics(s: InterfaceStats): Buffer {
  const body = Buffer.concat([u32(s.ifid), timestamp(s.end)]);
  const opts = [option(ISB_STARTTIME, timestamp(s.start)), option(ISB_ENDTIME, timestamp(s.end)), option(ISB_IFRECV, u64(s.received))];
  if (s.dropped !== undefined) opts.push(option(ISB_IFDROP, u64(s.dropped)));
  if (s.comment) opts.push(option(OPT_COMMENT, s.comment));
  return block(BLOCK_ISB, body, opts);
}
