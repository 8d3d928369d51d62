// `--top` on the terminal: the table of top.ts drawn on stderr's terminal in its alternate
// screen every second, and the keys that sort it and switch views. Keys are read from the
// terminal only when the traced command does not read it (attached, or its stdin elsewhere):
// the terminal is shared, and the command's input must stay its own. The terminal is set with
// stty (no echo, a key at a time, Ctrl-C still a signal) and put back at the end.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { takeMessages, writeAll } from '../output/fd-writer';
import { type TopCounts, type TopRow, type TopSort, type TopView, processRows, renderTop, withRates } from './top';

// by its path: tracedump runs as root, and the caller's PATH is not to choose what runs
const STTY = fs.existsSync('/usr/bin/stty') ? '/usr/bin/stty' : '/bin/stty';

export interface TopSource {
  rows(): TopRow[];
  readonly ended: Map<number, TopRow>;
}

export class TopScreen {
  private view: TopView = 'flows';
  private sort: TopSort = 'rate';
  private readonly last = new Map<string, number>();
  private lastAt = Date.now();
  private readonly started = Date.now();
  private tty: { fd: number; saved: string } | undefined;
  private keyTimer: NodeJS.Timeout | undefined;
  private open = false;
  /** tracedump's messages while the table is up: the last few shown under it, all printed at the end. */
  private readonly messages: string[] = [];

  constructor(
    private readonly fd: number,
    private readonly source: TopSource,
    private readonly counts: () => TopCounts,
    readKeys: boolean,
  ) {
    if (readKeys) this.tty = takeKeys();
  }

  start(): void {
    this.open = true;
    takeMessages((line) => {
      this.messages.push(line);
      this.draw(false);
    });
    this.write('\x1b[?1049h\x1b[?25l'); // the alternate screen, no cursor
    if (this.tty) {
      const { fd } = this.tty;
      const buf = Buffer.alloc(16);
      // non-blocking reads of the terminal, polled: a key changes the next drawing
      this.keyTimer = setInterval(() => {
        for (;;) {
          let n = 0;
          try {
            n = fs.readSync(fd, buf, 0, buf.length, null);
          } catch {
            return; // EAGAIN: no key
          }
          if (n <= 0) return;
          for (const k of buf.subarray(0, n).toString('latin1')) this.key(k);
        }
      }, 100);
    }
    this.draw();
  }

  private key(k: string): void {
    if (k === 'v') this.view = this.view === 'flows' ? 'processes' : 'flows';
    else if (k === 'r') this.sort = 'rate';
    else if (k === 'b') this.sort = 'bytes';
    else if (k === 'p') this.sort = 'pid';
    else if (k === 'n') this.sort = 'name';
    else return;
    this.draw(false);
  }

  /** Draws the table; `tick`: a second has passed (rates move). */
  draw(tick = true): void {
    if (!this.open) return;
    const now = Date.now();
    const flows = this.source.rows();
    const rows = this.view === 'flows' ? flows : processRows(flows, this.source.ended);
    if (tick) {
      withRates(rows, this.last, (now - this.lastAt) / 1000);
      this.lastAt = now;
    } else {
      for (const r of rows) r.rate = 0;
    }
    const width = process.stderr.columns || 120;
    const height = process.stderr.rows || 30;
    const shown = this.messages.slice(-3);
    const text = renderTop({ view: this.view, sort: this.sort, rows, counts: this.counts(), width, height: height - shown.length, keys: !!this.tty, elapsedSec: (now - this.started) / 1000 });
    this.write(`\x1b[H\x1b[2J${text}${shown.map((m) => `\n${m.slice(0, width)}`).join('')}`);
  }

  /** Back to the normal screen, the terminal as it was; the last table stays printed below. */
  close(): void {
    if (this.keyTimer) clearInterval(this.keyTimer);
    if (this.tty) {
      stty([this.tty.saved]);
      try {
        fs.closeSync(this.tty.fd);
      } catch {
        /* closed */
      }
      this.tty = undefined;
    }
    if (!this.open) return;
    this.open = false;
    takeMessages(undefined);
    this.write('\x1b[?25h\x1b[?1049l');
    for (const m of this.messages) this.write(`${m}\n`);
  }

  private write(s: string): void {
    try {
      writeAll(this.fd, s);
    } catch {
      // the terminal is gone
    }
  }
}

/**
 * stty on the controlling terminal through a descriptor of its own (the child's stdin is made
 * blocking, and so would ours be if it were the same open file).
 */
function stty(args: string[]): { ok: boolean; out: string } {
  let fd: number;
  try {
    fd = fs.openSync('/dev/tty', fs.constants.O_RDONLY | fs.constants.O_NOCTTY);
  } catch {
    return { ok: false, out: '' };
  }
  try {
    const r = spawnSync(STTY, args, { stdio: [fd, 'pipe', 'ignore'], encoding: 'utf8' });
    return { ok: r.status === 0, out: r.stdout ?? '' };
  } finally {
    fs.closeSync(fd);
  }
}

/** The controlling terminal for keys: no echo, a key at a time (signals kept); undefined if none. */
function takeKeys(): { fd: number; saved: string } | undefined {
  const saved = stty(['-g']);
  if (!saved.ok) return undefined;
  if (!stty(['-icanon', '-echo', 'min', '1']).ok) return undefined;
  try {
    const fd = fs.openSync('/dev/tty', fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
    return { fd, saved: saved.out.trim() };
  } catch {
    stty([saved.out.trim()]);
    return undefined;
  }
}
