// A streaming reader of capture files: classic pcap (microsecond, nanosecond and the modified
// "Kuznetzov" variant, either byte order) and pcapng (any number of sections, either byte
// order; Enhanced, Simple and obsolete Packet Blocks; other blocks skipped). The file is read
// in chunks; a record's bytes are a view into the reader's buffer, valid until the next call.
import * as fs from 'node:fs';
import { PCAP_MAGIC_MODIFIED, PCAP_MAGIC_NSEC, PCAP_MAGIC_USEC } from '../output/pcap-spec';
import {
  BLOCK_EPB,
  BLOCK_IDB,
  BLOCK_PB,
  BLOCK_SHB,
  BLOCK_SPB,
  BYTE_ORDER_MAGIC,
  EPB_FLAGS,
  EPB_PROCESSID_THREADID,
  IF_DESCRIPTION,
  IF_NAME,
  IF_TSOFFSET,
  IF_TSRESOL,
  OPT_COMMENT,
  OPT_END,
} from '../output/pcapng-spec';

/** What went wrong, and so how the command ends. */
export type ReadErrorKind =
  /** The file is not a capture at all (or cannot be opened). */
  | 'notCapture'
  /** The file ends in the middle of a record or block. */
  | 'truncated'
  /** A record or block that cannot be right (bad lengths, unknown interface). */
  | 'corrupt'
  /** read() failed. */
  | 'io';

export class ReadError extends Error {
  constructor(
    message: string,
    readonly kind: ReadErrorKind,
  ) {
    super(message);
    this.name = 'ReadError';
  }
}

/** An interface of a pcapng section (classic pcap has exactly one, made from its header). */
export interface CaptureInterface {
  /** Interface id within its section. */
  id: number;
  linktype: number;
  snaplen: number;
  name?: string;
  description?: string;
  /** Fraction digits the timestamps carry (6 for microseconds, 9 for nanoseconds...). */
  digits: number;
  /** Seconds added to every timestamp (if_tsoffset). */
  offsetSec: number;
  /** Timestamp units: 10^-decimal, or 2^-binary when binary is set. */
  decimal: number;
  binary?: number;
}

export interface CaptureRecord {
  /** 1-based number of the packet among the file's packets (Wireshark also counts custom blocks). */
  frame: number;
  /** Seconds and nanoseconds since the epoch; undefined for Simple Packet Blocks. */
  sec?: number;
  nsec?: number;
  iface: CaptureInterface;
  caplen: number;
  /** Length on the wire of the whole frame (with its link-layer header). */
  origLen: number;
  /** The captured bytes (a view: valid until the reader moves on). */
  data: Buffer;
  /** epb_flags / pack_flags, when the block has them. */
  flags?: number;
  /** epb_processid_threadid (option 8). */
  pid?: number;
  tid?: number;
  /** opt_comment values. */
  comments: string[];
  /**
   * Where data lies in a larger buffer (the reader's), for readers that take a frame by its
   * place rather than by a view of it; undefined when data is its own buffer.
   */
  dataBuffer?: Buffer;
  dataOffset?: number;
}

export type CaptureFormatName = 'pcap' | 'pcapng';

export interface ReaderOptions {
  /**
   * One record object for every packet block, filled again by each next() (a reader of a large
   * file that keeps nothing of a record past the next call saves an object per packet).
   */
  reuseRecords?: boolean;
}

const CHUNK = 1 << 20;
/** No packet record or block is larger than this: a larger length means a damaged file. */
export const MAX_RECORD = 256 << 20;

const pause = new Int32Array(new SharedArrayBuffer(4));

/** Sequential bytes of a file descriptor, read a chunk at a time. */
class ByteSource {
  private buf = Buffer.allocUnsafe(CHUNK);
  private start = 0;
  private end = 0;
  private eof = false;
  /** File offset of the first byte not yet consumed. */
  offset = 0;

  constructor(
    private readonly fd: number,
    private readonly beforeRead?: () => void,
  ) {}

  get available(): number {
    return this.end - this.start;
  }

  private fill(): void {
    if (this.buf.length - this.end < CHUNK / 4) {
      this.buf.copyWithin(0, this.start, this.end);
      this.end -= this.start;
      this.start = 0;
    }
    this.beforeRead?.(); // a read from a pipe may wait: what is ready must be out first
    let n: number;
    for (let tries = 0; ; tries++) {
      try {
        n = fs.readSync(this.fd, this.buf, this.end, this.buf.length - this.end, null);
        break;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // a non-blocking pipe (stdin shared with someone who set O_NONBLOCK): wait for data
        if (code === 'EAGAIN' && tries < 1_000_000) {
          Atomics.wait(pause, 0, 0, 1);
          continue;
        }
        throw new ReadError(`read error: ${(err as Error).message}`, 'io');
      }
    }
    if (n === 0) this.eof = true;
    this.end += n;
  }

  /** Makes n bytes available at view(); false if the file ends first. */
  ensure(n: number): boolean {
    while (this.end - this.start < n) {
      if (this.eof) return false;
      if (this.start + n > this.buf.length) {
        const size = Math.max(this.buf.length, n + CHUNK);
        const bigger = size > this.buf.length ? Buffer.allocUnsafe(size) : this.buf;
        this.buf.copy(bigger, 0, this.start, this.end);
        this.buf = bigger;
        this.end -= this.start;
        this.start = 0;
      }
      this.fill();
    }
    return true;
  }

  /** The buffer and where the next byte is in it (valid until the next ensure or skip). */
  get buffer(): Buffer {
    return this.buf;
  }

  get position(): number {
    return this.start;
  }

  /** Byte `rel` of what is available (ensure first): no view made. */
  byte(rel: number): number {
    return this.buf[this.start + rel];
  }

  /** The next n bytes (ensure(n) first). */
  view(n: number): Buffer {
    return this.buf.subarray(this.start, this.start + n);
  }

  /** Consumes n bytes (reading through them if they are not buffered); returns how many there were. */
  skip(n: number): number {
    let done = 0;
    while (done < n) {
      if (this.available === 0) {
        if (this.eof) break;
        this.fill();
        continue;
      }
      const k = Math.min(n - done, this.available);
      this.start += k;
      done += k;
    }
    this.offset += done;
    return done;
  }

  /** True when nothing is left: everything consumed and the file at its end. */
  atEnd(): boolean {
    if (this.available > 0) return false;
    if (!this.eof) this.fill();
    return this.available === 0 && this.eof;
  }
}

const pad4 = (n: number) => (n + 3) & ~3;
const NO_BYTES: Buffer = Buffer.alloc(0);
const NO_INTERFACE: CaptureInterface = { id: -1, linktype: -1, snaplen: 0, digits: 0, offsetSec: 0, decimal: 0 };

/** What a file's first bytes say it is (for the error message of a file that is not a capture). */
function describeStart(b: Buffer): string {
  if (b.length === 0) return 'it is empty';
  if (b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b) return 'it is gzip-compressed (decompress it first)';
  if (b.length >= 3 && b[0] === 0x42 && b[1] === 0x5a && b[2] === 0x68) return 'it is bzip2-compressed (decompress it first)';
  if (b.length >= 4 && b.readUInt32BE(0) === 0x28b52ffd) return 'it is zstd-compressed (decompress it first)';
  if (b.length >= 6 && b.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'it is xz-compressed (decompress it first)';
  const hex = b.subarray(0, Math.min(4, b.length)).toString('hex').replace(/(..)/g, '$1 ').trim();
  return `it starts with ${hex}`;
}

/** The interface of a classic pcap file, or an IDB's before its options are read. */
function makeInterface(id: number, linktype: number, snaplen: number, digits: number): CaptureInterface {
  return { id, linktype, snaplen, digits, offsetSec: 0, decimal: digits };
}

/** Sets a record's seconds and nanoseconds from a 64-bit count of its interface's time units. */
function setTime(rec: { sec?: number; nsec?: number }, iface: CaptureInterface, hi: number, lo: number): void {
  let sec: number;
  let nsec: number;
  if (iface.binary === undefined && (iface.decimal === 9 || iface.decimal === 6)) {
    // nanoseconds (tracedump's) or microseconds (the default): the common case, without BigInt.
    // (hi * 2^32 + lo) / div in two exact steps of 2^16: every product stays below 2^53.
    const div = iface.decimal === 9 ? 1e9 : 1e6;
    const a = hi * 65536;
    const q1 = Math.floor(a / div);
    const rest = (a - q1 * div) * 65536 + lo;
    const q2 = Math.floor(rest / div);
    sec = q1 * 65536 + q2;
    nsec = (rest - q2 * div) * (iface.decimal === 9 ? 1 : 1000);
  } else if (iface.binary === undefined && hi < 0x200000 && iface.decimal <= 15) {
    // below 2^53: exact in a double
    const ts = hi * 4294967296 + lo;
    const div = 10 ** iface.decimal;
    sec = Math.floor(ts / div);
    const frac = ts - sec * div;
    nsec = iface.decimal <= 9 ? frac * 10 ** (9 - iface.decimal) : Math.floor(frac / 10 ** (iface.decimal - 9));
  } else {
    const ts = (BigInt(hi) << 32n) | BigInt(lo);
    if (iface.binary !== undefined) {
      const shift = BigInt(iface.binary);
      sec = Number(ts >> shift);
      nsec = Number(((ts & ((1n << shift) - 1n)) * 1_000_000_000n) >> shift);
    } else {
      const div = 10n ** BigInt(iface.decimal);
      sec = Number(ts / div);
      const frac = ts % div;
      nsec = iface.decimal <= 9 ? Number(frac) * 10 ** (9 - iface.decimal) : Number(frac / 10n ** BigInt(iface.decimal - 9));
    }
  }
  rec.sec = sec + iface.offsetSec;
  rec.nsec = nsec;
}

/**
 * A packet block's record: its comments are decoded only when asked (most readers never ask,
 * and decoding one for every packet of a large file costs more than the rest of the block).
 */
class BlockRecord implements CaptureRecord {
  frame = 0;
  iface = NO_INTERFACE;
  caplen = 0;
  origLen = 0;
  dataBuffer: Buffer = NO_BYTES;
  dataOffset = 0;
  private view: Buffer | undefined;
  sec?: number;
  nsec?: number;
  flags?: number;
  pid?: number;
  tid?: number;
  private block: Buffer = NO_BYTES;
  private spans: number[] | undefined;
  private decoded: string[] | undefined;

  fill(frame: number, iface: CaptureInterface, caplen: number, origLen: number, block: Buffer, dataOffset: number): void {
    this.frame = frame;
    this.iface = iface;
    this.caplen = caplen;
    this.origLen = origLen;
    this.block = block;
    this.dataBuffer = block;
    this.dataOffset = dataOffset;
    this.view = undefined;
    this.flags = this.pid = this.tid = undefined;
    this.spans = this.decoded = undefined;
  }

  /** The captured bytes, a view made when first asked. */
  get data(): Buffer {
    return (this.view ??= this.dataBuffer.subarray(this.dataOffset, this.dataOffset + this.caplen));
  }

  commentAt(at: number, len: number): void {
    (this.spans ??= []).push(at, len);
  }

  get comments(): string[] {
    if (this.decoded) return this.decoded;
    const out: string[] = [];
    for (let i = 0; this.spans && i < this.spans.length; i += 2) out.push(optionText(this.block.subarray(this.spans[i], this.spans[i] + this.spans[i + 1])));
    this.decoded = out;
    return out;
  }
}

export class CaptureReader {
  readonly format: CaptureFormatName;
  /** Byte order of the file (pcap) or of the current section (pcapng). */
  littleEndian: boolean;
  /** pcapng sections seen so far (1 for pcap). */
  sections = 0;
  /** The current section's comments (tracedump's names the command it captured). */
  sectionComments: string[] = [];
  private frames = 0;
  private interfaces: CaptureInterface[] = [];
  /** pcap: bytes of a record header (16, or 24 in the modified format). */
  private recordHeader = 16;
  private closed = false;
  /** With reuseRecords: the one record every packet block fills. */
  private reused: BlockRecord | undefined;

  private constructor(
    private readonly src: ByteSource,
    private readonly fd: number,
    private readonly ownsFd: boolean,
  ) {
    if (!src.ensure(4)) {
      const start = src.view(src.available);
      throw new ReadError(`not a pcap or pcapng capture file: ${describeStart(start)}`, 'notCapture');
    }
    const b = src.view(4);
    const le = b.readUInt32LE(0);
    const be = b.readUInt32BE(0);
    if (le === BLOCK_SHB) {
      this.format = 'pcapng';
      if (!src.ensure(12)) throw new ReadError('cut short in the middle of the section header', 'truncated');
      const bom = src.view(12);
      if (bom.readUInt32LE(8) !== BYTE_ORDER_MAGIC && bom.readUInt32BE(8) !== BYTE_ORDER_MAGIC)
        throw new ReadError(`not a pcap or pcapng capture file: ${describeStart(bom)}`, 'notCapture');
      this.littleEndian = bom.readUInt32LE(8) === BYTE_ORDER_MAGIC; // and again at every section header
      return;
    }
    for (const [magic, little] of [
      [le, true],
      [be, false],
    ] as const) {
      if (magic === PCAP_MAGIC_USEC || magic === PCAP_MAGIC_NSEC || magic === PCAP_MAGIC_MODIFIED) {
        this.format = 'pcap';
        this.littleEndian = little;
        this.readPcapHeader(magic === PCAP_MAGIC_NSEC ? 9 : 6, magic === PCAP_MAGIC_MODIFIED);
        return;
      }
    }
    src.ensure(8);
    throw new ReadError(`not a pcap or pcapng capture file: ${describeStart(src.view(Math.min(8, src.available)))}`, 'notCapture');
  }

  /**
   * Opens a file ('-' for standard input); throws a ReadError if it is not a capture.
   * beforeRead is called before every read() (once per MiB of a file; before each wait on a pipe).
   */
  static open(path: string, beforeRead?: () => void, o: ReaderOptions = {}): CaptureReader {
    let fd: number;
    const stdin = path === '-';
    try {
      fd = stdin ? 0 : fs.openSync(path, 'r');
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const why =
        e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.code === 'EISDIR' ? 'is a directory' : e.message;
      throw new ReadError(`cannot open: ${why}`, 'notCapture');
    }
    try {
      if (!stdin && fs.fstatSync(fd).isDirectory()) throw new ReadError('cannot read: is a directory', 'notCapture');
      const reader = new CaptureReader(new ByteSource(fd, beforeRead), fd, !stdin);
      if (o.reuseRecords) reader.reused = new BlockRecord();
      return reader;
    } catch (err) {
      if (!stdin) fs.closeSync(fd);
      if (err instanceof ReadError) throw err;
      const e = err as NodeJS.ErrnoException;
      throw new ReadError(`cannot read: ${e.code === 'EISDIR' ? 'is a directory' : e.message}`, 'notCapture');
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.ownsFd) fs.closeSync(this.fd);
  }

  /** A 32-bit number of the file's byte order at `rel` in the source (ensure first). */
  private peek32(rel: number): number {
    const src = this.src;
    return this.littleEndian
      ? (src.byte(rel) | (src.byte(rel + 1) << 8) | (src.byte(rel + 2) << 16)) + src.byte(rel + 3) * 0x1000000
      : src.byte(rel) * 0x1000000 + ((src.byte(rel + 1) << 16) | (src.byte(rel + 2) << 8) | src.byte(rel + 3));
  }

  // Byte loads rather than Buffer's read methods: these run several times for every packet.
  private u16(b: Buffer, o: number): number {
    return this.littleEndian ? b[o] | (b[o + 1] << 8) : (b[o] << 8) | b[o + 1];
  }

  private u32(b: Buffer, o: number): number {
    return this.littleEndian
      ? (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16)) + b[o + 3] * 0x1000000
      : b[o] * 0x1000000 + ((b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]);
  }

  private readPcapHeader(digits: number, modified: boolean): void {
    if (!this.src.ensure(24)) throw new ReadError('cut short in the middle of the file header', 'truncated');
    const h = this.src.view(24);
    const major = this.u16(h, 4);
    if (major !== 2) throw new ReadError(`pcap version ${major}.${this.u16(h, 6)} is not supported`, 'notCapture');
    const snaplen = this.u32(h, 16);
    const linktype = this.u32(h, 20) & 0xffff;
    this.interfaces = [makeInterface(0, linktype, snaplen, digits)];
    this.recordHeader = modified ? 24 : 16;
    this.sections = 1;
    this.src.skip(24);
  }

  /** The next packet, or null at the end of the file. Throws a ReadError for a damaged file. */
  next(): CaptureRecord | null {
    return this.format === 'pcap' ? this.nextPcap() : this.nextPcapng();
  }

  private nextPcap(): CaptureRecord | null {
    const src = this.src;
    const hl = this.recordHeader;
    if (!src.ensure(hl)) {
      if (src.available === 0) return null;
      throw new ReadError('cut short in the middle of a packet', 'truncated');
    }
    const h = src.view(hl);
    const sec = this.u32(h, 0);
    const frac = this.u32(h, 4);
    const caplen = this.u32(h, 8);
    const origLen = this.u32(h, 12);
    const iface = this.interfaces[0];
    // libpcap's own bound: more than the snapshot length (or 256 KiB) is a damaged header
    if (caplen > Math.min(MAX_RECORD, Math.max(iface.snaplen, 262144)))
      throw new ReadError(`a packet record at byte ${src.offset} claims ${caplen} bytes: the file is damaged`, 'corrupt');
    if (!src.ensure(hl + caplen)) throw new ReadError('cut short in the middle of a packet', 'truncated');
    const data = src.view(hl + caplen).subarray(hl);
    src.skip(hl + caplen);
    const unit = iface.digits === 9 ? 1_000_000_000 : 1_000_000;
    const nsec = iface.digits === 9 ? frac : frac * 1000;
    return {
      frame: ++this.frames,
      sec: sec + Math.floor(frac / unit),
      nsec: nsec % 1_000_000_000,
      iface,
      caplen,
      origLen,
      data,
      comments: [],
    };
  }

  private nextPcapng(): CaptureRecord | null {
    const src = this.src;
    for (;;) {
      if (!src.ensure(8)) {
        if (src.available === 0) {
          if (this.sections === 0) throw new ReadError('not a pcapng capture file: it ends before its section header', 'notCapture');
          return null;
        }
        throw new ReadError('cut short in the middle of a block', 'truncated');
      }
      const typeLE = (src.byte(0) | (src.byte(1) << 8) | (src.byte(2) << 16)) + src.byte(3) * 0x1000000;
      if (typeLE === BLOCK_SHB) {
        if (!src.ensure(12)) throw new ReadError('cut short in the middle of a section header', 'truncated');
        const bom = src.view(12);
        if (bom.readUInt32LE(8) === BYTE_ORDER_MAGIC) this.littleEndian = true;
        else if (bom.readUInt32BE(8) === BYTE_ORDER_MAGIC) this.littleEndian = false;
        else if (this.sections === 0) throw new ReadError('not a pcapng capture file: its section header has no byte-order magic', 'notCapture');
        else throw new ReadError(`a section header at byte ${src.offset} has no byte-order magic: the file is damaged`, 'corrupt');
      } else if (this.sections === 0) {
        throw new ReadError('not a pcapng capture file: it does not start with a section header', 'notCapture');
      }
      const type = this.peek32(0);
      const len = this.peek32(4);
      const at = src.offset;
      if (len < 12 || len % 4 !== 0 || len > MAX_RECORD)
        throw new ReadError(`a block at byte ${at} has an impossible length (${len}): the file is damaged`, 'corrupt');
      const isPacket = type === BLOCK_EPB || type === BLOCK_SPB || type === BLOCK_PB;
      if (!isPacket && type !== BLOCK_SHB && type !== BLOCK_IDB) {
        // name resolution, statistics, decryption secrets, custom blocks...: not needed here
        if (src.skip(len) < len) throw new ReadError('cut short in the middle of a block', 'truncated');
        continue;
      }
      if (!src.ensure(len))
        throw new ReadError(
          isPacket ? 'cut short in the middle of a packet' : type === BLOCK_SHB ? 'cut short in the middle of a section header' : 'cut short in the middle of a block',
          'truncated',
        );
      if (this.peek32(len - 4) !== len)
        throw new ReadError(`a block at byte ${at} does not end with its length: the file is damaged`, 'corrupt');
      let rec: CaptureRecord | null = null;
      if (type === BLOCK_SHB) this.sectionHeader(src.view(len), at);
      else if (type === BLOCK_IDB) this.interfaceDescription(src.view(len), at);
      else rec = this.packetBlock(type, src.buffer, src.position, len, at);
      src.skip(len);
      if (rec) return rec;
    }
  }

  private sectionHeader(b: Buffer, at: number): void {
    if (b.length < 28) throw new ReadError(`a section header at byte ${at} is too short: the file is damaged`, 'corrupt');
    const major = this.u16(b, 12);
    if (major !== 1) {
      const what = `pcapng version ${major}.${this.u16(b, 14)} is not supported`;
      throw new ReadError(what, this.sections === 0 ? 'notCapture' : 'corrupt');
    }
    this.sections++;
    this.interfaces = [];
    const comments: string[] = [];
    this.options(b, 24, b.length - 4, (code, v) => {
      if (code === OPT_COMMENT) comments.push(optionText(v));
    });
    this.sectionComments = comments;
  }

  private interfaceDescription(b: Buffer, at: number): void {
    if (b.length < 20) throw new ReadError(`an interface block at byte ${at} is too short: the file is damaged`, 'corrupt');
    const iface = makeInterface(this.interfaces.length, this.u16(b, 8), this.u32(b, 12), 6);
    this.options(b, 16, b.length - 4, (code, v) => {
      if (code === IF_NAME) iface.name = optionText(v);
      else if (code === IF_DESCRIPTION) iface.description = optionText(v);
      else if (code === IF_TSRESOL && v.length >= 1) {
        const r = v[0];
        if (r & 0x80) {
          const n = r & 0x7f;
          if (n <= 63) {
            iface.binary = n;
            iface.digits = n === 0 ? 0 : 9;
          }
        } else if (r <= 19) {
          iface.decimal = r;
          iface.binary = undefined;
          iface.digits = Math.min(r, 9);
        }
      } else if (code === IF_TSOFFSET && v.length >= 8) {
        iface.offsetSec = Number(this.littleEndian ? v.readBigInt64LE(0) : v.readBigInt64BE(0));
      }
    });
    this.interfaces.push(iface);
  }

  private interfaceOf(id: number, at: number): CaptureInterface {
    const iface = this.interfaces[id];
    if (!iface) {
      const n = this.interfaces.length;
      throw new ReadError(
        `a packet at byte ${at} is on interface ${id}, but its section describes ${n === 0 ? 'no interface' : `only ${n}`}: the file is damaged`,
        'corrupt',
      );
    }
    return iface;
  }

  /** A packet block of `len` bytes at b[base] (the reader's buffer: no view of the block is made). */
  private packetBlock(type: number, b: Buffer, base: number, len: number, at: number): CaptureRecord {
    const end = base + len - 4;
    const short = () => new ReadError(`a packet block at byte ${at} is shorter than its packet: the file is damaged`, 'corrupt');
    if (type === BLOCK_SPB) {
      if (len < 16) throw short();
      const iface = this.interfaceOf(0, at);
      const origLen = this.u32(b, base + 8);
      let caplen = Math.min(origLen, end - base - 12);
      if (iface.snaplen > 0) caplen = Math.min(caplen, iface.snaplen);
      return { frame: ++this.frames, iface, caplen, origLen, data: b.subarray(base + 12, base + 12 + caplen), comments: [] };
    }
    // EPB: ifid u32; PB: ifid u16 + drops u16 — then ts high, ts low, caplen, origlen, data
    if (len < 32) throw short();
    const ifid = type === BLOCK_EPB ? this.u32(b, base + 8) : this.u16(b, base + 8);
    const iface = this.interfaceOf(ifid, at);
    const caplen = this.u32(b, base + 20);
    const origLen = this.u32(b, base + 24);
    if (base + 28 + caplen > end) throw short();
    const rec = this.reused ?? new BlockRecord();
    rec.fill(++this.frames, iface, caplen, origLen, b, base + 28);
    setTime(rec, iface, this.u32(b, base + 12), this.u32(b, base + 16));
    // the options, read in place (this runs for every packet: no view or closure per option)
    let o = base + 28 + pad4(caplen);
    for (let i = 0; i < 10_000 && o + 4 <= end; i++) {
      const code = this.u16(b, o);
      const olen = this.u16(b, o + 2);
      if (code === OPT_END || o + 4 + olen > end) break;
      if (code === OPT_COMMENT) rec.commentAt(o + 4, olen);
      else if (code === EPB_FLAGS && olen >= 4) rec.flags = this.u32(b, o + 4);
      else if (code === EPB_PROCESSID_THREADID && type === BLOCK_EPB && olen >= 4) {
        rec.pid = this.u32(b, o + 4);
        if (olen >= 8) rec.tid = this.u32(b, o + 8);
      }
      o += 4 + pad4(olen);
    }
    return rec;
  }

  /** Calls fn for each option in b[from, to); stops at opt_endofopt or at the first bad length. */
  private options(b: Buffer, from: number, to: number, fn: (code: number, value: Buffer) => void): void {
    let o = from;
    for (let i = 0; i < 10_000 && o + 4 <= to; i++) {
      const code = this.u16(b, o);
      const len = this.u16(b, o + 2);
      if (code === OPT_END) return;
      if (o + 4 + len > to) return;
      fn(code, b.subarray(o + 4, o + 4 + len));
      o += 4 + pad4(len);
    }
  }
}

/** An option's UTF-8 text, without the NUL terminator some writers add. */
function optionText(v: Buffer): string {
  let n = v.length;
  while (n > 0 && v[n - 1] === 0) n--;
  return v.toString('utf8', 0, n);
}
