// The per-application model as data: summaries for the tables, and the model file a simulator
// samples from (quantile tables, histograms with their bin edges, fitted families with their
// goodness of fit), and how two models differ.
import { version } from '../version';
import { type AppData, type DestinationTotals, type GroupKey, METRICS } from './collect';
import { type Histogram, type Summary, histogram, quantileTable, quantileTableDistance, summarize } from './distribution';
import { type Fit, fitAll } from './fit';

export interface MetricModel {
  summary: Summary;
  /** Percentiles 0..100. */
  quantiles: number[];
  histogram: Histogram;
  /** Best first (smallest KS distance). */
  fits: Fit[];
}

export interface GroupModel {
  /** The --by value (null without --by). */
  group: string | null;
  metrics: Record<string, MetricModel>;
}

export interface AppModel {
  flows: number;
  objects: number;
  groups: GroupModel[];
  windows?: { seconds: number; start: number[]; up: number[]; down: number[] };
  destinations: DestinationTotals[];
}

export interface Model {
  tracedump_model: 1;
  tracedump: string;
  generated: string;
  inputs: string[];
  by: GroupKey | null;
  apps: Record<string, AppModel>;
}

/** A row of the summary table (--json and --csv write the same fields). */
export interface SummaryRow extends Summary {
  app: string;
  group?: string;
  metric: string;
  fit?: string;
}

export function buildModel(apps: Iterable<AppData>, inputs: string[], by: GroupKey | undefined, windowSec: number | undefined): Model {
  const model: Model = { tracedump_model: 1, tracedump: version, generated: new Date().toISOString(), inputs, by: by ?? null, apps: {} };
  for (const a of [...apps].sort((x, y) => x.name.localeCompare(y.name))) {
    const groups: GroupModel[] = [];
    for (const [group, metrics] of [...a.groups].sort(([x], [y]) => x.localeCompare(y))) {
      const out: Record<string, MetricModel> = {};
      for (const [name, sample] of [...metrics].sort(([x], [y]) => metricOrder(x) - metricOrder(y) || x.localeCompare(y))) {
        const sorted = sample.sorted();
        if (!sorted.length) continue;
        out[name] = { summary: summarize(sorted), quantiles: quantileTable(sorted), histogram: histogram(sorted), fits: fitAll(sorted) };
      }
      groups.push({ group: by ? group : null, metrics: out });
    }
    const app: AppModel = {
      flows: a.flows,
      objects: a.objects,
      groups,
      destinations: [...a.destinations.values()].sort((x, y) => y.up + y.down - (x.up + x.down) || x.domain.localeCompare(y.domain)),
    };
    if (windowSec) {
      const starts = [...a.windows.keys()].sort((x, y) => x - y);
      const all: number[] = [];
      // every window from the first to the last, the empty ones too
      if (starts.length) for (let t = starts[0]; t <= starts[starts.length - 1] + 1e-9; t += windowSec) all.push(round(t));
      app.windows = {
        seconds: windowSec,
        start: all,
        up: all.map((t) => a.windows.get(t)?.up ?? 0),
        down: all.map((t) => a.windows.get(t)?.down ?? 0),
      };
    }
    model.apps[a.name] = app;
  }
  return model;
}

const round = (t: number) => Math.round(t * 1e6) / 1e6;

/** The metrics in collect.ts's order; object_size[TYPE] after object_size. */
function metricOrder(name: string): number {
  const i = (METRICS as readonly string[]).indexOf(name.replace(/\[.*$/, ''));
  return i < 0 ? METRICS.length : i;
}

/** The model's summaries as table rows. */
export function summaryRows(model: Model): SummaryRow[] {
  const rows: SummaryRow[] = [];
  for (const [app, a] of Object.entries(model.apps))
    for (const g of a.groups)
      for (const [metric, m] of Object.entries(g.metrics)) {
        const row: SummaryRow = { app, ...(g.group !== null ? { group: g.group } : {}), metric, ...m.summary };
        if (m.fits[0]) row.fit = `${m.fits[0].family} (D=${m.fits[0].ks.toFixed(3)})`;
        rows.push(row);
      }
  return rows;
}

export interface WindowRow {
  app: string;
  window_start: number;
  window: number;
  up_bytes: number;
  down_bytes: number;
}

export function windowRows(model: Model): WindowRow[] {
  const rows: WindowRow[] = [];
  for (const [app, a] of Object.entries(model.apps)) {
    const w = a.windows;
    if (!w) continue;
    w.start.forEach((t, i) => rows.push({ app, window_start: t, window: w.seconds, up_bytes: w.up[i], down_bytes: w.down[i] }));
  }
  return rows;
}

export interface CompareRow {
  app: string;
  group?: string;
  metric: string;
  count_a: number | null;
  count_b: number | null;
  mean_a: number | null;
  mean_b: number | null;
  p50_a: number | null;
  p50_b: number | null;
  p95_a: number | null;
  p95_b: number | null;
  /** The KS distance between the two distributions (0: the same, 1: apart); null when one side lacks it. */
  ks: number | null;
}

/** How model b differs from model a, metric by metric. */
export function compareModels(a: Model, b: Model): CompareRow[] {
  const index = (m: Model) => {
    const out = new Map<string, { app: string; group: string | null; metric: string; m: MetricModel }>();
    for (const [app, am] of Object.entries(m.apps))
      for (const g of am.groups) for (const [metric, mm] of Object.entries(g.metrics)) out.set(`${app}\u0000${g.group ?? ''}\u0000${metric}`, { app, group: g.group, metric, m: mm });
    return out;
  };
  const ia = index(a);
  const ib = index(b);
  const keys = [...new Set([...ia.keys(), ...ib.keys()])].sort();
  return keys.map((k) => {
    const x = ia.get(k);
    const y = ib.get(k);
    const any = (x ?? y) as { app: string; group: string | null; metric: string };
    return {
      app: any.app,
      ...(any.group !== null ? { group: any.group } : {}),
      metric: any.metric,
      count_a: x?.m.summary.count ?? null,
      count_b: y?.m.summary.count ?? null,
      mean_a: x?.m.summary.mean ?? null,
      mean_b: y?.m.summary.mean ?? null,
      p50_a: x?.m.summary.p50 ?? null,
      p50_b: y?.m.summary.p50 ?? null,
      p95_a: x?.m.summary.p95 ?? null,
      p95_b: y?.m.summary.p95 ?? null,
      ks: x && y ? quantileTableDistance(x.m.quantiles, y.m.quantiles) : null,
    };
  });
}
