// `tracedump campaign run PLAN`: every run of the plan, unattended, each in a directory of its
// own (LABEL/NNN), `parallel` at a time, each stored in the catalogue as it ends. Run again
// after any stop, it keeps the finished runs (a meta.json, stored in the catalogue: stored now
// if the stop came between the two) and redoes the rest.
import fs from 'node:fs';
import path from 'node:path';
import { isatty } from 'node:tty';
import type { FlowRecord } from '../flows/flow-record';
import type { ObjectRecord } from '../objects/object-record';
import { tsharkVersion } from '../objects/tshark';
import { TracedumpError, errorText } from '../errors';
import { printError, writeAll } from '../output/fd-writer';
import { Destinations } from '../stats/destinations';
import { CATALOG_FILE, Catalog } from './catalog';
import { hostInfo } from './host';
import { type RunMeta, readMeta, writeWhole } from './meta';
import type { Plan, RunSpec } from './plan';
import { CampaignStop, PARTIAL, PID_FILE, type RunContext, runOne } from './run-one';

export interface CampaignOptions {
  /** How to start tracedump itself (node and its cli.js). */
  tracedump: string[];
  /** Progress on this fd (a status line on a terminal, plain lines otherwise). */
  progressFd: number;
  /** --catalog postgres://...: each run also goes there as it is stored. */
  postgres?: string;
}

export interface CampaignResult {
  done: number;
  skipped: number;
  total: number;
  stopped?: string;
}

interface Planned {
  spec: RunSpec;
  repeat: number;
  dir: string;
}

/**
 * Removes what interrupted attempts left (LABEL/NNN.partial-*), after ending a tracedump a
 * campaign killed hard left running in one (its pid file, checked against its command line).
 */
function cleanPartial(out: string, labels: string[]): void {
  for (const label of new Set(labels)) {
    const dir = path.join(out, label);
    if (!fs.existsSync(dir)) continue;
    for (const name of fs.readdirSync(dir)) {
      if (!name.includes(PARTIAL)) continue;
      const partial = path.join(dir, name);
      try {
        const pid = Number(fs.readFileSync(path.join(partial, PID_FILE), 'utf8'));
        const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        if (pid > 1 && cmdline.includes(partial)) process.kill(pid, 'SIGKILL'); // its program goes with it (PTRACE_O_EXITKILL)
      } catch {
        // no pid file, or that process is gone
      }
      fs.rmSync(partial, { recursive: true, force: true });
    }
  }
}

/** One campaign at a time in a directory: a lock file with the pid (a dead one's is taken over). */
function lock(out: string): () => void {
  const file = path.join(out, '.campaign.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx', 0o644);
      fs.writeSync(fd, `${process.pid}\n`);
      fs.closeSync(fd);
      return () => fs.rmSync(file, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(fs.readFileSync(file, 'utf8'));
      let alive = false;
      try {
        alive = pid > 0 && fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('campaign');
      } catch {
        alive = false;
      }
      if (alive) throw new TracedumpError(`another campaign (pid ${pid}) is running in ${out}`, { code: 'EBUSY', path: out, hint: 'wait for it, or stop it and run this again' });
      fs.rmSync(file, { force: true }); // its campaign died: taken over
    }
  }
  throw new TracedumpError(`cannot lock ${out}`, { code: 'EBUSY', path: out });
}

function readJsonLines(file: string): Record<string, unknown>[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

export async function runCampaign(plan: Plan, o: CampaignOptions): Promise<CampaignResult> {
  fs.mkdirSync(plan.output, { recursive: true, mode: 0o755 });
  const unlock = lock(plan.output);
  try {
    return await campaignLocked(plan, o);
  } finally {
    unlock();
  }
}

async function campaignLocked(plan: Plan, o: CampaignOptions): Promise<CampaignResult> {
  writeWhole(path.join(plan.output, 'campaign.json'), `${JSON.stringify({ plan_file: plan.file, plan_hash: plan.hash, output: plan.output }, null, 1)}\n`);
  fs.copyFileSync(plan.file, path.join(plan.output, 'plan.yaml'));
  const catalog = new Catalog(path.join(plan.output, CATALOG_FILE));
  const destinations = new Destinations();
  const store = (meta: RunMeta, dir: string) => {
    try {
      catalog.addRun(meta, readJsonLines(path.join(dir, 'flows.jsonl')) as FlowRecord[], readJsonLines(path.join(dir, 'objects.jsonl')) as ObjectRecord[], destinations);
    } catch (err) {
      // the run is finished on disk: the next attempt stores it (a full disk, a lost lock)
      const code = (err as { code?: string }).code ?? '';
      if (/^SQLITE_(FULL|IOERR|BUSY|LOCKED)/.test(code))
        throw new CampaignStop(`cannot store run ${meta.label} #${meta.repeat} in the catalogue: ${(err as Error).message}`, {
          code,
          hint: 'free some space (or end what holds the catalogue) and run the same command again: nothing is lost',
        });
      throw err;
    }
  };
  let tshark = true;
  try {
    tsharkVersion();
  } catch {
    tshark = false;
    printError('campaign: tshark is not installed: runs get no objects.jsonl (apt-get install tshark)');
  }
  cleanPartial(plan.output, plan.runs.map((r) => r.label));
  const planned: Planned[] = [];
  for (const spec of plan.runs)
    for (let i = 1; i <= spec.repeat; i++) planned.push({ spec, repeat: i, dir: path.join(plan.output, spec.label, String(i).padStart(3, '0')) });
  // what an earlier attempt finished is kept (and stored, if the stop came before that)
  const todo: Planned[] = [];
  let skipped = 0;
  for (const p of planned) {
    const meta = readMeta(p.dir);
    if (meta && meta.label === p.spec.label && meta.repeat === p.repeat) {
      if (!catalog.has(meta.run_id)) store(meta, p.dir);
      skipped++;
    } else todo.push(p);
  }
  // PostgreSQL as well: each run as it is stored; a failure there is said, and the campaign goes
  // on (the SQLite catalogue has the run: campaign push sends what is missing)
  let pgc: import('./postgres').PostgresCatalog | undefined;
  let pgMissing = 0;
  if (o.postgres) {
    const { PostgresCatalog } = require('./postgres') as typeof import('./postgres');
    pgc = await PostgresCatalog.open(o.postgres);
  }
  const toPostgres = async (row: Record<string, string | number | null> | undefined) => {
    if (!pgc || !row) return;
    try {
      await pgc.pushRun(catalog, row);
    } catch (err) {
      pgMissing++;
      printError(`campaign: run ${row.label} #${row.repeat} is not in PostgreSQL: ${(err as Error).message}`);
    }
  };
  if (pgc) for (const row of catalog.runRows()) await toPostgres(row);
  const progress = new Progress(o.progressFd, planned.length, skipped);
  let stopping = false;
  const stops = new Set<() => void>();
  const onSignal = () => {
    stopping = true;
    for (const s of stops) s();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const ctx: Omit<RunContext, 'onStarted'> = { campaignDir: plan.output, plan, tracedump: o.tracedump, tshark, host: hostInfo(), stopping: () => stopping };
  let done = 0;
  let stopped: string | undefined;
  try {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (!stopping && !stopped && next < todo.length) {
        const p = todo[next++];
        progress.start(p);
        let stop: (() => void) | undefined;
        try {
          const meta = await runOne({ ...ctx, onStarted: (s) => stops.add((stop = s)) }, p.spec, p.repeat, p.dir);
          store(meta, p.dir);
          await toPostgres(catalog.runRow(meta.run_id));
          done++;
          progress.end(p, meta);
        } catch (err) {
          if (!(err instanceof CampaignStop)) {
            stopped ??= (err as Error).message;
            throw err;
          }
          stopped ??= errorText(err);
        } finally {
          if (stop) stops.delete(stop);
        }
      }
    };
    const workers = Array.from({ length: Math.min(plan.parallel, Math.max(1, todo.length)) }, () => worker());
    const results = await Promise.allSettled(workers);
    for (const r of results) if (r.status === 'rejected') throw r.reason;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    progress.close();
    await pgc?.close();
    catalog.close();
  }
  if (pgMissing) printError(`campaign: ${pgMissing} runs are not in PostgreSQL yet: tracedump campaign push ${plan.output} --to URL sends them`);
  if (stopping && !stopped) stopped = 'the campaign was interrupted';
  return { done, skipped, total: planned.length, ...(stopped ? { stopped } : {}) };
}

/** Runs done / total, the current runs, elapsed and ETA: a status line on a terminal, lines otherwise. */
class Progress {
  private readonly tty: boolean;
  private readonly started = Date.now();
  private readonly current = new Map<string, number>();
  private doneNow = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly fd: number,
    private readonly total: number,
    private readonly before: number,
  ) {
    this.tty = isatty(fd);
    if (before) this.line(`campaign: ${before} of ${total} runs already done: kept`);
    if (this.tty) this.timer = setInterval(() => this.draw(), 1000);
  }

  private write(s: string): void {
    try {
      writeAll(this.fd, s);
    } catch {
      // the progress output is gone: the campaign goes on
    }
  }

  private line(s: string): void {
    this.write(this.tty ? `\r\x1b[K${s}\n` : `${s}\n`);
  }

  private eta(): string {
    const done = this.doneNow;
    const left = this.total - this.before - done;
    if (!done) return '';
    const per = (Date.now() - this.started) / done;
    return `, ETA ${clock((per * left) / 1000)}`;
  }

  private draw(): void {
    const runs = [...this.current.keys()];
    const bytes = runs.reduce((s, d) => s + size(path.join(d, 'capture.pcapng')), 0);
    this.write(
      `\r\x1b[Kcampaign: ${this.before + this.doneNow}/${this.total} done, running ${runs.map((d) => path.relative(path.dirname(path.dirname(d)), d)).join(' ')}; ${(bytes / 1e6).toFixed(1)} MB captured; ${clock((Date.now() - this.started) / 1000)}${this.eta()}`,
    );
  }

  start(p: Planned): void {
    this.current.set(p.dir, Date.now());
    if (!this.tty) this.line(`campaign: run ${p.spec.label} #${p.repeat} started`);
  }

  end(p: Planned, meta: RunMeta): void {
    this.current.delete(p.dir);
    this.doneNow++;
    const c = meta.capture;
    this.line(
      `campaign: run ${p.spec.label} #${p.repeat} ${meta.end_reason} (${meta.end_text || 'no summary'}); ${c ? `${c.packets} packets, ${c.bytes} bytes, ${c.drops} dropped, ${c.sockets} sockets, ${c.processes} processes` : 'no capture'}; ${this.before + this.doneNow}/${this.total} done${this.eta()}`,
    );
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.tty) this.write('\r\x1b[K');
  }
}

function size(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

function clock(sec: number): string {
  const s = Math.round(sec);
  return `${Math.floor(s / 3600)}:${String(Math.floor(s / 60) % 60).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}
