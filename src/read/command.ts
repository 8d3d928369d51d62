// `tracedump read FILE`: one line per packet of a pcap or pcapng file, like `tcpdump -r`, with
// the process each packet belongs to (from tracedump's pcapng) in its own columns.
//
// Exit status: 0 every packet read; 1 the file is damaged after a good start (cut short in the
// middle of a record, a block that cannot be right) — the whole packets before it are printed
// first; 2 it is not a capture file, cannot be opened, or the arguments are wrong.
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { printError, writeAll } from '../output/fd-writer';
import { decode } from './decode';
import { Clock, jsonLine, processInfo, textLine } from './print';
import { CaptureReader, ReadError } from './reader';

export const EXIT_READ_DAMAGED = 1;
export const EXIT_READ_FAILURE = 2;

interface ReadOptions {
  json?: boolean;
  pid?: number[];
  comm?: string[];
  count?: number;
}

function pidList(value: string, previous: number[] | undefined): number[] {
  const out = previous ? [...previous] : [];
  for (const part of value.split(',')) {
    const n = Number(part.trim());
    if (!/^\s*\d+\s*$/.test(part) || !Number.isSafeInteger(n) || n < 0 || n > 0xffffffff)
      throw new InvalidArgumentError(`'${part}' is not a process id`);
    if (!out.includes(n)) out.push(n);
  }
  return out;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return previous ? [...previous, value] : [value];
}

function positive(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('must be a whole number of at least 1');
  return n;
}

const HELP_AFTER = `
Columns: time (local, the file's precision), pid, command, direction (in/out, - when the file
does not say), protocol, source > destination, length from the network header, TCP flags
(F S R P A U E C), and what an ICMP message is about. pid and command come from tracedump's
pcapng files (-w FILE.pcapng); other files show '-'.

Examples:
  tracedump read curl.pcapng
  tracedump read --pid 4242,4243 -c 20 app.pcapng
  tracedump read --json --comm curl browser.pcapng | jq -r .dst | sort | uniq -c

Exit status: 0 all read; 1 the file is cut short or damaged (the whole packets before it are
printed); 2 not a capture file, or bad arguments.`;

function buildProgram(): Command {
  return new Command('tracedump read')
    .usage('[options] FILE')
    .description('Print the packets of a pcap or pcapng file, one line each, with the process of each packet.')
    .helpOption('-h, --help', 'show this help')
    .option('--json', 'print JSON lines (time, pid, tid, comm, exe, direction, iface, proto, src, sport, dst, dport, len, caplen, flags...)')
    .option('--pid <pid[,pid...]>', 'only packets of these processes (repeatable)', pidList)
    .option('--comm <name>', 'only packets of processes with this command name (repeatable)', collect)
    .option('-c, --count <n>', 'stop after printing n packets', positive)
    .argument('<file>', "a pcap or pcapng file ('-' for standard input)")
    .addHelpText('after', HELP_AFTER)
    .configureOutput({
      writeOut: (s) => writeAll(1, s),
      writeErr: (s) => writeAll(2, s),
      outputError: (s, write) => write(s.replace(/^error: /, 'tracedump read: ')),
    })
    .exitOverride();
}

/** Output lines, written in batches: one write() per line would dominate a large file. */
class LineBuffer {
  private parts: string[] = [];
  private size = 0;
  /** Set when stdout is gone (EPIPE: `| head`): stop quietly. */
  closed = false;

  push(line: string): void {
    this.parts.push(line, '\n');
    this.size += line.length + 1;
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

export async function runRead(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    program.parse(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : EXIT_READ_FAILURE;
    throw err;
  }
  const opts = program.opts<ReadOptions>();
  const file = program.args[0];
  const label = file === '-' ? 'standard input' : file;
  const pids = opts.pid ? new Set(opts.pid) : undefined;
  const comms = opts.comm ? new Set(opts.comm) : undefined;
  const limit = opts.count ?? Infinity;

  const out = new LineBuffer();
  let reader: CaptureReader;
  try {
    // lines go out before each read: `tracedump -w - -- cmd | tracedump read -` prints as it comes
    reader = CaptureReader.open(file, () => out.flush());
  } catch (err) {
    if (err instanceof ReadError) {
      printError(`${label}: ${err.message}`);
      return err.kind === 'truncated' ? EXIT_READ_DAMAGED : EXIT_READ_FAILURE;
    }
    throw err;
  }

  const clock = new Clock();
  let printed = 0;
  let status = 0;
  try {
    while (printed < limit && !out.closed) {
      const rec = reader.next();
      if (!rec) break;
      const proc = processInfo(rec);
      if (pids && (proc.pid === null || !pids.has(proc.pid))) continue;
      if (comms && (proc.comm === null || !comms.has(proc.comm))) continue;
      const d = decode(rec.iface.linktype, rec.data, rec.origLen, rec.flags);
      out.push(opts.json ? jsonLine(rec, proc, d) : textLine(clock.text(rec.sec, rec.nsec, rec.iface.digits), proc, d));
      printed++;
    }
  } catch (err) {
    if (!(err instanceof ReadError)) throw err;
    out.flush(); // the whole packets first, then why the rest is missing
    printError(`${label}: ${err.message}`);
    status = err.kind === 'notCapture' ? EXIT_READ_FAILURE : EXIT_READ_DAMAGED;
  } finally {
    reader.close();
  }
  out.flush();
  return status;
}
