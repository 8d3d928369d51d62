// `tracedump read`'s flags (commander): names, meanings, validation and help text, and the
// arguments turned into a ReadRequest for read/run.ts.
import { Command, CommanderError, Option } from 'commander';
import { printError, writeAll, writeToReader } from '../output/fd-writer';
import { TIME_STYLES, type TimeStyle } from '../read/print';
import { EXIT_READ_FAILURE, type ReadRequest } from '../read/run';
import { collect, integer, pidList } from './arguments';

interface ReadFlags {
  json?: boolean;
  pid?: number[];
  comm?: string[];
  count?: number;
  read?: string;
  timeStyle: TimeStyle;
  number: boolean;
  n?: boolean;
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

function buildReadProgram(): Command {
  return new Command('tracedump read')
    .usage('[options] FILE [expression]\n       tracedump -r FILE [options] [expression]')
    .description('Print the packets of a pcap or pcapng file, one line each, with the process of each packet.')
    .helpOption('-h, --help', 'show this help')
    .option('-r, --read <file>', "the file to read ('-' for standard input), as tcpdump -r")
    .option('--json', 'print JSON lines (frame, time, pid, tid, comm, exe, direction, iface, proto, src, sport, dst, dport, len, iplen, caplen, flags...)')
    .option('--pid <pid[,pid...]>', 'only packets of these processes (repeatable)', pidList)
    .option('--comm <name>', 'only packets of processes with this command name (repeatable)', collect)
    .option('-c, --count <n>', 'stop after printing n packets', integer('count', 1))
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
      writeOut: (s) => writeToReader(1, s),
      writeErr: (s) => writeAll(2, s),
      outputError: (s, write) => write(s.replace(/^error: /, 'tracedump read: ')),
    })
    .exitOverride();
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

/** The arguments after `read` (or with -r): a request, or the exit status (help, or an error said). */
export function parseReadArgs(argv: string[]): ReadRequest | number {
  const program = buildReadProgram();
  try {
    program.parse(normalizeReadArgs(argv), { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : EXIT_READ_FAILURE;
    throw err;
  }
  const opts = program.opts<ReadFlags>();
  const words = [...program.args];
  const file = opts.read ?? words.shift();
  if (file === undefined) {
    printError('read: no file given; tracedump read --help shows how');
    return EXIT_READ_FAILURE;
  }
  return {
    file,
    expression: words.length ? words.join(' ') : undefined,
    json: !!opts.json,
    pids: opts.pid ? new Set(opts.pid) : undefined,
    comms: opts.comm ? new Set(opts.comm) : undefined,
    limit: opts.count ?? Infinity,
    timeStyle: opts.timeStyle,
    number: opts.number,
  };
}
