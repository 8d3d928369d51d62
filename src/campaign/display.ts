// A virtual X display of its own for a run (Xvfb): GUI programs and their drivers get DISPLAY.
// The display number is one no X server holds (no socket, no lock file); the server listens on
// its Unix socket only.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import { TracedumpError } from '../errors';

const FIRST = 90;
const LAST = 190;

export class VirtualDisplay {
  private constructor(
    readonly display: string,
    private readonly child: ChildProcess,
    private readonly exited: Promise<void>,
  ) {}

  static async start(width: number, height: number): Promise<VirtualDisplay> {
    for (let n = FIRST; n <= LAST; n++) {
      if (fs.existsSync(`/tmp/.X11-unix/X${n}`) || fs.existsSync(`/tmp/.X${n}-lock`)) continue;
      const child = spawn('Xvfb', [`:${n}`, '-screen', '0', `${width}x${height}x24`, '-nolisten', 'tcp', '-noreset'], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr?.on('data', (c: Buffer) => {
        if (err.length < 4096) err += c.toString();
      });
      const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
      const failed = new Promise<Error>((resolve) => child.on('error', resolve));
      // ready once its socket exists (bounded wait)
      for (let i = 0; i < 100; i++) {
        if (child.exitCode !== null || child.signalCode !== null) break;
        if (fs.existsSync(`/tmp/.X11-unix/X${n}`)) return new VirtualDisplay(`:${n}`, child, exited);
        const e = await Promise.race([failed, new Promise<undefined>((r) => setTimeout(() => r(undefined), 100))]);
        if (e) {
          const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
          throw new TracedumpError(missing ? 'a virtual display needs Xvfb, which is not installed' : `cannot start Xvfb: ${e.message}`, {
            code: 'EDISPLAY',
            hint: missing ? 'install it: apt-get install xvfb' : undefined,
          });
        }
      }
      child.kill('SIGKILL');
      await exited;
      if (/already active|server already running|Cannot establish/i.test(err)) continue; // taken meanwhile
      throw new TracedumpError(`Xvfb :${n} did not start: ${err.trim().split('\n').pop() ?? 'no message'}`, { code: 'EDISPLAY' });
    }
    throw new TracedumpError(`no free X display number from :${FIRST} to :${LAST}`, { code: 'EDISPLAY' });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}
