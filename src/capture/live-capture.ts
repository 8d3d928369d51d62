// The kernel side of a capture, owned as one resource: the rule set, the filter (eBPF with
// rule maps, or the classic fallback), and the packet socket with its ring. close() is safe
// to call twice.
import * as fs from 'node:fs';
import { TracedumpError, fromNative } from '../errors';
import { buildEbpfFilter } from '../filter/ebpf-program';
import { encodeClassic } from '../filter/classic';
import { type PortsByProto, buildExactClassic, buildWideClassic } from '../filter/classic-program';
import { type CaptureState, type NativeCapture, type NativeRuleSet, native, uncaught } from '../native';

export type FilterMode = 'ebpf' | 'classic';
export type FilterChoice = FilterMode | 'auto';

export interface LiveCaptureOptions {
  snaplen: number;
  /** Ring size in bytes (split into blocks). */
  ringBytes: number;
  maxRules: number;
  filter: FilterChoice;
  /** -i: only these interfaces (ifindex); all when absent. */
  interfaces?: number[];
  /** -f: a compiled pcap-filter program the program's packets must also pass. */
  userFilter?: Buffer;
  onBatch: (batch: Buffer, packets: number) => void;
  /**
   * Make the ring in the background (native/capture.h): start() returns at once, and the
   * launched command, given `native` (TracedCommand), waits at its first socket call until
   * the capture is live. Only with the eBPF filter (a classic one is replaced on the socket,
   * whose lock the ring's making holds).
   */
  deferRing?: boolean;
}

const BLOCK_SIZE = 4 << 20;

function loopbackIfindex(): number {
  try {
    return Number(fs.readFileSync('/sys/class/net/lo/ifindex', 'utf8').trim()) || 1;
  } catch {
    return 1;
  }
}

function privilegeError(err: TracedumpError, what: string, capability: string): TracedumpError {
  if (err.code !== 'EPERM' && err.code !== 'EACCES') return err;
  return new TracedumpError(`${what}: permission denied (${err.syscall})`, {
    ...err,
    code: err.code,
    hint: `tracedump needs ${capability}: run it as root (sudo tracedump ...) or grant the capability`,
  });
}

/** Loads the eBPF filter for a fresh rule set; throws what the kernel said. */
function loadEbpf(maxRules: number, snaplen: number, lo: number): { rules: NativeRuleSet; progFd: number } {
  const addon = native();
  let rules: NativeRuleSet;
  try {
    rules = new addon.RuleSet(maxRules);
  } catch (err) {
    throw privilegeError(fromNative(err), 'cannot create the eBPF maps', 'CAP_BPF (or CAP_SYS_ADMIN)');
  }
  try {
    return { rules, progFd: addon.loadSocketFilter(buildEbpfFilter({ maps: rules.mapFds(), snaplen, loopbackIfindex: lo })) };
  } catch (err) {
    const e = fromNative(err);
    const log = (err as { verifierLog?: string }).verifierLog;
    throw privilegeError(
      log && e.code !== 'EPERM' ? new TracedumpError(`${e.message}\nverifier log:\n${log}`, { ...e, code: e.code }) : e,
      'cannot load the eBPF filter',
      'CAP_BPF (or CAP_SYS_ADMIN)',
    );
  }
}

export class LiveCapture {
  readonly rules: NativeRuleSet;
  readonly filterMode: FilterMode;
  /** Why eBPF was not used, when auto mode fell back to classic. */
  readonly fallbackReason?: string;
  /** The native capture (its gate is given to the tracer when the ring is deferred). */
  readonly native: NativeCapture;
  private readonly classicConfig: { snaplen: number; loopbackIfindex: number };
  private progFd = -1;
  private stopped = false;

  constructor(opts: LiveCaptureOptions) {
    const addon = native();
    const lo = loopbackIfindex();
    this.classicConfig = { snaplen: opts.snaplen, loopbackIfindex: lo };
    let ebpf: { rules: NativeRuleSet; progFd: number } | undefined;
    if (opts.filter !== 'classic') {
      try {
        ebpf = loadEbpf(opts.maxRules, opts.snaplen, lo);
      } catch (err) {
        if (opts.filter === 'ebpf') throw err;
        this.fallbackReason = (err as Error).message.split('\n')[0];
      }
    }
    const blockCount = Math.max(2, Math.round(opts.ringBytes / BLOCK_SIZE));
    let ring: Buffer | undefined;
    const onBatch = uncaught(opts.onBatch);
    try {
      this.native = new addon.Capture(
        { blockSize: BLOCK_SIZE, blockCount, retireMs: 20, interfaces: opts.interfaces, userFilter: opts.userFilter, deferRing: !!opts.deferRing && !!ebpf },
        (memory, offset, size, packets) => onBatch((memory ?? (ring ??= this.native.ring())).subarray(offset, offset + size), packets),
      );
    } catch (err) {
      if (ebpf) addon.closeFd(ebpf.progFd);
      throw privilegeError(fromNative(err), 'cannot open the packet capture', 'CAP_NET_RAW');
    }
    try {
      if (ebpf) {
        this.filterMode = 'ebpf';
        this.rules = ebpf.rules;
        this.progFd = ebpf.progFd;
        this.native.attachBpf(this.progFd);
      } else {
        this.filterMode = 'classic';
        const wide = encodeClassic(buildWideClassic(this.classicConfig));
        this.rules = new addon.RuleSet({ capture: this.native, wide });
        this.native.attachClassic(encodeClassic(buildExactClassic(new Map(), this.classicConfig)));
      }
    } catch (err) {
      this.close();
      throw fromNative(err);
    }
  }

  /** Starts receiving: from here every packet the filter passes is delivered. */
  start(): void {
    try {
      this.native.start();
    } catch (err) {
      throw privilegeError(fromNative(err), 'cannot start the packet capture', 'CAP_NET_RAW');
    }
  }

  /**
   * Classic mode: offers an exact program for the local ports in use, reflecting every rule
   * up to `generation`. Returns whether it is attached now (false: stale or a call pending).
   */
  refreshClassic(ports: PortsByProto, generation: number): boolean {
    if (this.filterMode !== 'classic' || this.stopped) return false;
    const prog = encodeClassic(buildExactClassic(ports, this.classicConfig));
    return this.rules.offerClassic(prog, generation);
  }

  stats(): { packets: number; drops: number; stalls: number; waiting: number } {
    return this.native.stats();
  }

  /** Whether packets are received yet (a deferred ring), and why they never will be. */
  state(): CaptureState {
    return this.native.state();
  }

  /** A deferred ring, live: the launched command's calls that wait for it go on. */
  openGate(): void {
    this.native.openGate();
  }

  /** Delivers what is left in the ring, then stops and frees the filter. */
  close(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.native.stop();
    if (this.progFd >= 0) native().closeFd(this.progFd);
    this.progFd = -1;
  }
}
