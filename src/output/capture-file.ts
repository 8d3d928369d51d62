// The capture file (or stdout) in a given format: whole records only, buffered, flushed on
// demand. A failed write (disk full) leaves the file cut back to its last whole record.
import * as fs from 'node:fs';
import { TracedumpError } from '../errors';
import type { SllPacket } from './pcap';
import type { CaptureFormat, CaptureTotals, PacketOwner } from './format';
import { writeAll } from './fd-writer';
import { type NativeFileGuard, native } from '../native';

const BUFFER_BYTES = 1 << 20;

export class CaptureFile {
  private readonly buf = Buffer.allocUnsafe(BUFFER_BYTES);
  private used = 0;
  private committed = 0; // bytes of whole records known to be in the file
  private buffered = 0; // records in buf
  private records = 0; // records known to be in the file
  private closed = false;
  private failed?: TracedumpError;

  private constructor(
    readonly path: string,
    private readonly fd: number,
    private readonly ownsFd: boolean,
    private readonly format: CaptureFormat,
    private readonly guard?: NativeFileGuard,
  ) {}

  /**
   * Opens (creates or truncates) path, or stdout for '-'; writes the file header. owner: the
   * user the file is given to (the user the command runs as, like tcpdump -Z).
   */
  static open(path: string, format: CaptureFormat, owner?: { uid: number; gid: number }): CaptureFile {
    let file: CaptureFile;
    if (path === '-') file = new CaptureFile('-', 1, false, format);
    else {
      let fd: number;
      try {
        fd = fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC, 0o644);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        throw new TracedumpError(`cannot write ${path}: ${e.message.replace(/^[A-Z]+: /, '').replace(/, open.*$/, '')}`, {
          code: e.code,
          syscall: 'open',
          path,
          hint: 'choose another path with -w, or -w - to write to stdout',
        });
      }
      if (owner) {
        try {
          fs.fchownSync(fd, owner.uid, owner.gid);
        } catch (err) {
          fs.closeSync(fd);
          throw new TracedumpError(`cannot give ${path} to uid ${owner.uid}: ${(err as Error).message}`, { syscall: 'fchown', path });
        }
      }
      let guard: NativeFileGuard;
      try {
        guard = new (native().FileGuard)(fd);
      } catch (err) {
        fs.closeSync(fd);
        throw err;
      }
      file = new CaptureFile(path, fd, true, format, guard);
    }
    file.append(format.header());
    file.flush();
    // Not even the header fits (a full disk): fail now, before the command starts.
    if (file.failed) {
      const err = file.failed;
      file.close();
      if (path !== '-') fs.rmSync(path, { force: true }); // an empty file is no capture
      const why = err.code === 'ENOSPC' ? 'no space left on device' : err.message;
      throw new TracedumpError(`cannot write ${path}: ${why}`, { code: err.code, syscall: 'write', path, hint: 'free some space, or choose another path with -w' });
    }
    return file;
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
    const before = this.format.before(p, owner);
    if (before) this.append(before);
    const size = this.format.recordSize(p, owner);
    if (this.used + size > BUFFER_BYTES) this.flush();
    if (size > BUFFER_BYTES) {
      const one = Buffer.allocUnsafe(size);
      this.format.writeRecord(one, 0, p, owner);
      this.flush();
      this.writeOut(one, 1);
    } else {
      this.used = this.format.writeRecord(this.buf, this.used, p, owner);
      this.buffered++;
    }
    const after = this.format.after(p, owner);
    if (after) this.append(after);
  }

  private append(b: Buffer): void {
    if (this.used + b.length > BUFFER_BYTES) this.flush();
    if (b.length > BUFFER_BYTES) {
      this.writeOut(b, 0);
      return;
    }
    b.copy(this.buf, this.used);
    this.used += b.length;
  }

  flush(): void {
    if (this.used === 0 || this.failed) return;
    const chunk = this.buf.subarray(0, this.used);
    const records = this.buffered;
    this.used = 0;
    this.buffered = 0;
    this.writeOut(chunk, records);
  }

  private writeOut(chunk: Buffer, records: number): void {
    if (this.failed) return;
    try {
      this.guard?.writing(this.committed + chunk.length);
      writeAll(this.fd, chunk);
      this.committed += chunk.length;
      this.records += records;
      this.guard?.written(this.committed);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      // keep the file readable: cut a partly written record off
      if (this.ownsFd) {
        try {
          fs.ftruncateSync(this.fd, this.committed);
          this.guard?.written(this.committed);
        } catch {
          // nothing more can be done for this file
        }
      }
      this.failed = new TracedumpError(
        e.code === 'ENOSPC'
          ? `${this.path}: no space left on device; the file holds every packet up to the last one written`
          : e.code === 'EPIPE'
            ? 'the reader of the capture went away (broken pipe)'
            : `cannot write ${this.path}: ${e.message}`,
        { code: e.code, syscall: 'write', path: this.path },
      );
    }
  }

  /** totals: what the format writes at the end (pcapng statistics); none after a failure. */
  close(totals?: CaptureTotals): void {
    if (this.closed) return;
    const trailer = totals && !this.failed ? this.format.trailer(totals) : undefined;
    if (trailer) this.append(trailer);
    this.flush();
    this.closed = true;
    this.guard?.release();
    if (this.ownsFd) fs.closeSync(this.fd);
  }
}
