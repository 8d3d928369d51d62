// `tracedump stats FILE|DIR...`: the per-application model of captures (one run or a directory
// of runs), as summary rows, time windows, a model file, a comparison of two models, or an HTML
// report. (Its flags: cli/stats-program.ts.)
//
// Exit status: 0 all read; 1 a file is damaged after a good start; 2 no capture, a file not a
// capture, a model file unreadable, or bad arguments.
import fs from 'node:fs';
import { TracedumpError, errorText } from '../errors';
import { printError, writeAll } from '../output/fd-writer';
import { OutputTarget } from '../output/output-target';
import { type FlowFormat, type TableColumn, rowWriter } from '../flows/formats';
import { humanCount } from '../flows/run';
import { SCAN_FAILED, scanFailure } from '../objects/scan';
import { tsharkVersion } from '../objects/tshark';
import { LineBuffer } from '../read/line-buffer';
import { quoteName } from '../text/quote';
import { type AppKey, Collector, type GroupKey, captureFiles } from './collect';
import { SUMMARY_FIELDS } from './distribution';
import { Destinations, readOrganisationFile } from './destinations';
import { type Model, buildModel, compareModels, summaryRows, windowRows } from './model';

/** Flows and objects listed in a report's table at most (the figures count them all). */
const REPORT_RECORDS = 20_000;

export const EXIT_STATS_FAILURE = SCAN_FAILED;

export interface StatsRequest {
  inputs: string[];
  format: Exclude<FlowFormat, 'zeek'>;
  by?: GroupKey;
  app: AppKey;
  windowSec?: number;
  /** --model: write the model here. */
  model?: string;
  /** --compare A B: two model files. */
  compare?: [string, string];
  /** --html: write the report here. */
  html?: string;
  /** --orgs: the user's domain -> organisation file. */
  orgs?: string;
  idleSec: number;
  activeSec: number;
}

/** A number for a table: whole numbers as counts, the rest with 3 significant digits. */
function num(v: unknown): string {
  if (typeof v !== 'number' || !Number.isFinite(v)) return '-';
  if (Math.abs(v) >= 10_000) return humanCount(Math.round(v));
  if (Number.isInteger(v)) return String(v);
  return Number(v.toPrecision(3)).toString();
}


function summaryColumns(by: boolean): TableColumn[] {
  return [
    { title: 'APP', value: (r) => String(r.app) },
    ...(by ? [{ title: 'GROUP', value: (r: Record<string, unknown>) => String(r.group ?? '') }] : []),
    { title: 'METRIC', value: (r) => String(r.metric) },
    ...SUMMARY_FIELDS.map((f) => ({ title: f.toUpperCase(), value: (r: Record<string, unknown>) => num(r[f]), right: true })),
    { title: 'BEST FIT', value: (r) => String(r.fit ?? '') },
  ];
}

const WINDOW_COLUMNS: TableColumn[] = [
  { title: 'APP', value: (r) => String(r.app) },
  { title: 'WINDOW START', value: (r) => new Date((r.window_start as number) * 1000).toISOString() },
  { title: 'SECONDS', value: (r) => num(r.window), right: true },
  { title: 'UP', value: (r) => humanCount(r.up_bytes), right: true },
  { title: 'DOWN', value: (r) => humanCount(r.down_bytes), right: true },
];

const COMPARE_FIELDS = ['count_a', 'count_b', 'mean_a', 'mean_b', 'p50_a', 'p50_b', 'p95_a', 'p95_b', 'ks'];

function compareColumns(by: boolean): TableColumn[] {
  return [
    { title: 'APP', value: (r) => String(r.app) },
    ...(by ? [{ title: 'GROUP', value: (r: Record<string, unknown>) => String(r.group ?? '') }] : []),
    { title: 'METRIC', value: (r) => String(r.metric) },
    ...COMPARE_FIELDS.map((f) => ({ title: f.toUpperCase().replace('_', ' '), value: (r: Record<string, unknown>) => num(r[f]), right: true })),
  ];
}

function readModel(file: string): Model {
  let m: Partial<Model>;
  try {
    m = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<Model>;
  } catch (err) {
    throw new TracedumpError(`cannot read the model ${file}: ${(err as Error).message}`, { code: 'EUSAGE', path: file });
  }
  if (m.tracedump_model !== 1 || typeof m.apps !== 'object' || m.apps === null)
    throw new TracedumpError(`${file} is not a tracedump model`, { code: 'EUSAGE', path: file, hint: 'make one with: tracedump stats --model FILE CAPTURE...' });
  return m as Model;
}

/** Writes a file the user named whole or not at all (OutputTarget: a temporary name, renamed). */
function writeOutput(file: string, text: string): void {
  const out = OutputTarget.open(file, { mode: 0o644 });
  try {
    try {
      writeAll(out.fd, text);
    } catch (err) {
      throw new TracedumpError(`cannot write ${file}: ${(err as Error).message}`, { code: 'EWRITE', path: file });
    }
    out.commit();
  } finally {
    out.close();
  }
}

export async function runStats(r: StatsRequest): Promise<number> {
  const out = new LineBuffer();
  const put = (s: string) => out.write(s);
  try {
    if (r.compare) {
      const rows = compareModels(readModel(r.compare[0]), readModel(r.compare[1]));
      const by = rows.some((x) => x.group !== undefined);
      const fields = ['app', ...(by ? ['group'] : []), 'metric', ...COMPARE_FIELDS];
      const w = rowWriter(r.format, put, { fields, types: fields.map(() => 'string'), columns: compareColumns(by) });
      for (const row of rows) w.write(row as unknown as Record<string, number>);
      w.end();
      out.flush();
      return 0;
    }
    let objects = true;
    try {
      tsharkVersion();
    } catch {
      objects = false;
      printError('stats: tshark is not installed: the object metrics (sizes by content type, objects per flow, gaps) are left out (apt-get install tshark)');
    }
    const files = captureFiles(r.inputs);
    if (!files.length) throw new TracedumpError(`stats: no capture file (.pcap, .pcapng) in ${r.inputs.map(quoteName).join(', ')}`, { code: 'EUSAGE' });
    const destinations = new Destinations(r.orgs ? readOrganisationFile(r.orgs) : undefined);
    // a report draws the bytes over time: 1 s windows unless --window says otherwise
    const windowSec = r.windowSec ?? (r.html ? 1 : undefined);
    const collector = new Collector({
      by: r.by,
      app: r.app,
      windowSec,
      objects,
      idleSec: r.idleSec,
      activeSec: r.activeSec,
      destinations,
      keepRecords: r.html ? REPORT_RECORDS : 0,
    });
    let status = 0;
    let read = 0;
    for (const file of files) {
      try {
        await collector.file(file);
        read++;
      } catch (err) {
        status = Math.max(status, scanFailure(file, err));
      }
    }
    // nothing read: no file is written (a model or report named is left as it was)
    if (read === 0) return status;
    collector.finish();
    const model = buildModel(collector.apps.values(), files, r.by, windowSec);
    if (r.model) writeOutput(r.model, `${JSON.stringify(model, null, 1)}\n`);
    if (r.html) writeOutput(r.html, (require('./report') as typeof import('./report')).renderReport(model, summaryRows(model), collector.kept));
    if (r.windowSec) {
      const fields = ['app', 'window_start', 'window', 'up_bytes', 'down_bytes'];
      const w = rowWriter(r.format, put, { fields, types: fields.map(() => 'string'), columns: WINDOW_COLUMNS });
      for (const row of windowRows(model)) w.write(row as unknown as Record<string, number>);
      w.end();
    } else {
      const fields = ['app', ...(r.by ? ['group'] : []), 'metric', ...SUMMARY_FIELDS, 'fit'];
      const w = rowWriter(r.format, put, { fields, types: fields.map(() => 'string'), columns: summaryColumns(!!r.by) });
      for (const row of summaryRows(model)) w.write(row as unknown as Record<string, number>);
      w.end();
    }
    out.flush();
    return status;
  } catch (err) {
    if (!(err instanceof TracedumpError)) throw err;
    out.flush();
    printError(errorText(err));
    return EXIT_STATS_FAILURE;
  }
}
