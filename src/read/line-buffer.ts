// Standard output for read and flows.
import { writeAll } from '../output/fd-writer';

/** Output lines, written in batches: one write() per line would dominate a large file. */
export class LineBuffer {
  private parts: string[] = [];
  private size = 0;
  /** Set when stdout is gone (EPIPE: `| head`): stop quietly. */
  closed = false;

  push(line: string): void {
    this.write(`${line}\n`);
  }

  write(text: string): void {
    this.parts.push(text);
    this.size += text.length;
    if (this.size >= 1 << 16) this.flush();
  }

  flush(): void {
    if (this.parts.length === 0 || this.closed) return;
    const text = this.parts.join('');
    this.parts = [];
    this.size = 0;
    try {
      writeAll(1, text);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EPIPE') this.closed = true;
      else throw err;
    }
  }
}
