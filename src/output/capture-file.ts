// The capture file (or stdout) in a given format: whole records only, buffered, flushed on
// demand. A failed write (disk full) leaves the file cut back to its last whole record.
// Records can be held back for a moment (flushSettled): a TLS key the program logs just after
// a packet arrived must still land in the file before that packet, so that Wireshark decrypts
// in one pass; insertBeforeHeld puts such a block ahead of every record not yet written.
import * as fs from 'node:fs';
import { TracedumpError } from '../errors';
import { type SllPacket, captureMs } from './pcap';
import type { CaptureFormat, CaptureTotals, KnownRecordFormat, PacketOwner } from './format';
import { writeAll } from './fd-writer';
import { type NativeFileGuard, native } from '../native';
import { OutputTarget } from './output-target';
import { quoteName } from '../text/quote';

const BUFFER_BYTES = 1 << 20;
/** Held-back records may grow the buffer to this much before they are written regardless. */
const MAX_HELD_BYTES = 8 << 20;

export interface CaptureFileOptions {
  /** The user the file is given to (the user the command runs as, like tcpdump -Z). */
  owner?: { uid: number; gid: number };
  /** The file will hold secrets (TLS keys): mode 0600. */
  secret?: boolean;
  /** Records will be held back (flushSettled): grow the buffer rather than write them early. */
  holdBack?: boolean;
  /** New TLS key log lines, asked for before every write: they go ahead of the held records. */
  secrets?: () => Buffer | undefined;
}

export class CaptureFile {
  private buf = Buffer.allocUnsafe(BUFFER_BYTES);
  private used = 0;
  // The buffered units (a record with the blocks that come with it): where each ends in buf,
  // the capture time of its packet (ms), and whether it is a record.
  private unitEnds: number[] = [];
  private unitMs: number[] = [];
  private unitRecords: number[] = [];
  private committed = 0; // bytes of whole records known to be in the file
  private records = 0; // records known to be in the file
  private closed = false;
  private failed?: TracedumpError;

  private constructor(
    readonly path: string,
    private readonly fd: number,
    private readonly target: OutputTarget | undefined,
    private readonly format: CaptureFormat,
    private readonly guard: NativeFileGuard | undefined,
    private readonly options: CaptureFileOptions,
  ) {}

  /**
   * Opens path (or stdout for '-') and writes the file header. The file takes the place of
   * whatever is at path only at commit(): until then nothing is written there (see OutputTarget).
   */
  static open(path: string, format: CaptureFormat, options: CaptureFileOptions = {}): CaptureFile {
    if (path === '-') {
      const file = new CaptureFile('-', 1, undefined, format, undefined, options);
      file.writeOut(format.header(), 0);
      return file;
    }
    const target = OutputTarget.open(path, {
      mode: options.secret ? 0o600 : 0o644,
      owner: options.owner,
      hint: 'choose another path with -w, or -w - to write to stdout',
    });
    let guard: NativeFileGuard;
    try {
      guard = new (native().FileGuard)(target.fd, [target.currentName]);
    } catch (err) {
      target.abandon();
      throw err;
    }
    const file = new CaptureFile(path, target.fd, target, format, guard, options);
    if (!target.deferred) file.writeHeader();
    return file;
  }

  private headerWritten = false;
  private readonly beforeCommit: { chunk: Buffer; records: number }[] = [];

  /** The header, directly: nothing may go ahead of it. Not even the header fits (a full disk): fail now. */
  private writeHeader(): void {
    this.headerWritten = true;
    this.writeOut(this.format.header(), 0);
    if (!this.failed) return;
    const err = this.failed;
    this.abandon();
    const why = err.code === 'ENOSPC' ? 'no space left on device' : err.message;
    throw new TracedumpError(`cannot write ${quoteName(this.path)}: ${why}`, { code: err.code, syscall: 'write', path: this.path, hint: 'free some space, or choose another path with -w' });
  }

  /** The program started: the file takes its place at its path, and records may be written. */
  commit(): void {
    if (!this.target || this.target.committed || this.closed) return;
    this.target.commit();
    this.guard?.keep(); // the guardian no longer removes the file, only keeps it whole
    if (!this.headerWritten) {
      this.headerWritten = true;
      this.writeOut(this.format.header(), 0);
    }
    for (const { chunk, records } of this.beforeCommit.splice(0)) this.writeOut(chunk, records);
  }

  /** The program never started: the file is closed and removed, what was at its path is left. */
  abandon(): void {
    if (this.closed) return;
    this.closed = true;
    this.guard?.release();
    this.target?.abandon();
  }

  get error(): TracedumpError | undefined {
    return this.failed;
  }

  get bytesWritten(): number {
    return this.committed;
  }

  /** Bytes in the file and in the buffer (what the file will hold once flushed). */
  get pendingBytes(): number {
    return this.committed + this.used;
  }

  /** Packets in the file (after a failed write: the ones before it). */
  get packetsWritten(): number {
    return this.records;
  }

  get formatName(): CaptureFormat['name'] {
    return this.format.name;
  }

  write(p: SllPacket, owner: PacketOwner): void {
    if (this.failed || this.closed) return;
    const ms = captureMs(p);
    const before = this.format.before(p, owner);
    if (before) this.append(before, ms, 0);
    const size = this.format.recordSize(p, owner);
    if (size > BUFFER_BYTES) {
      const one = Buffer.allocUnsafe(size);
      this.format.writeRecord(one, 0, p, owner);
      this.flush();
      this.writeOut(one, 1);
    } else {
      this.makeRoom(size);
      this.used = this.format.writeRecord(this.buf, this.used, p, owner);
      this.endUnit(ms, 1);
    }
    const after = this.format.after(p, owner);
    if (after) this.append(after, ms, 0);
  }

  /** The format as the native path writes it. */
  get known(): KnownRecordFormat {
    return this.format.known;
  }

  /**
   * Room for the native path to write records straight into the buffer: made for a record of
   * `need` bytes as write() makes it (what is settled written out, or the buffer grown while
   * records are held), so that the file is cut at the same places. Undefined when nothing may
   * be written, or when a record that large is written apart (write() does that).
   */
  reserve(need: number): { buf: Buffer; at: number } | undefined {
    if (this.failed || this.closed || need > BUFFER_BYTES) return undefined;
    this.makeRoom(need);
    return { buf: this.buf, at: this.used };
  }

  /** Records are held back one by one (flushSettled): the native path must say where each ends. */
  get holdsBack(): boolean {
    return !!this.options.holdBack;
  }

  /**
   * The native path wrote `records` records into the reserved room, up to `end`, the last
   * captured at lastMs; `units`: each record's end and capture time, in pairs (holdsBack).
   */
  commitRecords(end: number, records: number, lastMs: number, units?: Float64Array): void {
    if (!units) {
      this.used = end;
      this.endUnit(lastMs, records);
      return;
    }
    for (let i = 0; i < records; i++) {
      this.used = units[2 * i];
      this.endUnit(units[2 * i + 1], 1);
    }
  }

  /**
   * TLS key log lines: a block ahead of every record not yet written. Returns false when the
   * format cannot hold them (classic pcap).
   */
  insertBeforeHeld(keyLog: Buffer): boolean {
    const b = this.format.secrets(keyLog);
    if (!b) return false;
    if (this.failed || this.closed) return true;
    if (this.used + b.length > this.buf.length) {
      this.writeOut(Buffer.concat([b, this.buf.subarray(0, this.used)]), this.heldRecords());
      this.empty();
      return true;
    }
    this.buf.copy(this.buf, b.length, 0, this.used);
    b.copy(this.buf, 0);
    this.used += b.length;
    for (let i = 0; i < this.unitEnds.length; i++) this.unitEnds[i] += b.length;
    // the block travels with the first held unit (or is a unit of its own)
    if (this.unitEnds.length === 0) this.endUnit(0, 0);
    return true;
  }

  private takeSecrets(): void {
    const keyLog = this.closed || this.failed ? undefined : this.options.secrets?.();
    if (keyLog) this.insertBeforeHeld(keyLog);
  }

  private append(b: Buffer, ms: number, records: number): void {
    if (b.length > BUFFER_BYTES) {
      this.flush();
      this.writeOut(b, records);
      return;
    }
    this.makeRoom(b.length);
    b.copy(this.buf, this.used);
    this.used += b.length;
    this.endUnit(ms, records);
  }

  private endUnit(ms: number, records: number): void {
    this.unitEnds.push(this.used);
    this.unitMs.push(ms);
    this.unitRecords.push(records);
  }

  /** Room for n more bytes: write what is settled, else grow while held bytes are few. */
  private makeRoom(n: number): void {
    if (this.used + n <= this.buf.length) return;
    if (this.options.holdBack && this.buf.length < MAX_HELD_BYTES && this.used + n <= MAX_HELD_BYTES && this.unitEnds.length > 0) {
      // keep the young records held: a bigger buffer rather than an early write
      const bigger = Buffer.allocUnsafe(Math.min(MAX_HELD_BYTES, Math.max(this.buf.length * 2, this.used + n)));
      this.buf.copy(bigger, 0, 0, this.used);
      this.buf = bigger;
      return;
    }
    this.flush();
  }

  private heldRecords(upTo = this.unitEnds.length): number {
    let n = 0;
    for (let i = 0; i < upTo; i++) n += this.unitRecords[i];
    return n;
  }

  /** Drops the first `units` units from the buffer (they were written). */
  private forget(units: number): void {
    if (units === 0) return;
    const bytes = this.unitEnds[units - 1];
    this.buf.copy(this.buf, 0, bytes, this.used);
    this.used -= bytes;
    this.unitEnds.splice(0, units);
    this.unitMs.splice(0, units);
    this.unitRecords.splice(0, units);
    for (let i = 0; i < this.unitEnds.length; i++) this.unitEnds[i] -= bytes;
  }

  /** Writes everything buffered. */
  flush(): void {
    this.takeSecrets();
    if (this.used === 0 || this.failed) return;
    this.writeOut(this.buf.subarray(0, this.used), this.heldRecords());
    this.empty();
  }

  private empty(): void {
    this.used = 0;
    this.unitEnds.length = this.unitMs.length = this.unitRecords.length = 0;
    // A buffer grown for held records is kept: records are held again within the quarter
    // second, and allocating it anew each time cost more CPU than the copies (fresh pages).
    if (this.buf.length > BUFFER_BYTES && !this.options.holdBack) this.buf = Buffer.allocUnsafe(BUFFER_BYTES);
  }

  /**
   * Writes the records captured before `before` (ms; a function is asked once the new keys
   * were taken); younger ones stay held.
   */
  flushSettled(before: number | (() => number)): void {
    this.takeSecrets();
    if (this.used === 0 || this.failed) return;
    const beforeMs = typeof before === 'number' ? before : before();
    let i = 0;
    while (i < this.unitMs.length && this.unitMs[i] < beforeMs) i++;
    if (i === this.unitMs.length) return this.flush();
    if (i === 0) return;
    this.writeOut(this.buf.subarray(0, this.unitEnds[i - 1]), this.heldRecords(i));
    this.forget(i);
  }

  private writeOut(chunk: Buffer, records: number): void {
    if (this.failed) return;
    if (this.target?.deferred) {
      // the file at the path still holds what was there: these wait for commit()
      this.beforeCommit.push({ chunk: Buffer.from(chunk), records });
      return;
    }
    try {
      this.guard?.writing(this.committed + chunk.length);
      writeAll(this.fd, chunk);
      this.committed += chunk.length;
      this.records += records;
      this.guard?.written(this.committed);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      // keep the file readable: cut a partly written record off
      if (this.target) {
        try {
          fs.ftruncateSync(this.fd, this.committed);
          this.guard?.written(this.committed);
        } catch {
          // nothing more can be done for this file
        }
      }
      this.failed = new TracedumpError(
        e.code === 'ENOSPC'
          ? `${quoteName(this.path)}: no space left on device; the file holds every packet up to the last one written`
          : e.code === 'EPIPE'
            ? 'the reader of the capture went away (broken pipe)'
            : `cannot write ${quoteName(this.path)}: ${e.message}`,
        { code: e.code, syscall: 'write', path: this.path },
      );
    }
  }

  /** totals: what the format writes at the end (pcapng statistics); none after a failure. */
  close(totals?: CaptureTotals): void {
    if (this.closed) return;
    if (this.target && !this.target.committed) return this.abandon(); // the program never ran
    const trailer = totals && !this.failed ? this.format.trailer(totals) : undefined;
    if (trailer) this.append(trailer, Infinity, 0);
    this.flush();
    this.closed = true;
    this.guard?.release();
    this.target?.close();
  }
}
