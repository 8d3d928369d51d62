// A campaign's catalogue in PostgreSQL, for a group whose campaigns outgrow one machine: the
// SQLite catalogue's tables, filled with COPY, one transaction per run, keyed by run id. A run
// is there once: pushing twice, or from two machines at once, stores it once (a lock per run id
// decides who does); a push cut off (the connection lost) left nothing of the run it was
// storing, and pushing again stores what is missing. Captures stay files (the run's dir and
// capture sha256 say which).
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { TracedumpError } from '../errors';
import { type Catalog, FLOW_COLUMNS, OBJECT_COLUMNS, RUN_COLUMNS } from './catalog';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT PRIMARY KEY, label TEXT NOT NULL, repeat INTEGER NOT NULL, dir TEXT NOT NULL,
  plan_hash TEXT NOT NULL, command JSONB NOT NULL, exe TEXT, package TEXT, package_version TEXT,
  started TIMESTAMPTZ NOT NULL, ended TIMESTAMPTZ NOT NULL, seconds DOUBLE PRECISION NOT NULL,
  exit_status INTEGER, end_reason TEXT NOT NULL, packets BIGINT, bytes BIGINT, drops BIGINT,
  sockets INTEGER, processes INTEGER, capture_sha256 TEXT, meta JSONB NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_label ON runs(label, started);
CREATE TABLE IF NOT EXISTS flows (
  run_id TEXT NOT NULL REFERENCES runs(run_id), label TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL,
  uid TEXT NOT NULL, community_id TEXT, orig_h TEXT, orig_p INTEGER, resp_h TEXT, resp_p INTEGER,
  proto TEXT, service TEXT, duration DOUBLE PRECISION, orig_bytes BIGINT, resp_bytes BIGINT,
  conn_state TEXT, history TEXT, orig_pkts BIGINT, orig_ip_bytes BIGINT, resp_pkts BIGINT,
  resp_ip_bytes BIGINT, pid INTEGER, comm TEXT, exe TEXT, app_dir TEXT, up_bytes BIGINT,
  down_bytes BIGINT, server_name TEXT, server_name_source TEXT, tls_version TEXT, domain TEXT,
  org TEXT, record JSONB NOT NULL
);
CREATE INDEX IF NOT EXISTS flows_label_ts ON flows(label, ts);
CREATE INDEX IF NOT EXISTS flows_run ON flows(run_id);
CREATE INDEX IF NOT EXISTS flows_label_org ON flows(label, org);
CREATE TABLE IF NOT EXISTS objects (
  run_id TEXT NOT NULL REFERENCES runs(run_id), label TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL,
  uid TEXT, kind TEXT NOT NULL, method TEXT, host TEXT, path TEXT, status INTEGER,
  resp_content_type TEXT, resp_body_bytes BIGINT, resp_body_decoded_bytes BIGINT, query TEXT,
  rcode TEXT, server_name TEXT, record JSONB NOT NULL
);
CREATE INDEX IF NOT EXISTS objects_label_ts ON objects(label, ts);
CREATE INDEX IF NOT EXISTS objects_run ON objects(run_id);
`;

/** Advisory lock keys: the schema's, and (hashed) each run id's. */
const SCHEMA_LOCK = 0x74726163; // "trac"

/** A CSV field for COPY: NULL unquoted and empty, text quoted (a quote doubled). */
function csvField(v: string | number | null): string {
  if (v === null) return '';
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : '';
  return `"${v.replace(/"/g, '""')}"`;
}

function* csvLines(rows: Iterable<Array<string | number | null>>): Generator<string> {
  for (const row of rows) yield `${row.map(csvField).join(',')}\n`;
}

export class PostgresCatalog {
  private constructor(private readonly client: pg.Client) {}

  static async open(url: string): Promise<PostgresCatalog> {
    const client = new pg.Client({ connectionString: url, application_name: 'tracedump campaign' });
    client.on('error', () => undefined); // a cut connection fails the query in flight: said there
    try {
      await client.connect();
    } catch (err) {
      throw new TracedumpError(`cannot connect to ${redact(url)}: ${(err as Error).message}`, { code: 'EPG', hint: 'check the URL (postgres://USER@HOST:PORT/DB), that the server runs, and its pg_hba.conf' });
    }
    const c = new PostgresCatalog(client);
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK]); // two first pushes at once: one makes the tables
      await client.query(SCHEMA);
      await client.query('COMMIT');
    } catch (err) {
      await c.close();
      throw pgError(err, url, 'make the schema');
    }
    return c;
  }

  /** Stores one run of a SQLite catalogue, unless it is there already; true when stored now. */
  async pushRun(catalog: Catalog, run: Record<string, string | number | null>): Promise<boolean> {
    const runId = String(run.run_id);
    const q = this.client;
    await q.query('BEGIN');
    try {
      // whoever takes the run's lock first stores it; the other then finds it there
      await q.query('SELECT pg_advisory_xact_lock(hashtext($1))', [runId]);
      const there = await q.query('SELECT 1 FROM runs WHERE run_id = $1', [runId]);
      if (there.rowCount) {
        await q.query('COMMIT');
        return false;
      }
      await q.query(`INSERT INTO runs (${RUN_COLUMNS.join(', ')}) VALUES (${RUN_COLUMNS.map((_, i) => `$${i + 1}`).join(', ')})`, RUN_COLUMNS.map((c) => run[c]));
      for (const [table, cols] of [
        ['flows', FLOW_COLUMNS],
        ['objects', OBJECT_COLUMNS],
      ] as const) {
        const copy = q.query(copyFrom(`COPY ${table} (${cols.join(', ')}) FROM STDIN WITH (FORMAT csv)`));
        await pipeline(Readable.from(csvLines(catalog.rowsOf(table, runId))), copy);
      }
      await q.query('COMMIT');
      return true;
    } catch (err) {
      await q.query('ROLLBACK').catch(() => undefined);
      throw pgError(err, undefined, `store run ${run.label} #${run.repeat}`);
    }
  }

  async close(): Promise<void> {
    await this.client.end().catch(() => undefined);
  }
}

export interface PushResult {
  pushed: number;
  already: number;
}

/** Every run of a SQLite catalogue into PostgreSQL (those there already are left as they are). */
export async function pushCatalog(catalog: Catalog, url: string, onRun?: (run: Record<string, string | number | null>, pushed: boolean) => void): Promise<PushResult> {
  const pgc = await PostgresCatalog.open(url);
  const result: PushResult = { pushed: 0, already: 0 };
  try {
    for (const run of catalog.runRows()) {
      const pushed = await pgc.pushRun(catalog, run);
      if (pushed) result.pushed++;
      else result.already++;
      onRun?.(run, pushed);
    }
  } finally {
    await pgc.close();
  }
  return result;
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}

function pgError(err: unknown, url: string | undefined, what: string): TracedumpError {
  if (err instanceof TracedumpError) return err;
  const e = err as Error & { code?: string };
  const lost = /terminat|Connection terminated|ECONNRESET|EPIPE|57P01|08006|08003/.test(`${e.code ?? ''} ${e.message}`);
  return new TracedumpError(`PostgreSQL${url ? ` (${redact(url)})` : ''}: cannot ${what}: ${e.message}`, {
    code: e.code ?? 'EPG',
    hint: lost ? 'the connection was lost: push again; the runs stored are kept, the one cut off is stored again whole' : undefined,
  });
}
