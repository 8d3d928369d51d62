// Empirical distributions: the summary a table shows (count, mean, min, quantiles, max), the
// quantile table and histogram a model keeps, and the distance between two distributions.


export interface Summary {
  count: number;
  mean: number;
  min: number;
  p5: number;
  p25: number;
  p50: number;
  p75: number;
  p95: number;
  p99: number;
  max: number;
}

/** A summary's fields in the order tables show them. */
export const SUMMARY_FIELDS: readonly (keyof Summary)[] = ['count', 'mean', 'min', 'p5', 'p25', 'p50', 'p75', 'p95', 'p99', 'max'];

/** Values collected one at a time (growing storage: 8 bytes a value). */
export class Sample {
  private data = new Float64Array(64);
  private n = 0;
  private sortedView: Float64Array | undefined;

  add(x: number): void {
    if (!Number.isFinite(x)) return;
    if (this.n === this.data.length) {
      const next = new Float64Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.n++] = x;
    this.sortedView = undefined;
  }

  get count(): number {
    return this.n;
  }

  /** The values in ascending order. */
  sorted(): Float64Array {
    this.sortedView ??= this.data.slice(0, this.n).sort();
    return this.sortedView;
  }
}

/**
 * The p-th percentile (0..100) of ascending values, interpolated between the closest ranks
 * (Hyndman and Fan's type 7: numpy's and R's default, and Excel's PERCENTILE.INC).
 */
export function quantile(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const h = (n - 1) * (p / 100);
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, n - 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

export function summarize(sorted: ArrayLike<number>): Summary {
  const n = sorted.length;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += sorted[i];
  const q = (p: number) => quantile(sorted, p);
  return {
    count: n,
    mean: n ? sum / n : NaN,
    min: n ? sorted[0] : NaN,
    p5: q(5),
    p25: q(25),
    p50: q(50),
    p75: q(75),
    p95: q(95),
    p99: q(99),
    max: n ? sorted[n - 1] : NaN,
  };
}

/** Percentiles 0, 1, ..., 100: the model's quantile table. */
export function quantileTable(sorted: ArrayLike<number>): number[] {
  return Array.from({ length: 101 }, (_, p) => quantile(sorted, p));
}

export interface Histogram {
  /** Bin edges, ascending: bin i holds edges[i] <= x < edges[i+1] (the last bin includes its end). */
  edges: number[];
  counts: number[];
  /** Logarithmic bins (sizes, durations spread over orders of magnitude): zeros are counted apart. */
  log: boolean;
  zeros: number;
}

/** A histogram of `bins` bins: logarithmic when the positive values span more than two orders of magnitude. */
export function histogram(sorted: ArrayLike<number>, bins = 20): Histogram {
  const n = sorted.length;
  if (n === 0) return { edges: [], counts: [], log: false, zeros: 0 };
  let firstPositive = 0;
  while (firstPositive < n && sorted[firstPositive] <= 0) firstPositive++;
  const min = sorted[0];
  const max = sorted[n - 1];
  const positiveMin = firstPositive < n ? sorted[firstPositive] : 0;
  const log = min >= 0 && positiveMin > 0 && max / positiveMin > 100;
  const edges: number[] = [];
  if (log) {
    const a = Math.log10(positiveMin);
    const b = Math.log10(max);
    for (let i = 0; i <= bins; i++) edges.push(i === bins ? max : 10 ** (a + ((b - a) * i) / bins));
    edges[0] = positiveMin;
  } else {
    const width = (max - min) / bins || 1;
    for (let i = 0; i <= bins; i++) edges.push(i === bins ? Math.max(max, min + width * bins) : min + width * i);
  }
  const counts = new Array<number>(bins).fill(0);
  let zeros = 0;
  let bin = 0;
  for (let i = 0; i < n; i++) {
    const x = sorted[i];
    if (log && x <= 0) {
      zeros++;
      continue;
    }
    while (bin < bins - 1 && x >= edges[bin + 1]) bin++;
    counts[bin]++;
  }
  return { edges, counts, log, zeros };
}

/**
 * The Kolmogorov–Smirnov distance between two distributions given by their quantile tables
 * (percentiles 0..100): the largest gap between their CDFs at any of the values in either table.
 */
export function quantileTableDistance(a: number[], b: number[]): number {
  const cdf = (table: number[], x: number): number => {
    if (x < table[0]) return 0;
    if (x >= table[100]) return 1;
    // the last percentile at or below x, interpolated towards the next
    let i = 0;
    while (i < 100 && table[i + 1] <= x) i++;
    const lo = table[i];
    const hi = table[i + 1];
    return (i + (hi > lo ? (x - lo) / (hi - lo) : 0)) / 100;
  };
  let d = 0;
  for (const x of [...a, ...b]) d = Math.max(d, Math.abs(cdf(a, x) - cdf(b, x)));
  return d;
}
