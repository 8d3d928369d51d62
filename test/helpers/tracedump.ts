// Test helpers: build the netcalls fixture, run commands under `tracedump --events=json`
// (and without it, for comparison), collect events, records, output and exit status.
import { spawn, spawnSync, type StdioOptions } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');
/** The shipped entry point under test; TRACEDUMP_CLI points the tests at another build. */
export const CLI = process.env.TRACEDUMP_CLI ?? path.join(ROOT, 'bin', 'tracedump');
// Every tracedump the tests run checks its native path: the pipeline judges and encodes again
// each record the native path wrote, and a record that differs fails the run (exit status 1).
// A test may set another mode for its own runs.
process.env.TRACEDUMP_NATIVE_PATH ??= 'check';

export const FIXTURE_SOURCE = path.join(ROOT, 'test', 'fixtures', 'netcalls.c');

/** What every test needs from tap's `t`: teardown and a way to fail loudly. */
interface Teardownable {
  teardown(fn: () => void | Promise<void>): void;
}

export interface Endpoint {
  address: string;
  port: number;
}

/** One line of the fixture's own record. */
export interface CallRecord {
  pid: number;
  tid: number;
  comm: string;
  call: string;
  fd: number;
  family: number;
  proto: string;
  localBefore: Endpoint | null;
  local: Endpoint | null;
  remotes: Endpoint[];
  result: number;
  errno?: string;
}

/** One JSON event of tracedump (only the fields the tests look at are typed). */
export interface TraceEvent {
  kind: string;
  time?: number;
  pid?: number;
  tid?: number;
  comm?: string;
  threadName?: string;
  call?: string;
  fd?: number;
  family?: number;
  proto?: string;
  local?: Endpoint | null;
  remotes?: Endpoint[];
  result?: number | null;
  errno?: string;
  child?: number;
  thread?: boolean;
  how?: string;
  formerTid?: number;
  exe?: string;
  code?: number | null;
  signal?: number | null;
  core?: boolean;
  message?: string;
  [k: string]: unknown;
}

export interface RunResult {
  /** Exit status of tracedump (or of the command when run directly); null if killed. */
  status: number | null;
  /** Signal that killed tracedump itself (normally null: it reports 128+N instead). */
  killedBy: NodeJS.Signals | null;
  timedOut: boolean;
  /** Milliseconds from spawn to the close of all of tracedump's stdio. */
  elapsedMs: number;
  stdout: Buffer;
  stderr: Buffer;
  /** tracedump's JSON events, in the order printed. */
  events: TraceEvent[];
  /** stderr with the JSON event lines removed: the command's own stderr. */
  otherStderr: string;
  /** The fixture's own record of its socket calls. */
  record: CallRecord[];
  /** pid of the tracedump process (or of the command when run directly). */
  pid: number;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  stdio?: StdioOptions;
  cwd?: string;
  /** Called with each stdout chunk and the child process pid (to send signals, sample /proc). */
  onStdout?: (chunk: Buffer, pid: number) => void;
}

let runCounter = 0;

/** Compiles test/fixtures/netcalls.c into a fresh temp dir (removed at teardown). */
export function buildFixture(t: Teardownable): { bin: string; dir: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tracedump-test-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const bin = path.join(dir, 'netcalls');
  const r = spawnSync('gcc', ['-O1', '-pthread', '-Wall', '-o', bin, FIXTURE_SOURCE], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (r.status !== 0) throw new Error(`gcc failed (${r.status}): ${r.stderr}`);
  return { bin, dir };
}

/** An event's time ("1765087200.123456", epoch seconds, as --events=json prints it) in ms since the epoch. */
export function eventMs(time: string): number {
  const [sec, frac = ''] = time.split('.');
  return Number(sec) * 1000 + Number(frac.padEnd(6, '0').slice(0, 6)) / 1000;
}

/** Parses tracedump's stderr: JSON lines with a "kind" are events, the rest is the command's. */
export function splitStderr(stderr: Buffer): { events: TraceEvent[]; other: string } {
  const events: TraceEvent[] = [];
  const other: string[] = [];
  const text = stderr.toString('latin1'); // byte-preserving
  const lines = text.split('\n');
  const last = lines.pop() as string; // '' when stderr ended with a newline
  for (const line of lines) {
    if (line.startsWith('{"')) {
      try {
        const v = JSON.parse(Buffer.from(line, 'latin1').toString('utf8'));
        if (v && typeof v === 'object' && typeof v.kind === 'string') {
          if (typeof v.time === 'string') v.time = eventMs(v.time);
          events.push(v as TraceEvent);
          continue;
        }
      } catch {
        /* not an event: the command's own line */
      }
    }
    other.push(line + '\n');
  }
  other.push(last);
  return { events, other: Buffer.from(other.join(''), 'latin1').toString('utf8') };
}

function readRecord(file: string): CallRecord[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as CallRecord);
}

function runProcess(
  file: string,
  args: string[],
  recordDir: string,
  opts: RunOptions,
  parseEvents: boolean,
): Promise<RunResult> {
  const recordFile = path.join(recordDir, `record-${process.pid}-${++runCounter}.jsonl`);
  const env = { ...process.env, ...(opts.env ?? {}), NETCALLS_RECORD: recordFile };
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const child = spawn(file, args, {
      env,
      cwd: opts.cwd ?? recordDir,
      stdio: opts.stdio ?? ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout?.on('data', (c: Buffer) => {
      out.push(c);
      opts.onStdout?.(c, child.pid as number);
    });
    child.stderr?.on('data', (c: Buffer) => err.push(c));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stderr = Buffer.concat(err);
      const split = parseEvents ? splitStderr(stderr) : { events: [], other: stderr.toString('utf8') };
      const record = readRecord(recordFile);
      fs.rmSync(recordFile, { force: true });
      resolve({
        status: code,
        killedBy: signal,
        timedOut,
        elapsedMs: Date.now() - start,
        stdout: Buffer.concat(out),
        stderr,
        events: split.events,
        otherStderr: split.other,
        record,
        pid: child.pid as number,
      });
    });
  });
}

/** Runs `bin/tracedump --events=json -- ...command` with NETCALLS_RECORD set. */
export function traced(command: string[], recordDir: string, opts: RunOptions = {}): Promise<RunResult> {
  return runProcess(CLI, ['--events=json', '--', ...command], recordDir, opts, true);
}

/** Runs the command directly (no tracedump), same environment and stdio. */
export function direct(command: string[], recordDir: string, opts: RunOptions = {}): Promise<RunResult> {
  return runProcess(command[0], command.slice(1), recordDir, opts, false);
}

export const socketEvents = (r: RunResult): TraceEvent[] => r.events.filter((e) => e.kind === 'socket');

/** Pids that appear anywhere in a run (record and events). */
export function pidsOf(r: RunResult): number[] {
  const s = new Set<number>();
  for (const x of r.record) s.add(x.pid);
  for (const e of r.events) {
    if (typeof e.pid === 'number') s.add(e.pid);
    if (typeof e.child === 'number' && e.thread === false) s.add(e.child);
  }
  return [...s];
}

/** Processes (other than zombies of unrelated parents) still running `bin`, or any of `pids`. */
export function leftovers(bin: string, pids: number[]): string[] {
  const found: string[] = [];
  for (const p of pids) {
    if (fs.existsSync(`/proc/${p}`)) {
      let stat = '';
      try {
        stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      } catch {
        continue; // went away meanwhile
      }
      found.push(`pid ${p} still exists: ${stat.slice(0, 80)}`);
    }
  }
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const exe = fs.readlinkSync(`/proc/${d}/exe`);
      if (exe === bin) found.push(`pid ${d} runs ${bin}`);
    } catch {
      /* gone, or a kernel thread */
    }
  }
  return found;
}

export function fdCount(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface CliRun {
  status: number | null;
  stdout: Buffer;
  stderr: string;
  ms: number;
}

/**
 * bin/tracedump ARGS, no stdin, bounded by timeoutMs (then SIGKILL). `prefix` runs it under
 * another program (setpriv, nice...); `signalAfterMs` sends it a signal after that long.
 */
export function runCli(
  args: string[],
  opts: { cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv; prefix?: string[]; signalAfterMs?: [NodeJS.Signals, number] } = {},
): Promise<CliRun> {
  return new Promise((resolve) => {
    const start = Date.now();
    const argv = [...(opts.prefix ?? []), CLI, ...args];
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], cwd: opts.cwd, env: opts.env ?? process.env });
    const out: Buffer[] = [];
    let err = '';
    child.stdout!.on('data', (c: Buffer) => out.push(c));
    child.stderr!.on('data', (c: Buffer) => (err += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    const signaller = opts.signalAfterMs && setTimeout(() => child.kill(opts.signalAfterMs![0]), opts.signalAfterMs[1]);
    child.on('close', (status) => {
      clearTimeout(timer);
      if (signaller) clearTimeout(signaller);
      resolve({ status, stdout: Buffer.concat(out), stderr: err, ms: Date.now() - start });
    });
  });
}
