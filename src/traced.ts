// The two kinds of tracees a session follows, launched or attached, behind one face: how
// they end, how they are stopped, what Ctrl-C means for them.
import * as fs from 'node:fs';
import type { AttachedProcesses } from './attached';
import type { TracedumpError } from './errors';
import type { TracedCommand } from './traced-command';

/** What is traced, launched or attached, seen the same way by the session. */
export interface Traced {
  /** Resolves when no tracee is left (exited, or detached). */
  done: Promise<{ status: number; failure?: TracedumpError; detached?: boolean }>;
  /** -c, --duration, SIGTERM, a full disk: end the command (SIGTERM, later SIGKILL) or detach. */
  stop(killAfterMs: number, alive: Set<number>): void;
  /** The first Ctrl-C reached tracedump. */
  interrupted(): void;
  clearTimers(): void;
}

export function launched(command: TracedCommand): Traced {
  let killTimer: NodeJS.Timeout | undefined;
  return {
    done: command.done,
    stop(killAfterMs, alive) {
      command.signal(15);
      killTimer = setTimeout(() => {
        command.signal(9);
        for (const pid of alive) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }, killAfterMs);
    },
    interrupted() {
      // The terminal sent Ctrl-C to its whole foreground group, the command included; a
      // SIGINT sent to tracedump alone is passed on, as the terminal would have.
      if (!inForegroundOfTerminal()) command.signal(2);
    },
    clearTimers() {
      if (killTimer) clearTimeout(killTimer);
    },
  };
}

export function attached(procs: AttachedProcesses): Traced {
  return {
    done: procs.done.then((o) => ({ status: 0, detached: o.detached })),
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
