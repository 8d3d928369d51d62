// The command line: the only reader of argv, where tracedump's exit status is decided and the
// process exits (bin/tracedump runs this module).
import './report/stats-signal'; // first: SIGUSR1 must never reach Node's inspector
import * as path from 'node:path';
import { isatty } from 'node:tty';
import { CommanderError } from 'commander';
import { EXIT_TRACEDUMP_FAILURE, TracedumpError, errorText } from './errors';
import { printError, writeAll } from './output/fd-writer';
import { runSession } from './session/session';
import { checkTraceable, describeProcess, pidsByName, refuseAncestor, tracedumpAncestors } from './trace/attached';
import { chooseRunAs } from './trace/run-as';
import { formatFor } from './output/formats';
import { OutputTarget } from './output/output-target';
import { TlsKeyLog } from './tls/key-log';
import type { RotationOptions } from './output/rotation';
import { type CliOptions, buildCaptureProgram, normalizeArgs, readArguments } from './cli/capture-program';
import { interfaceIndexes, interfaceLines, listInterfaces } from './capture/interfaces';
import { compileFilter } from './capture/pcap-filter';
import { defaultRingKiB } from './capture/ring-size';
import { resolveCommand } from './trace/resolve-command';
import { callerEnvironment, callerFds, rawArguments } from './trace/caller';
import type { Environment } from './environment';
import { quoteName } from './text/quote';
import { bashCompletion } from './cli/completion';
import { native } from './native';
import { isExtcapCall } from './extcap/protocol';

const extcapModule = () => require('./cli/extcap-program') as typeof import('./cli/extcap-program');

// A word as a shell would need it quoted (for the command line recorded in the file).
function shellQuote(w: string): string {
  return /^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;
}

function rotationOf(opts: CliOptions, output: string): RotationOptions | undefined {
  if (opts.fileSize === undefined && opts.rotateSeconds === undefined) {
    if (opts.fileCount !== undefined) throw new TracedumpError('-W needs -C or -G', { code: 'EUSAGE' });
    return undefined;
  }
  if (output === '-') throw new TracedumpError('-C and -G need a file name (-w FILE), not stdout', { code: 'EUSAGE' });
  return { fileSizeMB: opts.fileSize, periodSec: opts.rotateSeconds, fileCount: opts.fileCount };
}

/** tracedump help, tracedump completion bash: words that are not commands to trace. */
function helpWord(argv: string[]): number | undefined {
  if (argv[0] === 'help' && argv.length === 1) {
    buildCaptureProgram().outputHelp(); // the same text as --help, examples included
    return 0;
  }
  if (argv[0] === 'completion' && (argv.length === 1 || (argv.length === 2 && argv[1] === 'bash'))) {
    writeAll(1, bashCompletion());
    return 0;
  }
  return undefined;
}

export async function main(argv: string[] = process.argv.slice(2)): Promise<number> {
  // `tracedump read FILE` and `tracedump -r FILE`: print a capture (a program named read runs
  // as `tracedump -- read`)
  if (argv[0] === 'read') return read(argv.slice(1));
  // `tracedump flows FILE...`: the flow records of captures
  if (argv[0] === 'flows') return flows(argv.slice(1));
  // `tracedump objects FILE...`: HTTP exchanges, DNS questions, opaque TLS (through tshark)
  if (argv[0] === 'objects') return objects(argv.slice(1));
  // `tracedump stats FILE|DIR...`: the per-application model
  if (argv[0] === 'stats') return stats(argv.slice(1));
  // Wireshark's extcap calls, and `tracedump extcap install`: capture from inside Wireshark
  if (argv[0] === 'extcap') return extcapModule().extcapCommand(argv.slice(1), path.join(__dirname, '..', 'bin', 'tracedump'));
  if (isExtcapCall(argv)) return extcapModule().extcap(argv, (args) => main(args), `file://${path.join(__dirname, '..', 'README.md')}`);
  // `tracedump campaign run|ls|show|export`: labelled captures of many runs, in a catalogue
  if (argv[0] === 'campaign') return (require('./cli/campaign-program') as typeof import('./cli/campaign-program')).campaign(argv.slice(1), __filename);
  const asRead = readArguments(argv);
  if (asRead) return read(asRead);
  const word = helpWord(argv);
  if (word !== undefined) return word;

  const program = buildCaptureProgram();
  try {
    program.parse(normalizeArgs(argv), { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : EXIT_TRACEDUMP_FAILURE;
    throw err;
  }
  const opts = program.opts<CliOptions>();
  if (opts.listInterfaces) {
    writeAll(1, interfaceLines(listInterfaces()).join('\n') + '\n');
    return 0;
  }
  try {
    return await capture(opts, program.args);
  } catch (err) {
    if (err instanceof TracedumpError) {
      printError(errorText(err));
      return err.exitStatus;
    }
    printError(`internal error: ${(err as Error).stack ?? err}`);
    return EXIT_TRACEDUMP_FAILURE;
  }
}

/** Checks everything that can be checked, then runs the session. */
async function capture(opts: CliOptions, command: string[]): Promise<number> {
  const attaching = opts.pid !== undefined || opts.pname !== undefined;
  if (attaching && command.length > 0) throw usage('give either a command or -p/--pname, not both');
  if (attaching && opts.user !== undefined) throw usage('-u applies to a launched command; attached processes keep their own user');
  if (!attaching && command.length === 0) throw usage('no command given');
  if (opts.output !== undefined && !opts.events) throw usage('-o FILE is where --events go: give --events too (the capture goes to -w FILE)');
  if (opts.keylog !== undefined && !opts.tlsKeys) throw usage('--keylog and --no-tls-keys contradict each other');
  const env = callerEnvironment();
  // the command's words as the caller gave them, byte for byte
  const argv = rawArguments(command);

  let attach: number[] | undefined;
  if (attaching) attach = attachTargets(opts);
  else resolveCommand(argv[0], env.get('PATH'), process.cwd()); // not found: 127, before anything is opened

  const runAs = attaching ? undefined : chooseRunAs(opts.user, env);
  // --events alone traces without capturing; otherwise capture (tcpdump's default file name).
  const output = opts.write ?? (opts.events ? undefined : 'tracedump.pcap');
  if (output === '-' && isatty(1))
    throw new TracedumpError('not writing a binary capture to a terminal', {
      code: 'EUSAGE',
      hint: 'send it to a file or a program: -w FILE, or -w - | wireshark -k -i -, or -w - | tracedump read -',
    });
  const owner = runAs && { uid: runAs.account.uid, gid: runAs.account.gid };
  // stdout carries pcapng unless asked otherwise: the process of each packet is the point
  const format = output === undefined ? undefined : output === '-' ? (opts.format ?? 'pcapng') : formatFor(output, opts.format);
  const interfaces = opts.interface === undefined ? undefined : interfaceIndexes(opts.interface);
  const userFilter = opts.filter === undefined ? undefined : compileFilter(opts.filter, opts.snaplen, '-f');
  const rotation = output === undefined ? undefined : rotationOf(opts, output);
  if (opts.quiet === undefined && attach) printAttaching(attach, opts.pname);

  // Files of the user's are replaced only once the program has started (OutputTarget).
  const opened: OutputTarget[] = [];
  const open = (path: string, what: string) => {
    const t = OutputTarget.open(path, { mode: 0o644, owner, hint: `choose another path for ${what}` });
    opened.push(t);
    return t;
  };
  const tls = opts.tlsKeys ? tlsKeysFor(attach, runAs?.env ?? env, opts, output, format, owner) : undefined;
  try {
    const eventsOutput = opts.output !== undefined ? open(opts.output, '-o') : undefined;
    if (opts.flows !== undefined && output === undefined)
      throw new TracedumpError('--flows needs a capture: the flow records are those of the packets written', {
        code: 'EUSAGE',
        hint: `add -w FILE (for example -w capture.pcapng --flows ${opts.flows})`,
      });
    if (opts.top && !isatty(2))
      throw new TracedumpError('--top draws a table on a terminal, and stderr is not one', { code: 'EUSAGE', hint: 'use --flows FILE to have the records in a file' });
    if (opts.top && output === undefined)
      throw new TracedumpError('--top needs a capture: its table is made of the packets written', { code: 'EUSAGE', hint: 'add -w FILE' });
    if (opts.top && opts.events && opts.output === undefined)
      throw new TracedumpError('--top and --events on stderr would draw over each other', { code: 'EUSAGE', hint: 'send the events to a file with -o FILE' });
    const flows = opts.flows !== undefined ? { output: open(opts.flows, '--flows'), idleSec: opts.flowsIdle, activeSec: opts.flowsActive } : undefined;
    // written at the end; checked now, so that a path it cannot have fails before anything runs
    if (opts.summaryJson !== undefined) open(opts.summaryJson, '--summary-json').abandon();
    return await runSession({
      exitNow: (status) => native().exitNow(status),
      attach,
      fileOwner: owner,
      command: attach
        ? undefined
        : {
            argv,
            cwd: process.cwd(),
            env: tls?.env ?? runAs?.env ?? env,
            // a capture on stdout must stay clean: the command's stdout goes to stderr
            stdio: output === '-' ? [0, 2, 2] : [0, 1, 2],
            keepFds: callerFds(),
            user: runAs && { ...owner!, groups: runAs.account.groups },
          },
      events: opts.events,
      eventsOutput,
      flows,
      summaryFd: opts.quiet ? undefined : 2,
      statusFd: !opts.quiet && !opts.top && isatty(2) && !(opts.events && !eventsOutput) ? 2 : undefined,
      // keys only when the command does not read this terminal (attached, or its stdin elsewhere)
      top: opts.top ? { fd: 2, readKeys: !!attach || !isatty(0) } : undefined,
      summaryJson: opts.summaryJson,
      commandWords: attach ? undefined : command,
      tlsKeys: tls?.keys,
      capture:
        output === undefined
          ? undefined
          : {
              output,
              format: format!,
              description: attach ? `tracedump -p ${attach.join(',')}` : `tracedump -- ${command.map(shellQuote).join(' ')}`,
              comments: opts.captureComment ?? [],
              snaplen: opts.snaplen,
              count: opts.count,
              durationSec: opts.duration,
              lingerMs: opts.linger * 1000,
              ringBytes: (opts.bufferSize ?? defaultRingKiB()) * 1024,
              flushEveryBatch: !!opts.packetBuffered || output === '-',
              killAfterMs: opts.killAfter * 1000,
              filter: opts.kernelFilter,
              interfaces,
              userFilter,
              rotation,
            },
    });
  } finally {
    for (const t of opened) t.close(); // (an uncommitted one is removed: the program never ran)
    tls?.keys.close();
  }
}

function usage(message: string): TracedumpError {
  return new TracedumpError(message, { code: 'EUSAGE', hint: 'tracedump --help lists the options' });
}

/** -p and --pname: the processes to attach to, checked; never one of tracedump's own ancestors. */
function attachTargets(opts: CliOptions): number[] {
  const ancestors = tracedumpAncestors();
  const attach = [...(opts.pid ?? [])];
  for (const pid of attach) refuseAncestor(pid, ancestors);
  if (opts.pname !== undefined) {
    const named = pidsByName(opts.pname);
    const skipped = named.filter((pid) => ancestors.has(pid));
    if (skipped.length)
      printError(
        `--pname ${quoteName(opts.pname)}: not attaching to ${skipped.map((p) => describeProcess(p).short).join(', ')}: ` +
          'tracedump runs under it (its shell, terminal or sudo)',
      );
    const rest = named.filter((pid) => !ancestors.has(pid));
    if (rest.length === 0)
      throw new TracedumpError(
        named.length ? `no process named ${quoteName(opts.pname)} but tracedump's own ancestors` : `no running process is named ${quoteName(opts.pname)}`,
        { code: 'ESRCH', hint: 'see `ps -e` for the names of the running processes' },
      );
    for (const pid of rest) if (!attach.includes(pid)) attach.push(pid);
  }
  for (const pid of attach) checkTraceable(pid);
  return attach;
}

/** `tracedump: attaching to 2 processes:` and a line per process (pid, name, command line). */
function printAttaching(pids: number[], pname: string | undefined): void {
  const head = `attaching to ${pids.length === 1 ? '1 process' : `${pids.length} processes`}${pname !== undefined ? ` named ${quoteName(pname)}` : ''}:`;
  printError([head, ...pids.map((p) => `  ${describeProcess(p).line}`)].join('\n'));
}

/**
 * The program's TLS key log: a launched command is given one (its environment changes); an
 * attached program's own SSLKEYLOGFILE is read when it was started with one.
 */
function tlsKeysFor(
  attach: number[] | undefined,
  env: Environment,
  opts: CliOptions,
  output: string | undefined,
  format: 'pcap' | 'pcapng' | undefined,
  owner: { uid: number; gid: number } | undefined,
): { keys: TlsKeyLog; env?: Environment } | undefined {
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

/** Runs tracedump with the process's arguments and exits with its status. */
export function run(): void {
  main().then(
    (status) => exit(status),
    (err) => {
      printError(`internal error: ${(err as Error).stack ?? err}`);
      exit(EXIT_TRACEDUMP_FAILURE);
    },
  );
}

if (require.main === module) run();

// The file-reading commands are loaded only when asked for: a capture starts without their code.

/** `tracedump read ARGS` (or tracedump -r FILE ...): its exit status. */
async function read(args: string[]): Promise<number> {
  const { parseReadArgs } = require('./cli/read-program') as typeof import('./cli/read-program');
  const { runRead } = require('./read/run') as typeof import('./read/run');
  const request = parseReadArgs(args);
  return typeof request === 'number' ? request : runRead(request);
}

/** `tracedump flows ARGS`: its exit status. */
async function flows(args: string[]): Promise<number> {
  const { parseFlowsArgs } = require('./cli/flows-program') as typeof import('./cli/flows-program');
  const { runFlows } = require('./flows/run') as typeof import('./flows/run');
  const request = parseFlowsArgs(args);
  return typeof request === 'number' ? request : runFlows(request);
}

/** `tracedump objects ARGS`: its exit status. */
async function objects(args: string[]): Promise<number> {
  const { parseObjectsArgs } = require('./cli/objects-program') as typeof import('./cli/objects-program');
  const { runObjects } = require('./objects/run') as typeof import('./objects/run');
  const request = parseObjectsArgs(args);
  return typeof request === 'number' ? request : runObjects(request);
}

/** `tracedump stats ARGS`: its exit status. */
async function stats(args: string[]): Promise<number> {
  const { parseStatsArgs } = require('./cli/stats-program') as typeof import('./cli/stats-program');
  const { runStats } = require('./stats/run') as typeof import('./stats/run');
  const request = parseStatsArgs(args);
  return typeof request === 'number' ? request : runStats(request);
}
