// Instrumentation for the benchmark: with TRACEDUMP_STATS_FILE=PATH in its environment, a
// session records how long each socket-call stop holds the tracee (from waitpid() returning the
// stop to the resume request), what each kernel filter update costs, and in classic mode the
// controller's rebuilds of the exact program, and writes their percentiles to PATH as JSON
// when it ends. The native side keeps its samples in arrays made up front (stop_stats.h).
import * as fs from 'node:fs';
import { type StopStatKind, native } from './native';

/** Samples kept per kind (the first ones; later ones are counted as overflow). */
const CAPACITY = 1 << 18;

export interface Percentiles {
  count: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  maxUs: number;
  meanUs: number;
}

export interface StatSummary extends Percentiles {
  overflow: number;
  /** By what was present at each sample (rule keys, or instructions), in decades: '0-9' … '10000+'. */
  byPresent: Record<string, Percentiles & { presentMin: number; presentMax: number }>;
}

/** classicRefresh: one rebuild of the exact classic program by the controller, offer included (present: local ports). */
export type StopStatsReport = Record<StopStatKind | 'classicRefresh', StatSummary>;

/** Nearest-rank percentiles over nanosecond samples, in µs (the benchmark workloads' convention). */
export function percentiles(ns: ArrayLike<number>): Percentiles {
  const s = Float64Array.from(ns).sort();
  const n = s.length;
  const at = (p: number) => (n ? s[Math.min(n - 1, Math.floor(n * p))] / 1e3 : NaN);
  let sum = 0;
  for (const x of s) sum += x;
  return { count: n, p50Us: at(0.5), p90Us: at(0.9), p99Us: at(0.99), maxUs: n ? s[n - 1] / 1e3 : NaN, meanUs: n ? sum / n / 1e3 : NaN };
}

function decade(present: number): string {
  const d = present < 10 ? 0 : Math.min(4, Math.floor(Math.log10(present)));
  return d === 4 ? '10000+' : `${d ? 10 ** d : 0}-${10 ** (d + 1) - 1}`;
}

export function summarize(ns: ArrayLike<number>, present: ArrayLike<number>, overflow = 0): StatSummary {
  const groups = new Map<string, { ns: number[]; present: number[] }>();
  for (let i = 0; i < ns.length; i++) {
    const key = decade(present[i]);
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { ns: [], present: [] }));
    g.ns.push(ns[i]);
    g.present.push(present[i]);
  }
  const byPresent: StatSummary['byPresent'] = {};
  for (const [key, g] of [...groups].sort((a, b) => a[1].present[0] - b[1].present[0]))
    byPresent[key] = { ...percentiles(g.ns), presentMin: Math.min(...g.present), presentMax: Math.max(...g.present) };
  return { ...percentiles(ns), overflow, byPresent };
}

export class StopStatsRecorder {
  private readonly refreshNs: number[] = [];
  private readonly refreshPorts: number[] = [];

  /** Recording starts now (in this process's native stop path). */
  constructor(readonly file: string) {
    native().enableStopStats(CAPACITY);
  }

  /** A recorder when TRACEDUMP_STATS_FILE is set. */
  static fromEnv(env: NodeJS.ProcessEnv = process.env): StopStatsRecorder | undefined {
    return env.TRACEDUMP_STATS_FILE ? new StopStatsRecorder(env.TRACEDUMP_STATS_FILE) : undefined;
  }

  /** Classic mode: one rebuild (and offer) of the exact program that began at `startNs` (hrtime). */
  classicRefresh(startNs: bigint, ports: Map<number, number[]>): void {
    if (this.refreshNs.length >= CAPACITY) return;
    this.refreshNs.push(Number(process.hrtime.bigint() - startNs));
    let n = 0;
    for (const list of ports.values()) n += list.length;
    this.refreshPorts.push(n);
  }

  report(): StopStatsReport {
    const raw = native().stopStats();
    const out = {} as StopStatsReport;
    for (const [kind, s] of Object.entries(raw) as Array<[StopStatKind, (typeof raw)[StopStatKind]]>)
      out[kind] = summarize(s.ns, s.present, s.overflow);
    out.classicRefresh = summarize(this.refreshNs, this.refreshPorts);
    return out;
  }

  write(): void {
    fs.writeFileSync(this.file, JSON.stringify(this.report(), null, 2) + '\n');
  }
}
