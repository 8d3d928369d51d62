// Running processes traced from outside (-p / --pname): which ones, why one cannot be traced,
// and the detach that leaves them running as before.
import * as fs from 'node:fs';
import { TracedumpError, fromNative } from '../errors';
import { type NativeRuleSet, type NativeTracer, type TraceEvent, native } from '../native';
import { readProcFile } from '../proc-file';
import { printable } from '../text/quote';

export interface AttachOutcome {
  /** Processes still running when tracing ended (detached), by pid. */
  detached: boolean;
}

export class AttachedProcesses {
  readonly pids: number[];
  readonly done: Promise<AttachOutcome>;
  /** The native tracer: the session polls its events and asks its searches through it (traced.ts). */
  readonly tracer: NativeTracer;
  private detachRequested = false;

  /** Seizes every thread of pids; events arrive as for TracedCommand (`polled` likewise). */
  constructor(pids: number[], onEvents: (batch: TraceEvent[]) => void, rules?: NativeRuleSet, polled = false) {
    for (const pid of pids) checkTraceable(pid);
    this.pids = pids;
    let finish!: (o: AttachOutcome) => void;
    this.done = new Promise((resolve) => (finish = resolve));
    try {
      this.tracer = native().attach({ pids, rules, socketEventsPolled: polled }, (batch) => {
        onEvents(batch);
        if (batch.some((e) => e.kind === 'done')) finish({ detached: this.detachRequested });
      });
    } catch (err) {
      const pid = (err as { pid?: number }).pid;
      throw explainAttachFailure(fromNative(err), pid ?? pids[0]);
    }
  }

  /** Stops tracing: every thread is detached and runs on; `done` resolves after. */
  detach(): void {
    if (this.detachRequested) return;
    this.detachRequested = true;
    this.tracer.detach();
  }
}

function readProc(pid: number, file: string): string | undefined {
  return readProcFile(`${pid}/${file}`);
}

function statusField(status: string | undefined, field: string): string | undefined {
  return status?.match(new RegExp(`^${field}:\\s*(.*)$`, 'm'))?.[1];
}

/** The failures we can tell before asking the kernel (and before any file is written). */
export function checkTraceable(pid: number): void {
  if (pid === process.pid) throw new TracedumpError(`cannot attach to process ${pid}: that is tracedump itself`, { pid });
  const status = readProc(pid, 'status');
  if (status === undefined) throw new TracedumpError(`cannot attach to process ${pid}: no such process`, { pid, code: 'ESRCH' });
  if (statusField(status, 'Kthread') === '1' || (readProc(pid, 'cmdline') === '' && statusField(status, 'PPid') === '2'))
    throw new TracedumpError(`cannot attach to process ${pid}: it is a kernel thread`, { pid, code: 'EPERM' });
  if (statusField(status, 'State')?.startsWith('Z'))
    throw new TracedumpError(`cannot attach to process ${pid}: it has exited (zombie)`, { pid, code: 'ESRCH' });
  const traced = alreadyTraced(pid, status);
  if (traced) throw traced;
}

function alreadyTraced(pid: number, status: string): TracedumpError | undefined {
  const tracer = Number(statusField(status, 'TracerPid') ?? 0);
  if (tracer <= 0) return undefined;
  const comm = readProc(tracer, 'comm')?.trim();
  return new TracedumpError(`cannot attach to process ${pid}: it is already traced by process ${tracer}${comm ? ` (${comm})` : ''}`, {
    pid,
    code: 'EPERM',
    hint: 'a process can have one tracer only: stop the debugger or tracer (strace, gdb) first',
  });
}

/** Why the kernel refused to let us trace pid, in words a user can act on. */
export function explainAttachFailure(err: TracedumpError, pid: number): TracedumpError {
  const status = readProc(pid, 'status');
  const base = `cannot attach to process ${pid}`;
  if (err.code === 'ESRCH' || status === undefined) return new TracedumpError(`${base}: no such process`, { pid, code: 'ESRCH' });
  if (err.code === 'EPERM') {
    const traced = alreadyTraced(pid, status);
    if (traced) return traced;
    const yama = readProcFile('sys/kernel/yama/ptrace_scope')?.trim() ?? '0';
    if (yama === '3')
      return new TracedumpError(`${base}: ptrace is disabled on this machine (kernel.yama.ptrace_scope = 3)`, {
        pid,
        code: 'EPERM',
        hint: 'scope 3 cannot be lowered without a reboot; launch the program under tracedump instead',
      });
    return new TracedumpError(`${base}: permission denied`, {
      pid,
      code: 'EPERM',
      hint:
        yama === '1' || yama === '2'
          ? `attaching needs CAP_SYS_PTRACE (kernel.yama.ptrace_scope = ${yama}): run tracedump with sudo`
          : 'attaching to another user\'s process needs CAP_SYS_PTRACE: run tracedump with sudo',
    });
  }
  return new TracedumpError(`${base}: ${err.message}`, { pid, code: err.code, syscall: err.syscall, errno: err.errno });
}

/** tracedump's ancestors: its parent (a shell, sudo), theirs (a terminal, sshd)... up to init. */
export function tracedumpAncestors(): Set<number> {
  const out = new Set<number>();
  let pid = process.ppid;
  while (pid > 0 && !out.has(pid)) {
    out.add(pid);
    pid = Number(statusField(readProc(pid, 'status'), 'PPid') ?? 0);
  }
  return out;
}

/**
 * -p: refuses one of tracedump's own ancestors. Stopped at every system call by a tracer that
 * waits for it, its shell or sudo (which relays signals to it) could deadlock with it.
 */
export function refuseAncestor(pid: number, ancestors: Set<number>): void {
  if (!ancestors.has(pid)) return;
  throw new TracedumpError(`cannot attach to ${describeProcess(pid).short}: tracedump runs under it (its shell, terminal or sudo)`, {
    pid,
    code: 'EPERM',
    hint: 'run tracedump from another terminal, or launch the program under tracedump instead',
  });
}

/** A process in words: `4242 (chrome)` and `4242 chrome  /usr/lib/chromium/chromium --type=...`. */
export function describeProcess(pid: number): { short: string; line: string } {
  const comm = printable(readProc(pid, 'comm')?.trim() ?? '?');
  let cmdline = printable((readProc(pid, 'cmdline') ?? '').replace(/\0+$/, '').split('\0').join(' '));
  if (cmdline.length > 200) cmdline = cmdline.slice(0, 200) + '...';
  return { short: `process ${pid} (${comm})`, line: `${String(pid).padStart(7)} ${comm.padEnd(15)} ${cmdline}` };
}


/** --pname: the processes whose name (comm, or the file name of argv[0]/exe) is name. */
export function pidsByName(name: string): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    const comm = readProc(pid, 'comm')?.trim();
    if (comm === undefined) continue;
    const argv0 = readProc(pid, 'cmdline')?.split('\0')[0] ?? '';
    if (argv0 === '') continue; // kernel threads
    let exe = '';
    try {
      exe = fs.readlinkSync(`/proc/${pid}/exe`);
    } catch {
      // not ours to read, or gone
    }
    const base = (p: string) => p.slice(p.lastIndexOf('/') + 1);
    // comm holds 15 characters at most: a longer name matches the argv[0] or exe file name
    if (comm === name || base(argv0) === name || base(exe) === name) out.push(pid);
  }
  return out;
}
