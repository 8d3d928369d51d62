// The two kinds of tracees a session follows, launched or attached, behind one face: how
// they end, how they are stopped, what Ctrl-C means for them.
import * as fs from 'node:fs';
import type { AttachedProcesses } from './attached';
import type { ExitEvent, NativeTracer } from '../native';
import type { TracedumpError } from '../errors';
import type { TracedCommand } from './launched';
import { type LongTimeout, setLongTimeout } from '../long-timeout';

/** What is traced, launched or attached, seen the same way by the session. */
export interface Traced {
  /** Resolves when no tracee is left (exited, or detached). */
  done: Promise<{ status: number; failure?: TracedumpError; detached?: boolean; exit?: ExitEvent }>;
  /** -c, --duration, SIGTERM, a full disk: end the command (SIGTERM, later SIGKILL) or detach. */
  stop(killAfterMs: number, alive: Set<number>): void;
  /** The first Ctrl-C reached tracedump. */
  interrupted(): void;
  clearTimers(): void;
  /** Delivers the events the tracer has queued so far, synchronously (see CapturePipeline). */
  pollEvents(): void;
  /** Searches the traced fd tables for sockets no traced call showed ('found' events follow). */
  findLateSockets(): void;
  /** Send calls on this socket take an exit stop from now on (a shared port: exact send windows). */
  stopAtSendExits(inode: number): void;
}

/** What the session asks of the tracer itself, the same for both kinds. */
function tracerControls(tracer: NativeTracer): Pick<Traced, 'pollEvents' | 'findLateSockets' | 'stopAtSendExits'> {
  return {
    pollEvents: () => tracer.poll(),
    findLateSockets: () => tracer.sweep(),
    stopAtSendExits: (inode) => tracer.stopAtSendExits(inode),
  };
}

export function launched(command: TracedCommand): Traced {
  const timers: NodeJS.Timeout[] = [];
  const longTimers: LongTimeout[] = [];
  const signalAll = (alive: Set<number>, sig: NodeJS.Signals) => {
    for (const pid of alive) {
      try {
        process.kill(pid, sig);
      } catch {
        // already gone
      }
    }
  };
  return {
    done: command.done,
    ...tracerControls(command.tracer),
    stop(killAfterMs, alive) {
      command.signal(15);
      // A shell or launcher that dies at once leaves its children running: they get SIGTERM
      // as soon as it is gone, and everything still alive SIGKILL after --kill-after.
      const orphans = setInterval(() => {
        if (exists(command.pid)) return;
        clearInterval(orphans);
        signalAll(alive, 'SIGTERM');
      }, 50);
      timers.push(orphans);
      longTimers.push(
        setLongTimeout(() => {
          command.signal(9);
          signalAll(alive, 'SIGKILL');
        }, killAfterMs),
      );
    },
    interrupted() {
      // The terminal sent Ctrl-C to its whole foreground group, the command included; a
      // SIGINT sent to tracedump alone is passed on, as the terminal would have.
      if (!inForegroundOfTerminal()) command.signal(2);
    },
    clearTimers() {
      for (const t of timers) clearTimeout(t);
      for (const t of longTimers) t.clear();
    },
  };
}

function exists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function attached(procs: AttachedProcesses): Traced {
  return {
    done: procs.done.then((o) => ({ status: 0, detached: o.detached })),
    ...tracerControls(procs.tracer),
    stop: () => procs.detach(),
    interrupted() {
      procs.detach(); // tcpdump's Ctrl-C: stop capturing; the program runs on
    },
    clearTimers() {},
  };
}

/** tracedump's process group is the foreground group of its controlling terminal. */
function inForegroundOfTerminal(): boolean {
  try {
    const stat = fs.readFileSync('/proc/self/stat', 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const [pgrp, ttyNr, tpgid] = [Number(f[2]), Number(f[4]), Number(f[5])];
    return ttyNr !== 0 && tpgid === pgrp;
  } catch {
    return false;
  }
}
