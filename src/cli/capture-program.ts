// The capture command's flags (commander): names, meanings, validation and help text. The flags
// follow tcpdump's where tcpdump has one (-w -r -s -c -i -f -B -C -G -W -U -D -q), strace's for
// what strace has (-p, -u, -o).
import { Command, InvalidArgumentError, Option } from 'commander';
import { collect, integer, pidList, seconds } from './arguments';
import { defaultRingKiB } from '../capture/ring-size';
import { writeAll, writeToReader } from '../output/fd-writer';
import { version } from '../version';

/** The largest snapshot length (tcpdump's MAXIMUM_SNAPLEN); -s 0 asks for it. */
export const MAX_SNAPLEN = 262144;

export interface CliOptions {
  events?: 'text' | 'json';
  output?: string;
  write?: string;
  snaplen: number;
  count?: number;
  duration?: number;
  linger: number;
  bufferSize?: number;
  packetBuffered?: boolean;
  killAfter: number;
  quiet?: boolean;
  kernelFilter: 'auto' | 'ebpf' | 'classic';
  pid?: number[];
  pname?: string;
  user?: string;
  format?: 'pcap' | 'pcapng';
  interface?: string;
  filter?: string;
  fileSize?: number;
  rotateSeconds?: number;
  fileCount?: number;
  keylog?: string;
  tlsKeys: boolean;
  summaryJson?: string;
  captureComment?: string[];
  flows?: string;
  flowsIdle: number;
  top?: boolean;
  flowsActive: number;
  listInterfaces?: boolean;
}

export const EXAMPLES = `
Examples:
  sudo tracedump -w curl.pcapng -- curl -s https://example.com/
      every packet of curl and nothing else, each with its process; the HTTPS is decrypted
      with curl's own TLS keys (tshark -r curl.pcapng -Y http)
  tracedump read curl.pcapng 'tcp port 443'
      list the capture one line per packet, like tcpdump -r, with the process of each
  sudo tracedump -w - -- ./client | wireshark -k -i -
      stream the capture live into Wireshark (the client's stdout goes to stderr)
  sudo tracedump -w app.pcapng --duration 60 -c 10000 -- ./app --flag
      stop after 60 s or 10,000 packets, whichever comes first (exit status 0)
  sudo tracedump -w app.pcapng -f 'tcp port 443' -- ./app
      keep only the HTTPS part of the program's traffic
  sudo tracedump -w 'day-%Y%m%d-%H.pcapng' -G 3600 -- ./long-running-app
      a new file every hour, named by the time
  sudo tracedump -w firefox.pcapng -p 4242
      attach to running process 4242 (every thread, every child it starts from now on);
      Ctrl-C detaches, and the program runs on as before
  sudo tracedump -w chrome.pcapng --pname chrome --duration 30
      attach to every process named chrome for 30 seconds
  sudo tracedump --events -o calls.txt -- curl -s http://127.0.0.1:8080/
      strace-like socket, fork, exec and exit events into calls.txt, no capture
  sudo tracedump -w run.pcapng --summary-json run.json -- ./app
      the end-of-run figures as JSON for a batch script
  sudo tracedump -w run.pcapng --flows run.flows.jsonl -- ./app
      the flow records (Zeek conn.log fields, the process, server names) as flows end
  sudo tracedump -w app.pcapng --top -p 4242
      a live table of what process 4242 exchanges, by flow or by process (keys v, r, b, p, n)
  tracedump flows curl.pcapng
      the flows of a capture: one line per connection, with its process and server name
  tracedump objects curl.pcapng
      the HTTP requests (decrypted), DNS questions and TLS connections in it (needs tshark)
  tracedump stats --html report.html runs/
      per application: distributions of flow and object sizes, durations, destinations

Stopping: Ctrl-C goes to the command as it would without tracedump, and tracedump finishes
the file when the command exits; a second Ctrl-C stops at once. SIGTERM/SIGHUP, -c and
--duration send SIGTERM to the command (SIGKILL after --kill-after); attached processes are
detached instead. The file is readable after any stop, even a SIGKILL of tracedump. SIGUSR1
prints the figures so far.

Exit status: the command's (128+N if signal N killed it); 0 after -c, --duration or a -G -W
limit unless the command failed on its own, and when attached; 127: command not found, 126:
it cannot be executed, 125: tracedump itself failed (nothing was written then).

More: man tracedump; tracedump read, flows, objects, stats, campaign and extcap --help.`;

function snaplen(value: string): number {
  if (value === '0') return MAX_SNAPLEN; // tcpdump: 0 means the largest
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 64 || n > MAX_SNAPLEN)
    throw new InvalidArgumentError(`the snapshot length must be 0 (the largest, ${MAX_SNAPLEN}) or a whole number from 64 to ${MAX_SNAPLEN}`);
  return n;
}

export function buildCaptureProgram(): Command {
  return new Command('tracedump')
    .usage(
      '[options] [--] <command> [args...]\n' +
        '       tracedump [options] -p PID[,PID...] | --pname NAME\n' +
        '       tracedump read FILE [expression]   (or tracedump -r FILE)\n' +
        '       tracedump flows FILE...\n' +
        '       tracedump objects FILE...\n' +
        '       tracedump stats FILE|DIR...\n' +
        '       tracedump campaign run PLAN.yaml | ls | show | export\n' +
        '       tracedump extcap install   (then the interface tracedump in Wireshark)\n' +
        '       tracedump -D',
    )
    .description('Run a command and capture the network traffic of it and of every process and thread it starts, and nothing else.')
    .version(version, '-V, --version')
    .helpOption('-h, --help', 'show this help')
    .option('-w, --write <file>', 'write the capture to file (pcapng if it ends in .pcapng, else pcap); - for stdout (pcapng)')
    .addOption(new Option('--format <format>', 'capture file format (default: by the file name; pcapng for -w -)').choices(['pcap', 'pcapng']))
    .option('-s, --snaplen <bytes>', `bytes to keep of each packet; 0: the largest (${MAX_SNAPLEN})`, snaplen, MAX_SNAPLEN)
    .option('-c, --count <n>', 'stop after n packets are written', integer('count', 1, Number.MAX_SAFE_INTEGER))
    .option('--duration <seconds>', 'stop after this many seconds', seconds('duration'))
    .option('-i, --interface <iface[,iface...]>', 'capture only on these interfaces (names or indexes from -D; default any: every interface)')
    .option('-f, --filter <expression>', 'keep only the packets that also match this pcap-filter expression (tcpdump syntax; needs libpcap)')
    .option('-p, --pid <pid[,pid...]>', 'attach to these running processes instead of running a command', pidList)
    .option('--pname <name>', 'attach to every running process with this name')
    .option('-u, --user <user>', 'run the command as this user (default under sudo: the user who ran sudo)')
    .option('--keylog <file>', "also write the TLS keys the program logs to file (NSS key log format, for Wireshark's preferences)")
    .option('--no-tls-keys', 'do not ask the program for its TLS keys (no SSLKEYLOGFILE, no Node --tls-keylog)')
    .option('-C, --file-size <MB>', 'start a new file once the current one is larger than MB million bytes (FILE, FILE1, FILE2...)', integer('file size', 1, 1_000_000))
    .option('-G, --rotate-seconds <seconds>', 'start a new file every this many seconds; strftime(3) conversions in -w FILE name them', integer('rotation period', 1, 31_536_000))
    .option('-W, --file-count <n>', 'with -C: keep at most n files, overwritten in turn; with -G: stop after n files', integer('file count', 1, 1_000_000))
    .option('--linger <seconds>', 'after the last traced process exits, keep capturing until its connections are done, this long at most', seconds('linger'), 1)
    .option('--kill-after <seconds>', 'after -c/--duration/SIGTERM, SIGKILL the command if it is still running after this long', seconds('kill-after'), 5)
    .option('-B, --buffer-size <KiB>', `kernel capture ring size in KiB (default a 64th of the memory, 64 to 1024 MiB: ${defaultRingKiB()} here)`, integer('buffer size', 8192, 4194304))
    .option('-U, --packet-buffered', 'flush the file after every batch of packets (default: at least every second)')
    .addOption(
      new Option('--kernel-filter <mode>', 'kernel filter: eBPF rule maps, the classic BPF fallback, or eBPF where allowed')
        .choices(['auto', 'ebpf', 'classic'])
        .default('auto'),
    )
    .addOption(new Option('--events [format]', 'print the socket, fork, exec and exit events of the command (text or json) on stderr').choices(['text', 'json']).preset('text'))
    .option('-o, --output <file>', 'with --events: write the events to file instead of stderr (as strace -o)')
    .option('--summary-json <file>', 'write the end-of-run figures to file as JSON')
    .option('--capture-comment <text>', "a comment in the pcapng file's section header (as dumpcap's; repeatable)", collect)
    .option('--flows <file>', "with -w: write the capture's flow records to file as JSON lines while it runs (as tracedump flows --json makes them from the file)")
    .option('--top', "a live table on the terminal of the program's flows (or processes), with their server names, bytes and rates, refreshed every second")
    .option('--flows-idle <seconds>', 'with --flows: a flow without a packet this long ends, by the clock (default 120)', seconds('flows-idle'), 120)
    .option('--flows-active <seconds>', 'with --flows: a flow ends after this long in all (default 1800)', seconds('flows-active'), 1800)
    .option('-q, --quiet', 'no status line, no summary line')
    .option('-D, --list-interfaces', 'list the network interfaces -i takes, and exit')
    .argument('[command...]', 'the command to run, with its arguments')
    .passThroughOptions()
    .showSuggestionAfterError()
    .showHelpAfterError('(tracedump --help lists the options)')
    .addHelpText('after', EXAMPLES)
    .configureOutput({
      writeOut: (s) => writeToReader(1, s),
      writeErr: (s) => writeAll(2, s),
      outputError: (s, write) => write(s.replace(/^error: /, 'tracedump: ')),
    })
    .exitOverride();
}

/** Options that take a value (their next word is not the command), long and short. */
const VALUE_OPTIONS = new Set(
  ['-w', '--write', '--format', '-s', '--snaplen', '-c', '--count', '--duration', '-i', '--interface', '-f', '--filter', '-p', '--pid', '--pname', '-u', '--user']
    .concat(['--keylog', '-C', '--file-size', '-G', '--rotate-seconds', '-W', '--file-count', '--linger', '--kill-after', '-B', '--buffer-size'])
    .concat(['--kernel-filter', '-o', '--output', '--summary-json', '--capture-comment', '--flows', '--flows-idle', '--flows-active']),
);

/**
 * `-r FILE` among the options before the command: the words meant for `tracedump read`
 * (tcpdump -r habits: `tracedump -r f.pcapng -c 5 'tcp port 80'`), else undefined.
 */
export function readArguments(args: string[]): string[] | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--' || !a.startsWith('-') || a === '-') return undefined; // the command starts
    if (a === '-r' || a === '--read' || /^--read=/.test(a) || /^-[nt]*r/.test(a)) return args;
    if (VALUE_OPTIONS.has(a)) i++;
  }
  return undefined;
}

// `--events` takes the next word as its format only when it is one (`--events json -p 42`);
// any other word starts the command (`--events curl ...` runs curl; a program named json
// runs as `--events -- json`).
export function normalizeArgs(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--' || !a.startsWith('-')) return out.concat(args.slice(i));
    if (a !== '--events') {
      out.push(a);
      if (VALUE_OPTIONS.has(a) && i + 1 < args.length) out.push(args[++i]);
      continue;
    }
    const next = args[i + 1];
    if (next === 'text' || next === 'json') i++;
    out.push(`--events=${next === 'json' ? 'json' : 'text'}`);
  }
  return out;
}
