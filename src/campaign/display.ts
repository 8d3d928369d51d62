// A virtual X display of its own for a run (Xvfb): GUI programs and their drivers get DISPLAY.
// Xvfb picks a free display number itself and writes it to a pipe once it accepts clients
// (-displayfd, as xvfb-run does); it listens on its Unix socket only.
import { type ChildProcess, spawn } from 'node:child_process';
import { TracedumpError } from '../errors';

const START_TIMEOUT_MS = 15_000;

export class VirtualDisplay {
  private constructor(
    readonly display: string,
    private readonly child: ChildProcess,
    private readonly exited: Promise<void>,
  ) {}

  static async start(width: number, height: number): Promise<VirtualDisplay> {
    const child = spawn('Xvfb', ['-displayfd', '3', '-screen', '0', `${width}x${height}x24`, '-nolisten', 'tcp', '-noreset'], { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr?.on('data', (c: Buffer) => {
      if (err.length < 4096) err += c.toString();
    });
    const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
    const number = await new Promise<string | Error>((resolve) => {
      let text = '';
      const timer = setTimeout(() => resolve(new Error(`no display after ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS);
      const done = (v: string | Error) => {
        clearTimeout(timer);
        resolve(v);
      };
      (child.stdio[3] as NodeJS.ReadableStream).on('data', (c: Buffer) => {
        text += c.toString();
        if (text.includes('\n')) done(text.trim());
      });
      child.once('error', (e) => done(e));
      child.once('exit', () => done(new Error(err.trim().split('\n').pop() || 'it exited')));
    });
    if (typeof number === 'string' && /^\d+$/.test(number)) return new VirtualDisplay(`:${number}`, child, exited);
    child.kill('SIGKILL');
    await exited;
    const e = number instanceof Error ? number : new Error(`it said "${number}"`);
    const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
    throw new TracedumpError(missing ? 'a virtual display needs Xvfb, which is not installed' : `cannot start Xvfb: ${e.message}`, {
      code: 'EDISPLAY',
      hint: missing ? 'install it: apt-get install xvfb' : undefined,
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}
