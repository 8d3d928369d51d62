// A command launched under the native tracer: its events, its signal, and the shell-style exit
// status it ends with.
import { EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND, EXIT_TRACEDUMP_FAILURE, TracedumpError, fromNative } from '../errors';
import { type ExitEvent, type NativeCapture, type NativeRuleSet, type NativeTracer, type TraceEvent, native } from '../native';
import { resolveCommand } from './resolve-command';
import type { Environment } from '../environment';
import { quoteName } from '../text/quote';
import { readProcFile } from '../proc-file';

export interface CommandSpec {
  /** The words as given, byte for byte (a Buffer need not be UTF-8). */
  argv: Array<Buffer | string>;
  cwd: string;
  env: Environment;
  /** fds of tracedump that become the command's 0, 1 and 2. */
  stdio?: [number, number, number];
  /** The caller's descriptors above 2: the command gets them at the same numbers. */
  keepFds?: number[];
  /** Run as this user (uid, gid, supplementary groups). */
  user?: { uid: number; gid: number; groups: number[] };
}

export interface CommandOutcome {
  /** What a shell would report: the exit code, 128+N for signal N, 126/127 if it never ran. */
  status: number;
  /** The launched process's own exit event. */
  exit?: ExitEvent;
  /** Why the program never ran (exec failure), in a shell's words. */
  failure?: TracedumpError;
}

export class TracedCommand {
  readonly pid: number;
  readonly done: Promise<CommandOutcome>;
  /** The native tracer: the session polls its events and asks its searches through it (traced.ts). */
  readonly tracer: NativeTracer;

  /**
   * Launches argv under the tracer; events arrive in batches, in order, ending with 'done'.
   * With `polled`, socket events wait for tracer.poll() (which the caller then calls often)
   * instead of waking the event loop one by one.
   */
  constructor(spec: CommandSpec, onEvents: (batch: TraceEvent[]) => void, rules?: NativeRuleSet, polled = false, capture?: NativeCapture) {
    if (spec.argv.length === 0) throw new TracedumpError('no command given', { code: 'EUSAGE' });
    const file = resolveCommand(spec.argv[0], spec.env.get('PATH'), spec.cwd);
    const name = String(spec.argv[0]);
    let rootExit: ExitEvent | undefined;
    let finish!: (o: CommandOutcome) => void;
    this.done = new Promise((resolve) => (finish = resolve));
    try {
      this.tracer = native().launch(
        {
          path: file,
          argv: spec.argv,
          env: spec.env.toBuffers(),
          cwd: spec.cwd,
          stdio: spec.stdio ?? [0, 1, 2],
          keepFds: spec.keepFds,
          user: spec.user,
          rules,
          socketEventsPolled: polled,
          capture,
        },
        (batch) => {
          for (const e of batch) if (e.kind === 'exit' && e.tid === this.pid) rootExit = e;
          onEvents(batch);
          if (batch.some((e) => e.kind === 'done')) finish(outcome(quoteName(name), rootExit));
        },
      );
    } catch (err) {
      throw explainLaunchFailure(fromNative(err, { path: file.toString() }));
    }
    this.pid = this.tracer.pid;
  }

  /** Sends a signal to the launched process (not to its descendants). */
  signal(sig: number): void {
    this.tracer.signal(sig);
  }
}

/**
 * PTRACE_SEIZE of the command refused: most often tracedump is itself traced by a tracer that
 * follows children (strace -f, gdb, another tracedump attached to the shell), which took the
 * command first. A process can have one tracer.
 */
function explainLaunchFailure(err: TracedumpError): TracedumpError {
  if (err.code !== 'EPERM' || !err.syscall?.startsWith('ptrace')) return err;
  const status = readProcFile('self/status');
  const tracer = Number(status?.match(/^TracerPid:\s*(\d+)/m)?.[1] ?? 0);
  if (tracer > 0) {
    const comm = readProcFile(`${tracer}/comm`)?.trim();
    return new TracedumpError(
      `cannot trace the command: tracedump is itself traced by process ${tracer}${comm ? ` (${comm})` : ''}, which follows its children, ` +
        'so it took the command first; a process can have one tracer only',
      {
        code: 'EPERM',
        syscall: err.syscall,
        pid: tracer,
        hint: 'run tracedump outside that tracer (strace without -f, or stop the debugger), or use that tracer alone',
      },
    );
  }
  return new TracedumpError(err.message, {
    code: 'EPERM',
    syscall: err.syscall,
    hint: 'tracing needs CAP_SYS_PTRACE where kernel.yama.ptrace_scope is 1 or more: run tracedump with sudo',
  });
}

function outcome(name: string, exit: ExitEvent | undefined): CommandOutcome {
  if (!exit) return { status: EXIT_TRACEDUMP_FAILURE };
  const f = exit.launchFailure;
  if (f) {
    const status =
      f.syscall === 'execve' ? (f.code === 'ENOENT' ? EXIT_NOT_FOUND : EXIT_CANNOT_EXECUTE) : EXIT_TRACEDUMP_FAILURE;
    const what = f.syscall === 'execve' ? `${name}: ${f.message}` : `cannot start ${name}: ${f.syscall}: ${f.message}`;
    return { status, exit, failure: new TracedumpError(what, { syscall: f.syscall, errno: f.errno, code: f.code, exitStatus: status }) };
  }
  return { status: exit.signal !== null ? 128 + exit.signal : (exit.code ?? 0), exit };
}
