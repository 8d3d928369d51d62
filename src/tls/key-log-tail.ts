// Follows one text file that other processes append to (tail -F): the whole lines added since
// the last read. The file may appear later, or be truncated; a partial last line waits.
import * as fs from 'node:fs';

const CHUNK = 64 * 1024;

export class KeyLogTail {
  private fd?: number;
  private offset = 0;
  private partial = '';
  private readonly chunk = Buffer.allocUnsafe(CHUNK);

  /** fromEnd: lines already in the file are not read (they belong to earlier runs). */
  constructor(
    readonly path: string,
    fromEnd: boolean,
  ) {
    if (this.open() && fromEnd) this.offset = fs.fstatSync(this.fd!).size;
  }

  readLines(): string[] {
    if (this.fd === undefined && !this.open()) return [];
    let text = '';
    for (;;) {
      const n = fs.readSync(this.fd!, this.chunk, 0, CHUNK, this.offset);
      if (n === 0) break;
      this.offset += n;
      text += this.chunk.toString('latin1', 0, n);
    }
    if (!text) {
      // truncated (or replaced by a shorter file): start over at its beginning
      if (fs.fstatSync(this.fd!).size < this.offset) {
        this.offset = 0;
        this.partial = '';
      }
      return [];
    }
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop() ?? '';
    return lines;
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }

  private open(): boolean {
    try {
      this.fd = fs.openSync(this.path, fs.constants.O_RDONLY);
      return true;
    } catch {
      return false; // not written yet
    }
  }
}
