// Capture output that moves on to new files, with tcpdump's meanings: -C MB (a new file once
// the current one holds more than MB million bytes), -G SECONDS (a new file every period, its
// name made by strftime), -W N (with -C: a ring of N files, overwritten in turn; with -G alone:
// stop after N files). Every file is whole on its own, with its own headers.
import type { CaptureFormat, CaptureTotals, PacketOwner } from './format';
import { CaptureFile, type CaptureFileOptions } from './capture-file';
import type { SllPacket } from './pcap';
import type { TracedumpError } from '../errors';
import type { FileFigures } from './format';

export interface RotationOptions {
  /** -C: million bytes per file */
  fileSizeMB?: number;
  /** -G: seconds per file */
  periodSec?: number;
  /** -W: files kept (ring with -C) or made (with -G alone) */
  fileCount?: number;
}

export interface CaptureOutputOptions {
  path: string;
  /** A fresh format (its own interface numbering, names) for every file. */
  newFormat: () => CaptureFormat;
  /** How every file is opened (owner, mode, holding back). */
  file?: CaptureFileOptions;
  rotation?: RotationOptions;
  /** What a file closed by rotation says of the capture at its end. */
  totals: () => CaptureTotals;
  /** -G with -W: the last file allowed is full. */
  onLimit?: () => void;
}

/** See CaptureOutput.knownTarget. */
export interface KnownRecordTarget {
  file: CaptureFile;
  /** -C: a packet is written to a new file once the current one holds more than this (bytes). */
  sizeLimit: number;
  /** -G: seconds per file (0: none), and the period of the current file. */
  periodSec: number;
  period: number;
}

export class CaptureOutput {
  private file: CaptureFile;
  private files = 0; // files opened so far
  private period = 0; // -G: the period the current file belongs to
  private packetsBefore = 0; // packets in files already closed
  private stopped = false;
  private committed = false;
  private readonly names: string[] = [];
  private readonly closedFigures = new Map<string, FileFigures>();

  constructor(private readonly o: CaptureOutputOptions) {
    this.period = this.periodOf(Date.now());
    this.file = this.open(Date.now());
  }

  get error(): TracedumpError | undefined {
    return this.file.error;
  }

  /** Packets in the files written (after a failed write: the ones before it). */
  get packetsWritten(): number {
    return this.packetsBefore + this.file.packetsWritten;
  }

  /** Packets and bytes of each file as it is now (a -W ring: the last contents of each name). */
  fileFigures(): FileFigures[] {
    const now = new Map(this.closedFigures);
    now.set(this.file.path, { path: this.file.path, packets: this.file.packetsWritten, bytes: this.file.bytesWritten });
    return this.fileNames.map((n) => now.get(n)).filter((f): f is FileFigures => f !== undefined);
  }

  /** The files written, in the order first opened (a -W ring's names once each). */
  get fileNames(): readonly string[] {
    return [...new Set(this.names)];
  }

  /** Grows with every new file (a new format: its own interface numbering). */
  get generation(): number {
    return this.files;
  }

  /**
   * Where the native path may write records now, and how far: up to the next -C or -G
   * boundary, which a packet then crosses through write() (the rotation is done there).
   * Undefined when nothing more may be written.
   */
  knownTarget(): KnownRecordTarget | undefined {
    if (this.stopped) return undefined;
    const r = this.o.rotation;
    return { file: this.file, sizeLimit: r?.fileSizeMB ? r.fileSizeMB * 1e6 : Infinity, periodSec: r?.periodSec ?? 0, period: this.period };
  }

  /** False when the packet was not written: the last file a -G -W limit allows is full. */
  write(p: SllPacket, owner: PacketOwner): boolean {
    if (this.stopped) return false;
    const r = this.o.rotation;
    if (r?.periodSec) {
      const period = this.periodOf(p.sec * 1000);
      if (period > this.period) {
        if (r.fileCount && !r.fileSizeMB && this.files >= r.fileCount) {
          this.stopped = true; // -G -W N: N files made
          this.o.onLimit?.();
          return false;
        }
        this.period = period;
        this.rotate(p.sec * 1000);
      }
    }
    if (r?.fileSizeMB && this.file.pendingBytes > r.fileSizeMB * 1e6) this.rotate(p.sec * 1000);
    this.file.write(p, owner);
    return true;
  }

  flush(): void {
    this.file.flush();
  }

  /** The program started: the file takes its place (see CaptureFile.commit). */
  commit(): void {
    this.committed = true;
    this.file.commit();
  }

  /** The program never started: nothing is left at the path but what was there. */
  abandon(): void {
    this.file.abandon();
  }

  /** Writes the records captured before `before` (see CaptureFile.flushSettled). */
  flushSettled(before: number | (() => number)): void {
    this.file.flushSettled(before);
  }

  /** TLS key log lines ahead of every record not yet written; false: the format cannot hold them. */
  insertSecrets(keyLog: Buffer): boolean {
    return this.file.insertBeforeHeld(keyLog);
  }

  close(totals?: CaptureTotals): void {
    this.file.close(totals);
  }

  private periodOf(ms: number): number {
    const g = this.o.rotation?.periodSec;
    return g ? Math.floor(ms / 1000 / g) : 0;
  }

  private rotate(atMs: number): void {
    this.file.close(this.o.totals());
    this.closedFigures.set(this.file.path, { path: this.file.path, packets: this.file.packetsWritten, bytes: this.file.bytesWritten });
    this.packetsBefore += this.file.packetsWritten;
    this.file = this.open(atMs);
  }

  private open(atMs: number): CaptureFile {
    const name = fileName(this.o.path, this.files, this.o.rotation, atMs);
    this.files++;
    this.names.push(name);
    const file = CaptureFile.open(name, this.o.newFormat(), this.o.file);
    if (this.committed) file.commit(); // a later file of a capture under way
    return file;
  }
}

/** The name of file number n (0-based), as tcpdump makes it. */
export function fileName(path: string, n: number, r: RotationOptions | undefined, atMs: number): string {
  if (path === '-' || !r) return path;
  let name = r.periodSec ? strftime(path, new Date(atMs)) : path;
  if (r.fileSizeMB) {
    if (r.fileCount) name += String(n % r.fileCount).padStart(String(r.fileCount - 1).length, '0');
    else if (n > 0) name += String(n);
  }
  return name;
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** strftime(3) in local time, for the conversions file names use. */
export function strftime(format: string, d: Date): string {
  const dayOfYear = Math.floor((Date.UTC(d.getFullYear(), d.getMonth(), d.getDate()) - Date.UTC(d.getFullYear(), 0, 1)) / 864e5) + 1;
  const map: Record<string, () => string> = {
    Y: () => String(d.getFullYear()),
    y: () => pad(d.getFullYear() % 100),
    m: () => pad(d.getMonth() + 1),
    d: () => pad(d.getDate()),
    e: () => String(d.getDate()).padStart(2, ' '),
    H: () => pad(d.getHours()),
    I: () => pad(d.getHours() % 12 || 12),
    M: () => pad(d.getMinutes()),
    S: () => pad(d.getSeconds()),
    j: () => pad(dayOfYear, 3),
    s: () => String(Math.floor(d.getTime() / 1000)),
    a: () => DAYS[d.getDay()],
    b: () => MONTHS[d.getMonth()],
    p: () => (d.getHours() < 12 ? 'AM' : 'PM'),
    F: () => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`,
    T: () => `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`,
    '%': () => '%',
  };
  return format.replace(/%([A-Za-z%])/g, (all, c: string) => (map[c] ? map[c]() : all));
}
