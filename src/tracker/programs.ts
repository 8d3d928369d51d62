// Which program each traced process runs (from exec, attach and fork events): what the
// capture file names beside the pid.
import type { TraceEvent } from '../native';

export class ProgramTable {
  private readonly exes = new Map<number, string>();

  apply(e: TraceEvent): void {
    if (e.kind === 'exec' || e.kind === 'attach') this.exes.set(e.pid, e.exe);
    else if (e.kind === 'spawn' && !e.thread) {
      const exe = this.exes.get(e.pid);
      if (exe !== undefined) this.exes.set(e.child, exe);
    }
    // kept after exit: packets of a process are often judged after it ended
  }

  exeOf(pid: number): string | undefined {
    return this.exes.get(pid);
  }
}
