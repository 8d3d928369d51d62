// Typed errors of tracedump: each carries what failed (syscall, errno, pid, path) and the exit
// status the CLI should end with.
import { constants as osConstants } from 'node:os';

export const EXIT_TRACEDUMP_FAILURE = 125;
export const EXIT_CANNOT_EXECUTE = 126;
export const EXIT_NOT_FOUND = 127;

export interface ErrorDetails {
  code?: string; // errno name (ENOENT) or a tracedump code (EUSAGE)
  syscall?: string;
  errno?: number;
  pid?: number;
  path?: string;
  exitStatus?: number;
  hint?: string; // what the user can do about it
}

export class TracedumpError extends Error {
  readonly code?: string;
  readonly syscall?: string;
  readonly errno?: number;
  readonly pid?: number;
  readonly path?: string;
  readonly exitStatus: number;
  readonly hint?: string;

  constructor(message: string, details: ErrorDetails = {}) {
    super(message);
    this.name = 'TracedumpError';
    this.code = details.code;
    this.syscall = details.syscall;
    this.errno = details.errno;
    this.pid = details.pid;
    this.path = details.path;
    this.exitStatus = details.exitStatus ?? EXIT_TRACEDUMP_FAILURE;
    this.hint = details.hint;
  }
}

/** The error as tracedump says it: its message, then on a line of its own what to do about it. */
export function errorText(err: TracedumpError): string {
  return err.message + (err.hint ? `\n  ${err.hint}` : '');
}

/** Wraps an error thrown by the addon (which carries syscall/errno/code) into a TracedumpError. */
export function fromNative(err: unknown, details: ErrorDetails = {}): TracedumpError {
  if (err instanceof TracedumpError) return err;
  const e = err as { message?: string; syscall?: string; errno?: number; code?: string };
  return new TracedumpError(e?.message ?? String(err), {
    syscall: e?.syscall,
    errno: e?.errno,
    code: e?.code,
    ...details,
  });
}

export function signalName(signal: number): string {
  for (const [name, num] of Object.entries(osConstants.signals)) if (num === signal) return name;
  return `signal ${signal}`;
}
