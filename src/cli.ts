// The command line: the only reader of argv, and where tracedump's exit status is decided.
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { EXIT_TRACEDUMP_FAILURE, TracedumpError } from './errors';
import type { EventFormat } from './events/format';
import { printError, writeAll } from './output/fd-writer';
import { runSession } from './session';
import { checkTraceable, pidsByName } from './attached';
import { chooseRunAs } from './run-as';
import { formatFor } from './output/formats';
import { runRead } from './read/command';
import { TlsKeyLog } from './tls/key-log';
import type { RotationOptions } from './output/rotation';

import { version } from './version';
import { native } from './native';

// A word as a shell would need it quoted (for the command line recorded in the file).
function shellQuote(w: string): string {
  return /^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;
}

const EXAMPLES = `
Examples:
  sudo tracedump -w curl.pcap -- curl -s http://example.com/
      capture every packet of curl (and nothing else) into curl.pcap; open it in Wireshark
  sudo tracedump -w - -- ./client | wireshark -k -i -
      stream the capture live into Wireshark (the client's stdout goes to stderr)
  sudo tracedump -w app.pcap --duration 60 -c 10000 -- ./app --flag
      stop after 60 s or 10,000 packets, whichever comes first
  sudo tracedump -w app.pcapng -f 'tcp port 443' -- ./app
      pcapng: every packet names its process (pid, tid, program); keep only the HTTPS part
  sudo tracedump -w curl.pcapng -- curl -s https://example.com/
      HTTPS too: the program's TLS keys go into the pcapng, and Wireshark/tshark decrypt it
      with no settings (the file then holds secrets: mode 0600); --keylog FILE keeps them
  sudo tracedump -w 'day-%Y%m%d-%H.pcapng' -G 3600 -- ./long-running-app
      a new file every hour, named by the time
  sudo tracedump -w firefox.pcap -p 4242
      attach to running process 4242 (every thread, every child it starts from now on);
      Ctrl-C detaches, and the program runs on as before
  sudo tracedump -w chrome.pcap --pname chrome --duration 30
      attach to every process named chrome for 30 seconds
  sudo tracedump -w app.pcap -- ./gui-app
      under sudo the command runs as the user who ran sudo (their uid, groups, HOME); -u
      chooses another user, -u root keeps root; the capture file belongs to that user
  tracedump read out.pcapng --pid 4242
      print a capture one line per packet, with the process of each (tracedump read --help)
  sudo tracedump --events -- curl -s http://127.0.0.1:8080/
      print every socket call of curl (connect, bind, sendto...) with its endpoints, no capture
  sudo tracedump --events=json -w out.pcap -- sh -c 'curl -s http://[::1]:8080/'
      capture, and print JSON lines of the socket, fork, exec and exit events

Stopping: Ctrl-C goes to the command as it would without tracedump, and tracedump finishes
the file when the command exits; a second Ctrl-C stops at once. SIGTERM/SIGHUP, -c and
--duration send SIGTERM to the command (SIGKILL after --kill-after); attached processes are
detached instead. The file is readable after any stop, even a SIGKILL of tracedump.

The exit status is the command's (128+N if a signal N killed it; 0 when attached); 127:
command not found, 126: it cannot be executed, 125: tracedump itself failed.`;

export interface CliOptions {
  events?: EventFormat;
  write?: string;
  snaplen: number;
  count?: number;
  duration?: number;
  linger: number;
  bufferSize: number;
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
}

/** -i names to interface indexes; an unknown name is an error before anything starts. */
function interfaceIndexes(list: string): number[] {
  return list.split(',').map((name) => {
    const index = native().interfaceIndex(name.trim());
    if (!index) throw new TracedumpError(`-i ${name}: no such interface`, { code: 'ENODEV', hint: 'see `ip link` for the interfaces of this machine' });
    return index;
  });
}

function rotationOf(opts: CliOptions, output: string): RotationOptions | undefined {
  if (opts.fileSize === undefined && opts.rotateSeconds === undefined) {
    if (opts.fileCount !== undefined) throw new TracedumpError('-W needs -C or -G', { code: 'EUSAGE' });
    return undefined;
  }
  if (output === '-') throw new TracedumpError('-C and -G need a file name (-w FILE), not stdout', { code: 'EUSAGE' });
  return { fileSizeMB: opts.fileSize, periodSec: opts.rotateSeconds, fileCount: opts.fileCount };
}

/** -f: compiled by libpcap now, so a bad expression fails before the command starts. */
function compileUserFilter(expression: string, snaplen: number): Buffer {
  try {
    return native().compileFilter(expression, snaplen);
  } catch (err) {
    throw new TracedumpError(`-f '${expression}': ${(err as Error).message}`, { code: 'EUSAGE', hint: 'the syntax is pcap-filter(7), as in tcpdump' });
  }
}

function pidList(value: string, previous: number[] | undefined): number[] {
  const out = previous ? [...previous] : [];
  for (const part of value.split(',')) {
    const n = Number(part);
    if (!/^\d+$/.test(part.trim()) || !Number.isSafeInteger(n) || n < 1)
      throw new InvalidArgumentError(`'${part}' is not a process id`);
    if (!out.includes(n)) out.push(n);
  }
  return out;
}

function integer(name: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}`);
    return n;
  };
}

function seconds(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`${name} must be a number of seconds (>= 0)`);
    return n;
  };
}

function buildProgram(): Command {
  return new Command('tracedump')
    .usage('[options] [--] <command> [args...]\n       tracedump [options] -p PID[,PID...] | --pname NAME')
    .description('Run a command and capture the network traffic of it and of every process and thread it starts.')
    .version(version, '-V, --version')
    .helpOption('-h, --help', 'show this help')
    .addOption(
      new Option('--events [format]', 'print socket and process events of the command on stderr')
        .choices(['text', 'json'])
        .preset('text'),
    )
    .option('-w, --write <file>', 'write the capture to file (pcapng if it ends in .pcapng, else pcap); - for stdout', undefined)
    .addOption(new Option('--format <format>', 'capture file format (default: by the file name)').choices(['pcap', 'pcapng']))
    .option('-s, --snaplen <bytes>', 'bytes to keep of each packet', integer('snaplen', 64, 262144), 262144)
    .option('-c, --count <n>', 'stop after n packets are written', integer('count', 1, Number.MAX_SAFE_INTEGER))
    .option('--duration <seconds>', 'stop after this many seconds', seconds('duration'))
    .option('--linger <seconds>', 'keep capturing this long after the last traced process exits', seconds('linger'), 1)
    .option('-B, --buffer-size <KiB>', 'kernel capture ring size in KiB', integer('buffer size', 8192, 4194304), 65536)
    .option('-U, --packet-buffered', 'flush the file after every batch of packets (default: at least every second)')
    .option('--kill-after <seconds>', 'after -c/--duration/SIGTERM, SIGKILL the command if it is still running after this long', seconds('kill-after'), 5)
    .option('-q, --quiet', 'no summary line at the end')
    .addOption(
      new Option('--kernel-filter <mode>', 'kernel filter: eBPF rule maps, the classic BPF fallback, or eBPF where allowed')
        .choices(['auto', 'ebpf', 'classic'])
        .default('auto'),
    )
    .option('-C, --file-size <MB>', 'start a new file once the current one is larger than MB million bytes (FILE, FILE1, FILE2...)', integer('file size', 1, 1_000_000))
    .option('-G, --rotate-seconds <seconds>', 'start a new file every this many seconds; strftime(3) conversions in -w FILE name them', integer('rotation period', 1, 31_536_000))
    .option('-W, --file-count <n>', 'with -C: keep at most n files, overwritten in turn; with -G: stop after n files', integer('file count', 1, 1_000_000))
    .option('-i, --interface <iface[,iface...]>', 'capture only on these interfaces (default: all)')
    .option('-f, --filter <expression>', 'keep only the packets that also match this pcap-filter expression (tcpdump syntax)')
    .option('-p, --pid <pid[,pid...]>', 'attach to these running processes instead of running a command', pidList)
    .option('--pname <name>', 'attach to every running process with this name')
    .option('-u, --user <user>', 'run the command as this user (default under sudo: the user who ran sudo)')
    .option('--keylog <file>', 'also write the TLS keys the program logs to file (NSS key log format, for Wireshark\'s preferences)')
    .option('--no-tls-keys', 'do not ask the program for its TLS keys (no SSLKEYLOGFILE, no Node --tls-keylog)')
    .argument('[command...]', 'the command to run, with its arguments')
    .passThroughOptions()
    .showSuggestionAfterError()
    .addHelpText('after', EXAMPLES)
    .configureOutput({
      writeOut: (s) => writeAll(1, s),
      writeErr: (s) => writeAll(2, s),
      outputError: (s, write) => write(s.replace(/^error: /, 'tracedump: ')),
    })
    .exitOverride();
}

// `--events` takes the next word as its format only when it is one (`--events json -p 42`);
// any other word starts the command (`--events curl ...` runs curl; a program named json
// runs as `--events -- json`).
function normalizeArgs(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--' || !a.startsWith('-')) return out.concat(args.slice(i));
    if (a !== '--events') {
      out.push(a);
      continue;
    }
    const next = args[i + 1];
    if (next === 'text' || next === 'json') i++;
    out.push(`--events=${next === 'json' ? 'json' : 'text'}`);
  }
  return out;
}

export async function main(argv: string[] = process.argv.slice(2)): Promise<number> {
  // `tracedump read FILE`: print a capture (a program named read runs as `tracedump -- read`)
  if (argv[0] === 'read') return runRead(argv.slice(1));
  const program = buildProgram();
  try {
    program.parse(normalizeArgs(argv), { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) return 0; // --help, --version
      return EXIT_TRACEDUMP_FAILURE;
    }
    throw err;
  }
  const opts = program.opts<CliOptions>();
  const command: string[] = program.args;
  const attaching = opts.pid !== undefined || opts.pname !== undefined;
  if (attaching && command.length > 0) {
    printError('give either a command or -p/--pname, not both; try `tracedump --help`');
    return EXIT_TRACEDUMP_FAILURE;
  }
  if (attaching && opts.user !== undefined) {
    printError('-u applies to a launched command; attached processes keep their own user');
    return EXIT_TRACEDUMP_FAILURE;
  }
  if (!attaching && command.length === 0) {
    printError('no command given; try `tracedump --help`');
    return EXIT_TRACEDUMP_FAILURE;
  }
  try {
    let attach: number[] | undefined;
    if (attaching) {
      attach = [...(opts.pid ?? [])];
      if (opts.pname !== undefined) {
        const named = pidsByName(opts.pname);
        if (named.length === 0) throw new TracedumpError(`no running process is named ${opts.pname}`, { code: 'ESRCH' });
        for (const pid of named) if (!attach.includes(pid)) attach.push(pid);
      }
      for (const pid of attach) checkTraceable(pid);
    }
    const runAs = attaching ? undefined : chooseRunAs(opts.user, process.env);
    // --events alone traces without capturing; otherwise capture (tcpdump's default file name).
    const output = opts.write ?? (opts.events ? undefined : 'tracedump.pcap');
    const owner = runAs && { uid: runAs.account.uid, gid: runAs.account.gid };
    const format = output === undefined ? undefined : formatFor(output, opts.format);
    if (opts.keylog !== undefined && !opts.tlsKeys) throw new TracedumpError('--keylog and --no-tls-keys contradict each other', { code: 'EUSAGE' });
    const tls = opts.tlsKeys ? tlsKeysFor(attach, runAs?.env ?? process.env, opts, output, format, owner) : undefined;
    try {
      return await runSession({
        attach,
        fileOwner: owner,
        command: attach
          ? undefined
          : {
              argv: command,
              cwd: process.cwd(),
              env: tls?.env ?? runAs?.env ?? process.env,
              // a capture on stdout must stay clean: the command's stdout goes to stderr
              stdio: output === '-' ? [0, 2, 2] : [0, 1, 2],
              user: runAs && { ...owner!, groups: runAs.account.groups },
            },
        events: opts.events,
        summaryFd: opts.quiet ? undefined : 2,
        tlsKeys: tls?.keys,
        capture:
          output === undefined
            ? undefined
            : {
                output,
                format: format!,
                description: attach ? `tracedump -p ${attach.join(',')}` : `tracedump -- ${command.map(shellQuote).join(' ')}`,
                snaplen: opts.snaplen,
                count: opts.count,
                durationSec: opts.duration,
                lingerMs: opts.linger * 1000,
                ringBytes: opts.bufferSize * 1024,
                flushEveryBatch: !!opts.packetBuffered || output === '-',
                killAfterMs: opts.killAfter * 1000,
                filter: opts.kernelFilter,
                interfaces: opts.interface === undefined ? undefined : interfaceIndexes(opts.interface),
                userFilter: opts.filter === undefined ? undefined : compileUserFilter(opts.filter, opts.snaplen),
                rotation: rotationOf(opts, output),
              },
      });
    } finally {
      tls?.keys.close();
    }
  } catch (err) {
    if (err instanceof TracedumpError) {
      printError(err.message + (err.hint ? `\n  ${err.hint}` : ''));
      return err.exitStatus;
    }
    printError(`internal error: ${(err as Error).stack ?? err}`);
    return EXIT_TRACEDUMP_FAILURE;
  }
}

/**
 * The program's TLS key log: a launched command is given one (its environment changes); an
 * attached program's own SSLKEYLOGFILE is read when it was started with one.
 */
function tlsKeysFor(
  attach: number[] | undefined,
  env: NodeJS.ProcessEnv,
  opts: CliOptions,
  output: string | undefined,
  format: 'pcap' | 'pcapng' | undefined,
  owner: { uid: number; gid: number } | undefined,
): { keys: TlsKeyLog; env?: NodeJS.ProcessEnv } | undefined {
  if (output === undefined && opts.keylog === undefined) return undefined; // nowhere to put keys
  const o = { copyTo: opts.keylog, owner, fileHoldsKeys: format === 'pcapng', captureName: output, warn: printError };
  if (!attach) return TlsKeyLog.forLaunch(env, o);
  const keys = TlsKeyLog.forAttach(attach, o);
  if (keys.files.length === 0 && (format === 'pcapng' || opts.keylog !== undefined))
    printError(
      'attached processes keep the environment they were started with, so tracedump cannot ask their TLS library ' +
        'for keys; a program started with SSLKEYLOGFILE=FILE has that file read, its keys embedded (pcapng) and copied to --keylog',
    );
  return { keys };
}

// Node's own exit resets the terminal and aborts if the terminal has hung up (SIGHUP from a
// closed terminal): the addon's _exit ends tracedump instead, once everything is written.
function exit(status: number): never {
  try {
    // (node --cpu-prof writes its profile in process.exit)
    if (!process.execArgv.some((a) => a.startsWith('--cpu-prof'))) native().exitNow(status);
  } catch {
    // the addon could not load: its error was printed already
  }
  process.exit(status);
}

if (require.main === module) {
  main().then(
    (status) => exit(status),
    (err) => {
      printError(`internal error: ${(err as Error).stack ?? err}`);
      exit(EXIT_TRACEDUMP_FAILURE);
    },
  );
}
