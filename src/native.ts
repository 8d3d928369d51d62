// The only loader of the native addon, and the typed view of what it exports.
import * as path from 'node:path';
import { TracedumpError } from './errors';

export interface Endpoint {
  address: string;
  port: number;
}

export type SocketCallName = 'connect' | 'bind' | 'listen' | 'sendto' | 'sendmsg' | 'sendmmsg';

interface EventBase {
  time: number; // ms since the epoch, µs precision
  pid: number; // thread-group id
  tid: number;
}

export interface SocketEvent extends EventBase {
  kind: 'socket';
  /** Inode of the socket: its identity while it is open. */
  inode: number;
  comm: string;
  threadName?: string;
  call: SocketCallName;
  fd: number;
  family: 4 | 6;
  proto: 'tcp' | 'udp' | 'mptcp' | 'udplite';
  local: Endpoint | null;
  remotes: Endpoint[];
  /** Return value (or -errno); null when the call ran on without an exit stop. */
  result: number | null;
  errno?: string;
}

/** Entry of a call whose local endpoint is known only at its exit (a 'socket' event follows). */
export interface PendingEvent extends Omit<SocketEvent, 'kind' | 'result' | 'errno'> {
  kind: 'pending';
  result: null;
}

export interface SpawnEvent extends EventBase {
  kind: 'spawn';
  child: number;
  thread: boolean;
  how: 'fork' | 'vfork' | 'clone';
  comm: string;
}

export interface ExecEvent extends EventBase {
  kind: 'exec';
  formerTid: number;
  comm: string;
  exe: string;
}

export interface LaunchFailure {
  syscall: string;
  errno: number;
  code: string;
  message: string;
}

export interface ExitEvent extends EventBase {
  kind: 'exit';
  comm: string;
  code: number | null;
  signal: number | null;
  core: boolean;
  /** Set on the launched command's exit when its program never ran. */
  launchFailure?: LaunchFailure;
}

export interface WarningEvent extends EventBase {
  kind: 'warning';
  message: string;
}

export interface DoneEvent extends EventBase {
  kind: 'done';
}

export type TraceEvent = SocketEvent | PendingEvent | SpawnEvent | ExecEvent | ExitEvent | WarningEvent | DoneEvent;

export interface LaunchOptions {
  path: string;
  argv: string[];
  env: string[];
  cwd: string;
  stdio?: [number, number, number];
}

export interface NativeTracer {
  readonly pid: number;
  /** Sends a signal to the launched command; returns 0 or -errno. */
  signal(sig: number): number;
}

interface Addon {
  launch(options: LaunchOptions, onEvents: (events: TraceEvent[]) => void): NativeTracer;
  seccompProgram(): string;
  unsupported?: string;
}

let addon: Addon | undefined;

export function native(): Addon {
  if (addon) return addon;
  if (process.platform !== 'linux' || process.arch !== 'x64')
    throw new TracedumpError(`tracedump runs on Linux x86-64 only (this is ${process.platform}/${process.arch})`, {
      code: 'EPLATFORM',
    });
  const file = path.join(__dirname, '..', 'build', 'Release', 'tracedump.node');
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    addon = require(file) as Addon;
  } catch (err) {
    throw new TracedumpError(`cannot load the native addon ${file}: ${(err as Error).message}`, {
      path: file,
      hint: 'run `npm install` (or `npm rebuild`) in the tracedump directory to build it',
    });
  }
  if (addon.unsupported) throw new TracedumpError(addon.unsupported, { code: 'EPLATFORM' });
  return addon;
}
