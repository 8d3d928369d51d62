// A campaign's catalogue: its runs, their flows and objects, in one SQLite file in the campaign
// directory (better-sqlite3, major 12: 13 needs Node 22). A run goes in whole, in one
// transaction, keyed by its run id: a run is there once or not at all, whatever stopped the
// campaign. The schema is docs/campaigns.md's.
import type Database from 'better-sqlite3';
import { TracedumpError } from '../errors';
import type { FlowRecord } from '../flows/flow-record';
import type { ObjectRecord } from '../objects/object-record';
import type { Destinations } from '../stats/destinations';
import type { RunMeta } from './meta';

export const CATALOG_FILE = 'catalog.sqlite';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT PRIMARY KEY,
  label TEXT NOT NULL,
  repeat INTEGER NOT NULL,
  dir TEXT NOT NULL,
  plan_hash TEXT NOT NULL,
  command TEXT NOT NULL,
  exe TEXT,
  package TEXT,
  package_version TEXT,
  started TEXT NOT NULL,
  ended TEXT NOT NULL,
  seconds REAL NOT NULL,
  exit_status INTEGER,
  end_reason TEXT NOT NULL,
  packets INTEGER,
  bytes INTEGER,
  drops INTEGER,
  sockets INTEGER,
  processes INTEGER,
  capture_sha256 TEXT,
  meta TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_label ON runs(label, started);
CREATE TABLE IF NOT EXISTS flows (
  run_id TEXT NOT NULL REFERENCES runs(run_id),
  label TEXT NOT NULL,
  ts REAL NOT NULL,
  uid TEXT NOT NULL,
  community_id TEXT,
  orig_h TEXT, orig_p INTEGER, resp_h TEXT, resp_p INTEGER,
  proto TEXT, service TEXT, duration REAL,
  orig_bytes INTEGER, resp_bytes INTEGER, conn_state TEXT, history TEXT,
  orig_pkts INTEGER, orig_ip_bytes INTEGER, resp_pkts INTEGER, resp_ip_bytes INTEGER,
  pid INTEGER, comm TEXT, exe TEXT, app_dir TEXT,
  up_bytes INTEGER, down_bytes INTEGER,
  server_name TEXT, server_name_source TEXT, tls_version TEXT,
  domain TEXT, org TEXT,
  record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS flows_label_ts ON flows(label, ts);
CREATE INDEX IF NOT EXISTS flows_run ON flows(run_id);
CREATE INDEX IF NOT EXISTS flows_label_org ON flows(label, org);
CREATE TABLE IF NOT EXISTS objects (
  run_id TEXT NOT NULL REFERENCES runs(run_id),
  label TEXT NOT NULL,
  ts REAL NOT NULL,
  uid TEXT,
  kind TEXT NOT NULL,
  method TEXT, host TEXT, path TEXT, status INTEGER,
  resp_content_type TEXT, resp_body_bytes INTEGER, resp_body_decoded_bytes INTEGER,
  query TEXT, rcode TEXT, server_name TEXT,
  record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS objects_label_ts ON objects(label, ts);
CREATE INDEX IF NOT EXISTS objects_run ON objects(run_id);
`;

/** The flows table's columns, in order (PostgreSQL's copy has the same). */
export const FLOW_COLUMNS = [
  'run_id', 'label', 'ts', 'uid', 'community_id', 'orig_h', 'orig_p', 'resp_h', 'resp_p', 'proto', 'service', 'duration',
  'orig_bytes', 'resp_bytes', 'conn_state', 'history', 'orig_pkts', 'orig_ip_bytes', 'resp_pkts', 'resp_ip_bytes',
  'pid', 'comm', 'exe', 'app_dir', 'up_bytes', 'down_bytes', 'server_name', 'server_name_source', 'tls_version', 'domain', 'org', 'record',
] as const;
/** The objects table's columns, in order. */
export const OBJECT_COLUMNS = [
  'run_id', 'label', 'ts', 'uid', 'kind', 'method', 'host', 'path', 'status', 'resp_content_type', 'resp_body_bytes',
  'resp_body_decoded_bytes', 'query', 'rcode', 'server_name', 'record',
] as const;

/** The runs table's columns, in order. */
export const RUN_COLUMNS = [
  'run_id', 'label', 'repeat', 'dir', 'plan_hash', 'command', 'exe', 'package', 'package_version', 'started', 'ended', 'seconds',
  'exit_status', 'end_reason', 'packets', 'bytes', 'drops', 'sockets', 'processes', 'capture_sha256', 'meta',
] as const;

const insert = (table: string, cols: readonly string[]) => `INSERT INTO ${table} (${cols.join(', ')}) VALUES (${cols.map((c) => `@${c}`).join(', ')})`;
const value = (v: unknown): string | number | null => (v === undefined || v === null ? null : typeof v === 'number' || typeof v === 'string' ? v : JSON.stringify(v));

export interface RunRow {
  run_id: string;
  label: string;
  repeat: number;
  dir: string;
  started: string;
  seconds: number;
  exit_status: number | null;
  end_reason: string;
  packets: number | null;
  bytes: number | null;
  drops: number | null;
  flows: number;
  objects: number;
}

/**
 * better-sqlite3, whose native part npm builds at install: npm 11 builds it only where it is
 * allowed to run the package's install script (tracedump's package.json allows it; a global
 * install asks for it).
 */
function sqlite(): typeof Database {
  try {
    const D = require('better-sqlite3') as typeof Database;
    new D(':memory:').close(); // loads the native part now: its absence is said here
    return D;
  } catch (err) {
    throw new TracedumpError(`the campaign catalogue needs better-sqlite3's native part, and it cannot be loaded: ${(err as Error).message.split('\n')[0]}`, {
      code: 'ENOSQLITE',
      hint: 'build it where tracedump is installed: npm rebuild better-sqlite3 (npm 11 first: npm install-scripts approve better-sqlite3)',
    });
  }
}

export class Catalog {
  private readonly db: Database.Database;

  constructor(file: string) {
    this.db = new (sqlite())(file);
    // WAL: a reader (campaign ls) never waits for a run being stored; a crash keeps every committed run
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.exec(SCHEMA);
  }

  has(runId: string): boolean {
    return !!this.db.prepare('SELECT 1 FROM runs WHERE run_id = ?').get(runId);
  }

  /** One run with its flows and objects, in one transaction (again: nothing changes). */
  addRun(meta: RunMeta, flows: FlowRecord[], objects: ObjectRecord[], destinations: Destinations): void {
    const run = this.db.prepare(insert('runs', RUN_COLUMNS));
    const flow = this.db.prepare(insert('flows', FLOW_COLUMNS));
    const object = this.db.prepare(insert('objects', OBJECT_COLUMNS));
    this.db.transaction(() => {
      if (this.has(meta.run_id)) return;
      run.run({
        run_id: meta.run_id,
        label: meta.label,
        repeat: meta.repeat,
        dir: meta.dir,
        plan_hash: meta.plan_hash,
        command: JSON.stringify(meta.command),
        exe: meta.exe,
        package: meta.package,
        package_version: meta.package_version,
        started: meta.started,
        ended: meta.ended,
        seconds: meta.seconds,
        exit_status: meta.exit_status,
        end_reason: meta.end_reason,
        packets: meta.capture?.packets ?? null,
        bytes: meta.capture?.bytes ?? null,
        drops: meta.capture?.drops ?? null,
        sockets: meta.capture?.sockets ?? null,
        processes: meta.capture?.processes ?? null,
        capture_sha256: meta.files['capture.pcapng'] ?? null,
        meta: JSON.stringify(meta),
      });
      for (const f of flows) {
        const d = destinations.of(f.server_name as string | undefined, f.dns_chain as string[] | undefined, String(f.app_dir === 'resp' ? f['id.orig_h'] : f['id.resp_h']));
        const row: Record<string, string | number | null> = { run_id: meta.run_id, label: meta.label, record: JSON.stringify(f), domain: d.domain, org: d.org ?? null };
        for (const c of FLOW_COLUMNS) if (!(c in row)) row[c] = value(f[c.replace(/^(orig|resp)_(h|p)$/, 'id.$1_$2')]);
        flow.run(row);
      }
      for (const o of objects) {
        const row: Record<string, string | number | null> = { run_id: meta.run_id, label: meta.label, record: JSON.stringify(o) };
        for (const c of OBJECT_COLUMNS) if (!(c in row)) row[c] = value(o[c]);
        object.run(row);
      }
    })();
  }

  runs(labels?: string[]): RunRow[] {
    const where = labels?.length ? `WHERE r.label IN (${labels.map(() => '?').join(', ')})` : '';
    return this.db
      .prepare(
        `SELECT r.run_id, r.label, r.repeat, r.dir, r.started, r.seconds, r.exit_status, r.end_reason, r.packets, r.bytes, r.drops,
           (SELECT count(*) FROM flows f WHERE f.run_id = r.run_id) AS flows,
           (SELECT count(*) FROM objects o WHERE o.run_id = r.run_id) AS objects
         FROM runs r ${where} ORDER BY r.label, r.repeat`,
      )
      .all(...(labels ?? [])) as RunRow[];
  }

  /** A run's meta.json as stored, by its id or a unique prefix of it. */
  run(idPrefix: string): { meta: RunMeta } | undefined {
    const rows = this.db.prepare("SELECT meta FROM runs WHERE run_id LIKE ? || '%'").all(idPrefix) as { meta: string }[];
    return rows.length === 1 ? { meta: JSON.parse(rows[0].meta) as RunMeta } : undefined;
  }

  /** The records of a table for some labels (all: every label), in time order. */
  *records(table: 'flows' | 'objects', labels: string[]): IterableIterator<Record<string, unknown>> {
    const where = labels.length ? `WHERE label IN (${labels.map(() => '?').join(', ')})` : '';
    for (const row of this.db.prepare(`SELECT run_id, label, record FROM ${table} ${where} ORDER BY label, ts`).iterate(...labels) as IterableIterator<{ run_id: string; label: string; record: string }>)
      yield { run_id: row.run_id, label: row.label, ...(JSON.parse(row.record) as Record<string, unknown>) };
  }

  /** One run's row as stored. */
  runRow(runId: string): Record<string, string | number | null> | undefined {
    return this.db.prepare(`SELECT ${RUN_COLUMNS.join(', ')} FROM runs WHERE run_id = ?`).get(runId) as Record<string, string | number | null> | undefined;
  }

  /** Every run's row as stored (for a push elsewhere), in label and repeat order. */
  runRows(): Record<string, string | number | null>[] {
    return this.db.prepare(`SELECT ${RUN_COLUMNS.join(', ')} FROM runs ORDER BY label, repeat`).all() as Record<string, string | number | null>[];
  }

  /** A run's flow or object rows as stored, column values in the table's order. */
  *rowsOf(table: 'flows' | 'objects', runId: string): IterableIterator<Array<string | number | null>> {
    const cols = table === 'flows' ? FLOW_COLUMNS : OBJECT_COLUMNS;
    yield* this.db.prepare(`SELECT ${cols.join(', ')} FROM ${table} WHERE run_id = ?`).raw().iterate(runId) as IterableIterator<Array<string | number | null>>;
  }

  close(): void {
    this.db.close();
  }
}
