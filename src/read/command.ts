// `tracedump read FILE`: one line per packet of a pcap or pcapng file, like `tcpdump -r`, with
// the process each packet belongs to (from tracedump's pcapng) in its own columns.
//
// Exit status: 0 every packet read; 1 the file is damaged after a good start (cut short in the
// middle of a record, a block that cannot be right) — the whole packets before it are printed
// first; 2 it is not a capture file, cannot be opened, or the arguments are wrong.
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { printError, writeAll } from '../output/fd-writer';
import { TracedumpError } from '../errors';
import { compileFilter } from '../capture/pcap-filter';
import { native } from '../native';
import { quoteName } from '../text/quote';
import { decode } from './decode';
import { Clock, TIME_STYLES, type TimeStyle, jsonLine, processInfo, textLine } from './print';
import { type CaptureInterface, CaptureReader, ReadError } from './reader';

export const EXIT_READ_DAMAGED = 1;
export const EXIT_READ_FAILURE = 2;

interface ReadOptions {
  json?: boolean;
  pid?: number[];
  comm?: string[];
  count?: number;
  read?: string;
  timeStyle: TimeStyle;
  number: boolean;
  n?: boolean;
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
Columns: frame number (as Wireshark numbers the packets of the file), time (local, the
file's precision), pid, command, direction from the program's side (in/out; - when the file
does not say), protocol, source > destination, length as tcpdump gives it (the payload of a
TCP or UDP segment, else the IP payload), TCP flags (F S R P A U E C), and what an ICMP
message is about. pid and command come from tracedump's pcapng files (-w FILE.pcapng); other
files show '-'.

An expression (pcap-filter(7), as tcpdump takes it; needs libpcap) keeps only the packets it
matches; frame numbers stay those of the file.

Examples:
  tracedump read curl.pcapng
  tracedump read curl.pcapng 'tcp port 443 and tcp[tcpflags] & tcp-syn != 0'
  tracedump -r app.pcapng -tttt --pid 4242,4243 -c 20
  tracedump read --json --comm curl browser.pcapng | jq -r .dst | sort | uniq -c

Exit status: 0 all read; 1 the file is cut short or damaged (the whole packets before it are
printed); 2 not a capture file, or bad arguments.`;

function buildProgram(): Command {
  return new Command('tracedump read')
    .usage('[options] FILE [expression]\n       tracedump -r FILE [options] [expression]')
    .description('Print the packets of a pcap or pcapng file, one line each, with the process of each packet.')
    .helpOption('-h, --help', 'show this help')
    .option('-r, --read <file>', "the file to read ('-' for standard input), as tcpdump -r")
    .option('--json', 'print JSON lines (frame, time, pid, tid, comm, exe, direction, iface, proto, src, sport, dst, dport, len, iplen, caplen, flags...)')
    .option('--pid <pid[,pid...]>', 'only packets of these processes (repeatable)', pidList)
    .option('--comm <name>', 'only packets of processes with this command name (repeatable)', collect)
    .option('-c, --count <n>', 'stop after printing n packets', positive)
    .addOption(
      new Option('-t, --time-style <style>', 'the time column: clock (default), none (-t), epoch (-tt), delta (-ttt), date (-tttt), since-first (-ttttt)')
        .choices(TIME_STYLES)
        .default('clock'),
    )
    .option('--no-number', 'leave out the frame number column')
    .option('-n', 'names are never resolved (accepted for tcpdump habits)')
    .argument('[file-and-expression...]', "the file ('-' for standard input; not with -r), then a pcap-filter expression")
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

/**
 * tcpdump's spellings: -t, -tt, -ttt, -tttt, -ttttt for the time styles, -n (never resolving
 * names), and both clustered with -r (`-nr FILE`, `-ttttr FILE`).
 */
export function normalizeReadArgs(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') return out.concat(argv.slice(i));
    const m = /^-([nt]+)(r(.*))?$/.exec(a);
    if (!m) {
      out.push(a);
      continue;
    }
    const ts = m[1].split('').filter((c) => c === 't').length;
    if (ts > 0) out.push(`--time-style=${TIME_STYLES[Math.min(ts, 5)]}`);
    if (m[1].includes('n')) out.push('-n');
    if (m[2] !== undefined) out.push('--read', ...(m[3] ? [m[3]] : []));
  }
  return out;
}

export async function runRead(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    program.parse(normalizeReadArgs(argv), { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : EXIT_READ_FAILURE;
    throw err;
  }
  const opts = program.opts<ReadOptions>();
  const words = [...program.args];
  const file = opts.read ?? words.shift();
  if (file === undefined) {
    printError('read: no file given; tracedump read --help shows how');
    return EXIT_READ_FAILURE;
  }
  const expression = words.length ? words.join(' ') : undefined;
  const label = file === '-' ? 'standard input' : quoteName(file);
  const pids = opts.pid ? new Set(opts.pid) : undefined;
  const comms = opts.comm ? new Set(opts.comm) : undefined;
  const limit = opts.count ?? Infinity;

  let matches: ExpressionFilter | undefined;
  try {
    matches = expression === undefined ? undefined : new ExpressionFilter(expression);
  } catch (err) {
    if (!(err instanceof TracedumpError)) throw err;
    printError(err.message + (err.hint ? `\n  ${err.hint}` : ''));
    return EXIT_READ_FAILURE;
  }
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

  const clock = new Clock(opts.timeStyle);
  let printed = 0;
  let status = 0;
  try {
    while (printed < limit && !out.closed) {
      const rec = reader.next();
      if (!rec) break;
      const proc = processInfo(rec);
      if (pids && (proc.pid === null || !pids.has(proc.pid))) continue;
      if (comms && (proc.comm === null || !comms.has(proc.comm))) continue;
      if (matches && !matches.test(rec.iface, rec.data, rec.origLen)) continue;
      const d = decode(rec.iface.linktype, rec.data, rec.origLen, rec.flags);
      out.push(
        opts.json
          ? jsonLine(rec, proc, d)
          : textLine(opts.number ? rec.frame : undefined, clock.text(rec.sec, rec.nsec, rec.iface.digits), proc, d),
      );
      printed++;
    }
  } catch (err) {
    if (err instanceof TracedumpError) {
      out.flush();
      printError(err.message + (err.hint ? `\n  ${err.hint}` : ''));
      reader.close();
      return EXIT_READ_FAILURE;
    }
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

/**
 * The expression, compiled by libpcap for each link type the file's interfaces have (a pcapng
 * file may mix them), and run on each frame as tcpdump -r does.
 */
class ExpressionFilter {
  private readonly programs = new Map<string, Buffer>();

  constructor(private readonly expression: string) {
    // libpcap missing fails before the file is read; the expression itself is checked for each
    // link type (`ether host` is fine for Ethernet, not for raw IP)
    try {
      compileFilter(expression, 262144, 'read');
    } catch (err) {
      if ((err as TracedumpError).code === 'ELIBPCAP') throw err;
    }
  }

  test(iface: CaptureInterface, frame: Buffer, wireLength: number): boolean {
    const key = `${iface.linktype}/${iface.snaplen}`;
    let program = this.programs.get(key);
    if (!program) {
      program = compileFilter(this.expression, iface.snaplen || 262144, `read (link type ${iface.linktype})`, iface.linktype);
      this.programs.set(key, program);
    }
    return native().filterMatches(program, frame, wireLength);
  }
}
