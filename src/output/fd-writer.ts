// Synchronous writes to a file descriptor. tracedump never opens process.stdout/stderr as
// streams: libuv would set O_NONBLOCK on a pipe it shares with the traced command.
import * as fs from 'node:fs';

const pause = new Int32Array(new SharedArrayBuffer(4));

export function writeAll(fd: number, data: string | Uint8Array): void {
  let buf = typeof data === 'string' ? Buffer.from(data) : data;
  while (buf.length > 0) {
    try {
      const n = fs.writeSync(fd, buf);
      buf = buf.subarray(n);
    } catch (err) {
      // Someone else made the fd non-blocking: wait for room rather than lose output.
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      Atomics.wait(pause, 0, 0, 1);
    }
  }
}

/** Writes text a reader may stop reading (help piped into head): a closed pipe ends it quietly. */
export function writeToReader(fd: number, data: string): void {
  try {
    writeAll(fd, data);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPIPE') throw err;
  }
}

let beforeMessage: (() => void) | undefined;

/** Called before each message (a status line on the terminal clears itself). */
export function onMessage(fn: (() => void) | undefined): void {
  beforeMessage = fn;
}

let messageSink: ((line: string) => void) | undefined;

/** Messages go to fn instead of stderr (a full-screen view shows them, and prints them at its end). */
export function takeMessages(fn: ((line: string) => void) | undefined): void {
  messageSink = fn;
}

/** Writes one message line to stderr, prefixed like other Unix tools. */
export function printError(message: string): void {
  if (messageSink) {
    messageSink(`tracedump: ${message}`);
    return;
  }
  beforeMessage?.();
  try {
    writeAll(2, `tracedump: ${message}\n`);
  } catch {
    // stderr is gone: nothing left to tell
  }
}
