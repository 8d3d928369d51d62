// One run of a campaign: its directory filled by tracedump (the capture with the label and run
// id in its section comment, the flow records), the program's and the driver's output, the
// objects (tshark), and last its meta.json. What the program did (exit, crash, hang) is
// recorded, not thrown; only what stops the campaign is (a full disk, an interruption).
import { type ChildProcess, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { constants as osConstants } from 'node:os';
import { TracedumpError } from '../errors';
import { version } from '../version';
import { callerEnvironment } from '../trace/caller';
import { resolveCommand } from '../trace/resolve-command';
import { VirtualDisplay } from './display';
import { type HostInfo, packageOf } from './host';
import { META_FILE, type RunMeta, hashFiles, writeWhole } from './meta';
import type { CommandSpec, Plan, RunSpec } from './plan';

/** A campaign's `duration` when the plan gives none: a run never waits forever. */
export const DEFAULT_DURATION_SEC = 600;
/** Past duration + grace, tracedump itself has this long to end before it is killed. */
const WATCHDOG_SLACK_MS = 30_000;

export interface RunContext {
  campaignDir: string;
  plan: Plan;
  /** How to start tracedump itself (node and its cli.js). */
  tracedump: string[];
  tshark: boolean;
  host: HostInfo;
  /** Asked to stop (Ctrl-C, SIGTERM): the run ends, unfinished. */
  stopping(): boolean;
  onStarted?(stop: () => void): void;
}

/** The campaign cannot go on (its disk is full, it was interrupted): the run is left unfinished. */
export class CampaignStop extends TracedumpError {}

const argvOf = (c: CommandSpec): string[] => ('argv' in c ? c.argv : ['sh', '-c', c.shell]);

function diskFull(err: unknown, where: string): never {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'ENOSPC' || e.code === 'EDQUOT')
    throw new CampaignStop(`the disk is full (${where})`, { code: e.code, path: where, hint: 'free some space and run the same command again: finished runs are kept, this one is redone' });
  throw err;
}

/**
 * The environment the campaign's caller gave (what a run's tracedump and its program, driver,
 * before and after commands start from): not this Node's own, which lacks NODE_OPTIONS and the
 * like and carries the launcher's hand-over of the caller's environment.
 */
function callerEnv(): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const b of callerEnvironment().toBuffers()) {
    const eq = b.indexOf(0x3d);
    if (eq > 0) out[b.toString('utf8', 0, eq)] = b.toString('utf8', eq + 1);
  }
  return out;
}

/** Signals of a program's own failure (a shell reports a child's as exit 128+N). */
const CRASH_SIGNALS = ['SIGSEGV', 'SIGABRT', 'SIGBUS', 'SIGILL', 'SIGFPE', 'SIGTRAP', 'SIGSYS'];

function crashed(e: { code: number | null; signal: string | null } | null | undefined): boolean {
  if (!e) return false;
  if (e.signal) return CRASH_SIGNALS.includes(e.signal);
  return e.code !== null && CRASH_SIGNALS.some((s) => e.code === 128 + (osConstants.signals[s as NodeJS.Signals] ?? -1000));
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** An exit as a shell's status: the code, or 128 + the signal's number. */
function shellStatus(e: Exit): number {
  return e.code ?? 128 + (e.signal ? (osConstants.signals[e.signal] ?? 0) : 0);
}

function waitExit(child: ChildProcess): Promise<Exit> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve({ code: child.exitCode, signal: child.signalCode });
    child.once('close', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: 127, signal: null }));
  });
}

/** Runs a helper command (before, after) to its end, its output into `log`. */
async function helper(cmd: CommandSpec, log: string, cwd: string | undefined, env: NodeJS.ProcessEnv): Promise<number | null> {
  const fd = fs.openSync(log, 'a', 0o644);
  try {
    const argv = argvOf(cmd);
    const child = spawn(argv[0], argv.slice(1), { cwd, env, stdio: ['ignore', fd, fd] });
    return shellStatus(await waitExit(child));
  } finally {
    fs.closeSync(fd);
  }
}

interface Summary {
  stop?: { reason?: string; code?: number | null; signal?: string | null; text?: string };
  exit_status?: number;
  command_exit?: { code: number | null; signal: string | null } | null;
  packets_written?: number;
  bytes_written?: number;
  kernel_drops?: number;
  sockets?: number;
  processes?: number;
  tls_key_lines?: number;
}

/** The directory an attempt works in, renamed to the run's own once its meta.json is written. */
export const PARTIAL = '.partial-';
/** In an attempt's directory: tracedump's pid (a campaign killed hard leaves it running). */
export const PID_FILE = '.tracedump.pid';

/**
 * Runs `spec` (its `repeat`-th time) into `finalDir`; returns its meta. The attempt works in a
 * directory of its own, renamed to `finalDir` only once whole: a run directory is finished or
 * absent, never half there.
 */
export async function runOne(ctx: RunContext, spec: RunSpec, repeat: number, finalDir: string): Promise<RunMeta> {
  const runId = crypto.randomUUID();
  const dir = `${finalDir}${PARTIAL}${runId.slice(0, 8)}`;
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  } catch (err) {
    diskFull(err, dir);
  }
  const started = new Date();
  const file = (name: string) => path.join(dir, name);
  const command = argvOf(spec.command);
  const env: NodeJS.ProcessEnv = { ...callerEnv(), ...spec.env };
  let display: VirtualDisplay | undefined;
  const meta: Partial<RunMeta> = {};
  let endReason = 'exited';
  let endText = '';
  let summary: Summary | undefined;
  try {
    if (spec.display) {
      display = await VirtualDisplay.start(spec.display.width, spec.display.height);
      env.DISPLAY = display.display;
    }
    if (spec.before) meta.before_status = await helper(spec.before, file('before.log'), spec.cwd, env);
    if (meta.before_status) {
      endReason = 'before-failed';
      endText = `the before command exited with ${meta.before_status}: the program was not run`;
    } else {
      const duration = spec.duration ?? DEFAULT_DURATION_SEC;
      const args = [
        ...ctx.tracedump,
        '-q',
        '-w', file('capture.pcapng'),
        '--flows', file('flows.jsonl'),
        '--summary-json', file('.summary.json'),
        '--capture-comment', `label=${spec.label}`,
        '--capture-comment', `run_id=${runId}`,
        '--duration', String(duration),
        '--kill-after', String(spec.grace),
        ...(spec.tlsKeys ? [] : ['--no-tls-keys']),
        ...(spec.user ? ['-u', spec.user] : []),
        ...(spec.capture.snaplen !== undefined ? ['-s', String(spec.capture.snaplen)] : []),
        ...(spec.capture.ring !== undefined ? ['-B', String(spec.capture.ring)] : []),
        ...(spec.capture.filter !== undefined ? ['-f', spec.capture.filter] : []),
        '--',
        ...command,
      ];
      const out = fs.openSync(file('program.stdout'), 'w', 0o644);
      const errFd = fs.openSync(file('program.stderr'), 'w', 0o644);
      let td: ChildProcess;
      try {
        td = spawn(args[0], args.slice(1), { cwd: spec.cwd, env, stdio: ['ignore', out, errFd] });
      } finally {
        fs.closeSync(out);
        fs.closeSync(errFd);
      }
      if (td.pid !== undefined) fs.writeFileSync(file(PID_FILE), `${td.pid}\n`);
      const stop = () => td.kill('SIGTERM');
      ctx.onStarted?.(stop);
      let watchdogFired = false;
      const watchdog = setTimeout(() => {
        watchdogFired = true;
        td.kill('SIGKILL');
      }, (duration + spec.grace) * 1000 + WATCHDOG_SLACK_MS);
      // the driver: started once the program runs (the capture file appears at its exec)
      let driverExit: Promise<Exit> | undefined;
      let driverEnded = false;
      if (spec.driver) {
        for (let i = 0; i < 100 && !fs.existsSync(file('capture.pcapng')) && td.exitCode === null; i++) await new Promise((r) => setTimeout(r, 100));
        const dOut = fs.openSync(file('driver.stdout'), 'w', 0o644);
        const dErr = fs.openSync(file('driver.stderr'), 'w', 0o644);
        const dargv = argvOf(spec.driver);
        const driver = spawn(dargv[0], dargv.slice(1), { cwd: spec.cwd, env, stdio: ['ignore', dOut, dErr] });
        fs.closeSync(dOut);
        fs.closeSync(dErr);
        driverExit = waitExit(driver).then((e) => {
          driverEnded = td.exitCode === null && td.signalCode === null;
          if (driverEnded) td.kill('SIGTERM'); // its exit ends the run
          return e;
        });
        void waitExit(td).then(() => driver.exitCode === null && driver.kill('SIGTERM'));
      }
      const exit = await waitExit(td);
      clearTimeout(watchdog);
      if (driverExit) {
        const d = await driverExit;
        meta.driver_status = shellStatus(d);
      }
      try {
        summary = JSON.parse(fs.readFileSync(file('.summary.json'), 'utf8')) as Summary;
      } catch {
        summary = undefined;
      }
      fs.rmSync(file('.summary.json'), { force: true });
      fs.rmSync(file(PID_FILE), { force: true });
      const commandExit = summary?.command_exit;
      meta.exit_status = commandExit ? commandExit.code : (summary?.exit_status ?? exit.code);
      meta.exit_signal = commandExit?.signal ?? null;
      endText = summary?.stop?.text ?? '';
      if (ctx.stopping() && !watchdogFired) throw new CampaignStop('the campaign was interrupted', { code: 'EINTR' });
      // the capture could not be written whole: a run of it would be a lie
      const stderr = fs.readFileSync(file('program.stderr'), 'utf8');
      if (summary?.stop?.reason === 'write-failed' || (!summary && /No space left on device|ENOSPC/.test(stderr)))
        diskFull(Object.assign(new Error('ENOSPC'), { code: 'ENOSPC' }), file('capture.pcapng'));
      if (watchdogFired) {
        endReason = 'hung';
        endText = `tracedump did not end ${WATCHDOG_SLACK_MS / 1000} s after duration + grace, and was killed`;
      } else if (!summary) {
        endReason = 'tracedump-failed';
        const said = stderr.trim().split('\n').filter((l) => l.startsWith('tracedump:'));
        endText = said.pop() ?? `tracedump exited with ${exit.code ?? exit.signal}`;
      } else if (driverEnded) {
        endReason = 'driver-ended';
      } else if (summary.stop?.reason === 'duration') {
        // stopped at its duration: SIGTERM obeyed, or SIGKILL after the grace (it hung)
        endReason = commandExit?.signal === 'SIGKILL' || commandExit?.code === 128 + 9 ? 'hung' : 'duration';
        if (endReason === 'hung') endText = `${endText}; it did not end on SIGTERM and was killed ${spec.grace} s later`;
      } else if (crashed(commandExit)) {
        endReason = 'crashed';
      } else {
        endReason = 'exited';
      }
      if (spec.after) meta.after_status = await helper(spec.after, file('after.log'), spec.cwd, env);
      if (ctx.tshark && fs.existsSync(file('capture.pcapng'))) {
        const objFd = fs.openSync(file('objects.jsonl'), 'w', 0o644);
        const errLog = fs.openSync(file('objects.stderr'), 'w', 0o644);
        const objects = spawn(ctx.tracedump[0], [...ctx.tracedump.slice(1), 'objects', '--json', file('capture.pcapng')], { stdio: ['ignore', objFd, errLog] });
        fs.closeSync(objFd);
        fs.closeSync(errLog);
        const o = await waitExit(objects);
        if (o.code !== 0 && /No space left on device|ENOSPC/.test(fs.readFileSync(file('objects.stderr'), 'utf8')))
          diskFull(Object.assign(new Error('ENOSPC'), { code: 'ENOSPC' }), file('objects.jsonl'));
        if (o.code !== 0) meta.objects_note = `tracedump objects exited with ${o.code ?? o.signal}: objects.stderr says why`;
        else if (fs.statSync(file('objects.stderr')).size === 0) fs.rmSync(file('objects.stderr'));
      } else if (!ctx.tshark) meta.objects_note = 'tshark is not installed: no objects.jsonl (apt-get install tshark)';
    }
  } catch (err) {
    if (err instanceof CampaignStop || err instanceof TracedumpError) throw err;
    diskFull(err, dir);
  } finally {
    await display?.stop();
  }
  const ended = new Date();
  let exe: string | null = null;
  try {
    exe = fs.realpathSync(resolveCommand(command[0], env.PATH, spec.cwd ?? process.cwd()).toString());
  } catch {
    exe = null;
  }
  const pkg = exe ? packageOf(exe) : { package: null, version: null };
  const full: RunMeta = {
    tracedump_run: 1,
    run_id: runId,
    label: spec.label,
    repeat,
    dir: path.relative(ctx.campaignDir, finalDir),
    plan_file: ctx.plan.file,
    plan_hash: ctx.plan.hash,
    command,
    exe,
    package: pkg.package,
    package_version: pkg.version,
    started: started.toISOString(),
    ended: ended.toISOString(),
    seconds: (ended.getTime() - started.getTime()) / 1000,
    exit_status: meta.exit_status ?? null,
    exit_signal: meta.exit_signal ?? null,
    end_reason: endReason,
    end_text: endText,
    capture: summary
      ? {
          packets: summary.packets_written ?? 0,
          bytes: summary.bytes_written ?? 0,
          drops: summary.kernel_drops ?? 0,
          sockets: summary.sockets ?? 0,
          processes: summary.processes ?? 0,
          tls_key_lines: summary.tls_key_lines ?? 0,
        }
      : null,
    ...(meta.objects_note ? { objects_note: meta.objects_note } : {}),
    ...(meta.before_status !== undefined ? { before_status: meta.before_status } : {}),
    ...(meta.after_status !== undefined ? { after_status: meta.after_status } : {}),
    ...(meta.driver_status !== undefined ? { driver_status: meta.driver_status } : {}),
    display: spec.display ?? null,
    host: ctx.host,
    tracedump: version,
    files: {},
  };
  try {
    full.files = hashFiles(dir);
    writeWhole(file(META_FILE), `${JSON.stringify(full, null, 1)}\n`);
    fs.rmSync(finalDir, { recursive: true, force: true }); // (none: a finished run is never redone)
    fs.renameSync(dir, finalDir);
  } catch (err) {
    diskFull(err, dir);
  }
  return full;
}
