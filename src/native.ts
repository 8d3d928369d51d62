// The only loader of the native addon, and the typed view of what it exports.
import * as path from 'node:path';
import { TracedumpError } from './errors';

export interface Endpoint {
  address: string;
  port: number;
}

/** A kernel filter rule the stop-path hook added for a socket call. */
export interface FilterRule {
  kind: 'flow' | 'bind' | 'pending';
  /** Wire protocol number (6 TCP, 17 UDP, 136 UDP-Lite). */
  proto: number;
  local: Endpoint | null;
  remote: Endpoint | null;
}

/**
 * No call behind these: 'existing', a socket the process had when tracedump attached to it;
 * 'inherited', one the command got from tracedump's caller; 'found', one that came into a
 * traced process without a traced call (over a Unix socket, from io_uring, pidfd_getfd), found
 * by a search of the fd tables: packets it exchanged before are not in the capture.
 */
export type SocketCallName =
  | 'connect'
  | 'bind'
  | 'listen'
  | 'sendto'
  | 'sendmsg'
  | 'sendmmsg'
  | 'existing'
  | 'inherited'
  | 'found';

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
  /** 'icmp'/'icmp6': a ping socket (its port is the echo identifier); 'raw': a raw socket, said once, never captured. */
  proto: 'tcp' | 'udp' | 'mptcp' | 'udplite' | 'icmp' | 'icmp6' | 'raw';
  local: Endpoint | null;
  remotes: Endpoint[];
  /** Return value (or -errno); null when the call ran on without an exit stop. */
  result: number | null;
  errno?: string;
  /** Kernel filter rules added for this call (empty without a capture). */
  rules: FilterRule[];
  /** The rule generation after this call (classic filter mode). */
  ruleGeneration: number;
  /**
   * The call's 'pending' event (its entry stop) when both came in one delivery: merged into
   * this one instead of sent apart (the controller applies them back to back anyway).
   */
  entry?: { time: number; rules: FilterRule[] };
  /** A raw socket's IP protocol (1 ICMP, 58 ICMPv6, 255 raw IP...). */
  protocol?: number;
  /** 'found' and 'inherited': the segments a TCP socket had sent and received by then (null: UDP, not known). */
  exchangedBefore?: number | null;
}

/** Entry of a call whose local endpoint is known only at its exit (a 'socket' event follows). */
export interface PendingEvent extends Omit<SocketEvent, 'kind' | 'result' | 'errno'> {
  ruleGeneration: number;
  kind: 'pending';
  result: null;
}

/** Attach mode: a running process is traced from now on (every thread it has). */
export interface AttachEvent extends EventBase {
  kind: 'attach';
  comm: string;
  exe: string;
  threads: number;
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
  /** Attach mode: when detaching began (ms since the epoch); later packets are not all seen. */
  detachedAt?: number;
}

export type TraceEvent = SocketEvent | PendingEvent | AttachEvent | SpawnEvent | ExecEvent | ExitEvent | WarningEvent | DoneEvent;

export interface LaunchOptions {
  /** Strings or bytes (Buffers), passed to execve as they are. */
  path: string | Buffer;
  argv: Array<string | Buffer>;
  /** NAME=value entries. */
  env: Array<string | Buffer>;
  cwd: string;
  stdio?: [number, number, number];
  /** Descriptors above 2 the command gets open, at the same numbers. */
  keepFds?: number[];
  /** Run the command as this user (after the seccomp filter is in place). */
  user?: { uid: number; gid: number; groups: number[] };
  /** Kernel filter rules kept in step by the tracer's stop path. */
  rules?: NativeRuleSet;
  /**
   * The controller calls poll() often (before each packet batch, on a timer): socket events
   * then wait for it instead of waking it one by one. Other events still wake it.
   */
  socketEventsPolled?: boolean;
  /** A capture whose ring is deferred: the command's socket calls wait until it is live. */
  capture?: NativeCapture;
}

export interface AttachOptions {
  pids: number[];
  rules?: NativeRuleSet;
  /** As LaunchOptions.socketEventsPolled. */
  socketEventsPolled?: boolean;
}

/** An account from the system's user databases. */
export interface UserAccount {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
  /** Supplementary groups, the primary group included. */
  groups: number[];
}

/** The eBPF maps of the kernel filter and the stop-path hook that fills them. */
export interface NativeRuleSet {
  mapFds(): { flows: number; binds: number; pending: number };
  /** Drops every rule the socket with this inode holds; returns how many keys left the maps. */
  release(inode: number): number;
  /**
   * Takes out pending-destination keys no call has held for a while, or with `all` every one
   * (tracing has ended); returns how many.
   */
  expirePending(all?: boolean): number;
  /** Adds the rules of a socket known from elsewhere (a flow when remote is given). */
  add(socket: { proto: number; local: Endpoint; remote?: Endpoint; inode: number; v6only?: boolean }): number;
  count(): number;
  /** Rules the kernel map refused because it was full. */
  failed(): number;
  /** Classic mode: attaches `program` if it reflects rule generation and nothing is pending. */
  offerClassic(program: Buffer, generation: number): boolean;
  generation(): number;
  /** Classic mode: how often the stop path swapped in the wide program. */
  classicSwaps(): number;
}

export interface CaptureOptions {
  blockSize?: number;
  blockCount?: number;
  retireMs?: number;
  /** -i: only packets of these interfaces (ifindex). */
  interfaces?: number[];
  /** -f: a classic BPF program (from compileFilter) every packet must pass. */
  userFilter?: Buffer;
  /** The ring is made by a helper process once start() is called; state() says when it is live. */
  deferRing?: boolean;
}

export interface CaptureState {
  /** Packets are received (a deferred ring: it is made, mapped and bound). */
  live: boolean;
  /** tracedump's CPU time (s) when it went live. */
  liveCpuSeconds: number;
  /** A deferred ring that could not be made. */
  error?: { syscall: string; errno: number; code: string; message: string };
}

export interface NativeCapture {
  attachBpf(progFd: number): void;
  attachClassic(program: Buffer): void;
  start(): void;
  /** Delivers the packets still in the ring (synchronously), then stops. */
  stop(): void;
  /** waiting: packets in the ring not handed over yet (the block the kernel is filling). */
  stats(): { packets: number; drops: number; stalls: number; waiting: number };
  /** The ring as one Buffer (the batches onBatch gives as null lie in it), valid while the capture is open. */
  ring(): Buffer;
  state(): CaptureState;
  /** A deferred ring that is live: the command's calls waiting for it go on (its files are in place). */
  openGate(): void;
}

/**
 * A batch of packet records is memory[offset, offset + size); memory null: the ring
 * (NativeCapture.ring()). Valid during the call only.
 */
export type NativeBatchCallback = (memory: Buffer | null, offset: number, size: number, packets: number) => void;

export interface NativeTracer {
  readonly pid: number;
  /** Sends a signal to the launched command; returns 0 or -errno. */
  signal(sig: number): number;
  /** Attach mode: detaches from every tracee (they run on); the 'done' event follows. */
  detach(): void;
  /** Delivers the events queued so far now, synchronously, through the events callback. */
  poll(): void;
  /** Searches the traced fd tables for sockets no traced call showed ('found' events follow). */
  sweep(): void;
  /** Send calls on the socket with this inode take an exit stop from now on (exact send windows). */
  stopAtSendExits(inode: number): void;
}

export interface NativeFileGuard {
  /** Before a write: the file's size once it completed. */
  writing(sizeAfter: number): void;
  /** After it: the size of the whole records in the file. */
  written(size: number): void;
  /** The paths given to remove if tracedump dies are to stay from now on. */
  keep(): void;
  /** The file is finished; the guardian exits. */
  release(): void;
}

/** The native path's writer (native/fast_path.h; capture/native-path.ts drives it). */
export interface NativeKnownPath {
  /**
   * A direction of a TCP connection (addresses as raw latin1 bytes) whose packets captured in
   * [since, until) are decided; slot: the caller's name for the verdict, said in run()'s marks.
   */
  remember(family: number, src: string, sport: number, dst: string, dport: number, since: number, until: number, options: Buffer, sentOnLoopback: boolean, slot?: number): void;
  forget(family: number, src: string, sport: number, dst: string, dport: number): void;
  forgetAll(): void;
  known(): number;
  setInterface(ifindex: number, ifid: number): void;
  forgetInterfaces(): void;
  /**
   * limits: endMs, maxRecords, outLimit, periodSec, period, tlsWatch;
   * result: next, outEnd, records, wireBytes, seen, duplicates, lastMs, stop (0 end, 1 miss,
   * 2 full, 3 limit, 4 units full), need (full: the bytes the next record needs);
   * units, when given: (end offset, capture ms) of each record written;
   * marks, when given: (offset in the batch, slot, packet type written) of each record written.
   */
  run(batch: Buffer, at: number, out: Buffer, outAt: number, limits: Float64Array, result: Float64Array, perIfid: Uint32Array, units?: Float64Array, marks?: Uint32Array): void;
}

/** A sock_diag snapshot and the realtime clock (ms, the packets' clock) around it. */
export interface LiveSockets {
  /** (inode, protocol, local port) triples. */
  sockets: Float64Array;
  /** Inodes of the TCP sockets among them that listen. */
  listening: Float64Array;
  /**
   * With TCP: the connections still finishing without a socket (orphans, TIME_WAIT), 40-byte
   * records: family (4|6) at 0, TCP state at 1 (6: TIME_WAIT), local port at 2, remote port at
   * 4 (uint16 LE), local address at 8, remote at 24.
   */
  finishing: Buffer;
  before: number;
  after: number;
}

/** Instrumentation of the stop path (stop_stats.h); see src/stop-stats.ts. */
export type StopStatKind =
  | 'connectEntry' // a connect() entry stop: waitpid() returned -> the tracee was resumed
  | 'connectExit'
  | 'otherEntry' // the other followed socket calls (sendto, sendmsg, bind, ...)
  | 'otherExit'
  | 'mapInsert' // one eBPF map update (present: keys in that map before)
  | 'mapDelete'
  | 'classicWide' // classic mode: the stop path attached the wide program (present: instructions)
  | 'classicExact'; // classic mode: the controller's exact program attached (present: instructions)

export interface StopStatSeries {
  /** Each sample in nanoseconds, in the order taken. */
  ns: Uint32Array;
  /** What was there at each sample: rule keys present (stops: flow + bind keys), or instructions. */
  present: Uint32Array;
  /** Samples past the capacity, not kept. */
  overflow: number;
}

interface Addon {
  launch(options: LaunchOptions, onEvents: (events: TraceEvent[]) => void): NativeTracer;
  /** Seizes every thread of running processes; the error of a refused one carries pid. */
  attach(options: AttachOptions, onEvents: (events: TraceEvent[]) => void): NativeTracer;
  /** A guardian process that cuts the file back to its last whole record if tracedump dies. */
  /** removeOnDeath: files, then directories, the guardian removes if tracedump dies. */
  FileGuard: new (fd: number, removeOnDeath?: string[]) => NativeFileGuard;
  NativePath: new (format: 'pcap' | 'pcapng') => NativeKnownPath;
  /** _exit(status): no exit handlers (all output is written synchronously before). */
  exitNow(status: number): never;
  /** A user by name or uid; null when there is none. */
  lookupUser(user: string | number): UserAccount | null;
  seccompProgram(): string;
  /** Instrumentation: the stop path records its timings from now on (up to capacity per kind). */
  enableStopStats(capacity: number): void;
  stopStats(): Record<StopStatKind, StopStatSeries>;
  RuleSet: new (config: number | { capture: NativeCapture; wide: Buffer }) => NativeRuleSet;
  Capture: new (options: CaptureOptions, onBatch: NativeBatchCallback) => NativeCapture;
  /** Loads an eBPF socket filter; the error of a refused program carries verifierLog. */
  loadSocketFilter(insns: Buffer): number;
  /** Runs a filter on a packet that starts at its network header; returns the bytes kept. */
  testRun(progFd: number, packet: Buffer): number;
  /**
   * (inode, protocol, local port) triples of all sockets of these wire protocols (default 6,
   * 17, 136) in this network namespace.
   */
  liveSockets(protocols?: number[]): LiveSockets;
  closeFd(fd: number): void;
  /** The address family of the socket at fd (2 AF_INET, 10 AF_INET6, 1 AF_UNIX...), -1 when it is none. */
  socketDomain(fd: number): number;
  interfaceName(ifindex: number): string | null;
  /** if_nametoindex: 0 when there is no such interface. */
  interfaceIndex(name: string): number;
  /**
   * A pcap-filter expression compiled by libpcap for frames of a link type (LINKTYPE_RAW by
   * default: IP packets); throws libpcap's message, or code ELIBPCAP when it is not installed.
   */
  compileFilter(expression: string, snaplen: number, linktype?: number): Buffer;
  /** Whether a program from compileFilter keeps this frame (wireLength: its length on the wire). */
  filterMatches(program: Buffer, frame: Buffer, wireLength: number): boolean;
  unsupported?: string;
}

/**
 * What the addon itself exports: a batch of events arrives as JSON text (native/event_json.h:
 * V8's JSON parser makes the objects far faster than N-API can set their properties).
 */
type RawAddon = Omit<Addon, 'launch' | 'attach'> & {
  launch(options: LaunchOptions, onEvents: (json: string) => void): NativeTracer;
  attach(options: AttachOptions, onEvents: (json: string) => void): NativeTracer;
};

let addon: Addon | undefined;

/**
 * A callback the addon calls from its threads' queues: an exception thrown there is only
 * warned about by Node, and the events or packets it carried would be lost (tracedump would
 * wait for a 'done' that never comes). Thrown again outside, it ends tracedump as any bug does.
 */
export function uncaught<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void {
  return (...args: A) => {
    try {
      fn(...args);
    } catch (err) {
      process.nextTick(() => {
        throw err;
      });
    }
  };
}

export function native(): Addon {
  if (addon) return addon;
  if (process.platform !== 'linux' || process.arch !== 'x64')
    throw new TracedumpError(`tracedump runs on Linux x86-64 only (this is ${process.platform}/${process.arch})`, {
      code: 'EPLATFORM',
    });
  const file = path.join(__dirname, '..', 'build', 'Release', 'tracedump.node');
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const raw = require(file) as RawAddon;
    addon = {
      ...raw,
      launch: (options, onEvents) => raw.launch(options, uncaught((json) => onEvents(JSON.parse(json) as TraceEvent[]))),
      attach: (options, onEvents) => raw.attach(options, uncaught((json) => onEvents(JSON.parse(json) as TraceEvent[]))),
    };
  } catch (err) {
    throw new TracedumpError(`cannot load the native addon ${file}: ${(err as Error).message}`, {
      path: file,
      hint: 'run `npm install` (or `npm rebuild`) in the tracedump directory to build it',
    });
  }
  if (addon.unsupported) throw new TracedumpError(addon.unsupported, { code: 'EPLATFORM' });
  return addon;
}
