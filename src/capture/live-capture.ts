// The kernel side of a capture, owned as one resource: the rule maps, the eBPF filter built
// for them, and the packet socket with its ring. close() is safe to call twice.
import * as fs from 'node:fs';
import { TracedumpError, fromNative } from '../errors';
import { buildEbpfFilter } from '../filter/ebpf-program';
import { type NativeCapture, type NativeRuleSet, native } from '../native';

export interface LiveCaptureOptions {
  snaplen: number;
  /** Ring size in bytes (split into blocks). */
  ringBytes: number;
  maxRules: number;
  onBatch: (batch: Buffer, packets: number) => void;
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

export class LiveCapture {
  readonly rules: NativeRuleSet;
  readonly filterMode = 'ebpf' as const;
  private readonly capture: NativeCapture;
  private progFd = -1;
  private stopped = false;

  constructor(opts: LiveCaptureOptions) {
    const addon = native();
    try {
      this.rules = new addon.RuleSet(opts.maxRules);
    } catch (err) {
      throw privilegeError(fromNative(err), 'cannot create the kernel filter', 'CAP_BPF (or CAP_SYS_ADMIN)');
    }
    const program = buildEbpfFilter({ maps: this.rules.mapFds(), snaplen: opts.snaplen, loopbackIfindex: loopbackIfindex() });
    try {
      this.progFd = addon.loadSocketFilter(program);
    } catch (err) {
      const e = fromNative(err);
      const log = (err as { verifierLog?: string }).verifierLog;
      throw privilegeError(
        log && e.code !== 'EPERM' ? new TracedumpError(`${e.message}\nverifier log:\n${log}`, { ...e, code: e.code }) : e,
        'cannot load the eBPF filter',
        'CAP_BPF (or CAP_SYS_ADMIN)',
      );
    }
    const blockCount = Math.max(2, Math.round(opts.ringBytes / BLOCK_SIZE));
    try {
      this.capture = new addon.Capture({ blockSize: BLOCK_SIZE, blockCount, retireMs: 20 }, opts.onBatch);
    } catch (err) {
      addon.closeFd(this.progFd);
      throw privilegeError(fromNative(err), 'cannot open the packet capture', 'CAP_NET_RAW');
    }
    try {
      this.capture.attachBpf(this.progFd);
    } catch (err) {
      this.close();
      throw fromNative(err);
    }
  }

  /** Starts receiving: from here every packet the filter passes is delivered. */
  start(): void {
    try {
      this.capture.start();
    } catch (err) {
      throw privilegeError(fromNative(err), 'cannot start the packet capture', 'CAP_NET_RAW');
    }
  }

  stats(): { packets: number; drops: number } {
    return this.capture.stats();
  }

  /** Delivers what is left in the ring, then stops and frees the filter. */
  close(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.capture.stop();
    if (this.progFd >= 0) native().closeFd(this.progFd);
    this.progFd = -1;
  }
}
