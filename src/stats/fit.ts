// Standard families fitted to a sample by maximum likelihood, with the Kolmogorov–Smirnov
// distance of each fit, so that a simulator can sample from the best one (and knows how good
// it is). Fitted on the positive values: a sample's zeros are a share of their own.

export type Family = 'lognormal' | 'pareto' | 'exponential' | 'weibull';

export interface Fit {
  family: Family;
  /** lognormal: mu, sigma (of ln x); pareto: xm, alpha; exponential: lambda; weibull: k, lambda. */
  params: Record<string, number>;
  /** The KS statistic D: the largest gap between the fitted CDF and the sample's. */
  ks: number;
  /**
   * The KS test's p-value for D (Kolmogorov's asymptotic distribution). The parameters come
   * from the same sample, so it is optimistic (Lilliefors): compare fits by D.
   */
  pValue: number;
}

/** At least this many positive values before a family is fitted. */
export const MIN_FIT_SAMPLE = 8;

export function fitAll(sorted: ArrayLike<number>): Fit[] {
  const x: number[] = [];
  for (let i = 0; i < sorted.length; i++) if (sorted[i] > 0) x.push(sorted[i]);
  // too few values, or all the same: no family says more than the value itself
  if (x.length < MIN_FIT_SAMPLE || x[0] === x[x.length - 1]) return [];
  const fits: Array<Omit<Fit, 'ks' | 'pValue'> & { cdf: (v: number) => number }> = [];
  const n = x.length;
  let sumLog = 0;
  let sum = 0;
  for (const v of x) {
    sumLog += Math.log(v);
    sum += v;
  }
  const meanLog = sumLog / n;
  let ss = 0;
  for (const v of x) ss += (Math.log(v) - meanLog) ** 2;
  const sigma = Math.sqrt(ss / n);
  if (sigma > 0) fits.push({ family: 'lognormal', params: { mu: meanLog, sigma }, cdf: (v) => normalCdf((Math.log(v) - meanLog) / sigma) });
  const lambda = n / sum;
  fits.push({ family: 'exponential', params: { lambda }, cdf: (v) => 1 - Math.exp(-lambda * v) });
  const xm = x[0];
  const sumLogRatio = sumLog - n * Math.log(xm);
  if (sumLogRatio > 0) {
    const alpha = n / sumLogRatio;
    fits.push({ family: 'pareto', params: { xm, alpha }, cdf: (v) => (v < xm ? 0 : 1 - (xm / v) ** alpha) });
  }
  const w = weibull(x, meanLog);
  if (w) fits.push({ family: 'weibull', params: w, cdf: (v) => 1 - Math.exp(-((v / w.lambda) ** w.k)) });
  return fits
    .map(({ family, params, cdf }) => {
      const ks = ksDistance(x, cdf);
      return { family, params, ks, pValue: ksPValue(ks, n) };
    })
    .sort((a, b) => a.ks - b.ks);
}

/** D = sup |F(x) - F_n(x)| over an ascending sample. */
export function ksDistance(sorted: ArrayLike<number>, cdf: (v: number) => number): number {
  const n = sorted.length;
  let d = 0;
  for (let i = 0; i < n; i++) {
    const f = cdf(sorted[i]);
    d = Math.max(d, f - i / n, (i + 1) / n - f);
  }
  return d;
}

/** P(D > d) for a sample of n under the fitted distribution (Kolmogorov's limit, Stephens' correction). */
export function ksPValue(d: number, n: number): number {
  const sq = Math.sqrt(n);
  const l = (sq + 0.12 + 0.11 / sq) * d;
  if (l < 0.2) return 1;
  let p = 0;
  for (let k = 1; k <= 100; k++) {
    const term = 2 * (k % 2 ? 1 : -1) * Math.exp(-2 * k * k * l * l);
    p += term;
    if (Math.abs(term) < 1e-12) break;
  }
  return Math.min(1, Math.max(0, p));
}

/** Weibull MLE: the shape k solves sum(x^k ln x)/sum(x^k) - 1/k = mean(ln x) (Newton's method on scaled values). */
function weibull(x: number[], meanLog: number): { k: number; lambda: number } | undefined {
  const scale = x[x.length >> 1] || 1; // values near 1: x^k stays finite
  const y = x.map((v) => v / scale);
  const meanLogY = meanLog - Math.log(scale);
  let k = 1;
  for (let it = 0; it < 100; it++) {
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    for (const v of y) {
      const p = v ** k;
      const l = Math.log(v);
      s0 += p;
      s1 += p * l;
      s2 += p * l * l;
    }
    const f = s1 / s0 - 1 / k - meanLogY;
    const df = (s2 * s0 - s1 * s1) / (s0 * s0) + 1 / (k * k);
    const next = k - f / df;
    if (!Number.isFinite(next) || next <= 0) return undefined;
    const done = Math.abs(next - k) < 1e-10 * k;
    k = next;
    if (done) break;
  }
  let s = 0;
  for (const v of y) s += v ** k;
  const lambda = scale * (s / y.length) ** (1 / k);
  return Number.isFinite(lambda) ? { k, lambda } : undefined;
}

/** The standard normal CDF (Abramowitz and Stegun 7.1.26 through erf: |error| < 1.5e-7). */
function normalCdf(z: number): number {
  const t = 1 / (1 + (0.3275911 * Math.abs(z)) / Math.SQRT2);
  const erf = 1 - t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))) * Math.exp(-(z * z) / 2);
  return z >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
}
