// Reading /proc: a file that cannot be read (a process gone, a sysctl this kernel lacks) is
// undefined, not an error.
import * as fs from 'node:fs';

/** /proc/<relative> as text, or undefined when it cannot be read. */
export function readProcFile(relative: string): string | undefined {
  try {
    return fs.readFileSync(`/proc/${relative}`, 'utf8');
  } catch {
    return undefined;
  }
}
