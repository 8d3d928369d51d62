// The status line on a terminal: one line on stderr, rewritten in place (at most once a second
// by its caller), cleared before any other message of tracedump and at the end. The command
// shares the terminal; its own output may land beside the line, as beside dumpcap's.
import { writeAll } from '../output/fd-writer';

export class StatusLine {
  private shown = false;

  constructor(private readonly fd: number) {}

  show(text: string): void {
    try {
      writeAll(this.fd, `\r${text}\x1b[K`);
      this.shown = true;
    } catch {
      // the terminal is gone
    }
  }

  clear(): void {
    if (!this.shown) return;
    this.shown = false;
    try {
      writeAll(this.fd, '\r\x1b[K');
    } catch {
      // the terminal is gone
    }
  }
}
