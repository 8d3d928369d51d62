// A campaign's catalogue in a real PostgreSQL server (Debian's, a cluster of the test's own):
//  - two pushes of the same campaign at once: each run stored once, with all its flows and
//    objects (the counts of the SQLite catalogue);
//  - a push cut off in the middle (its connection killed while it waits on the second run) fails
//    saying so; pushed again, it completes: each run once;
//  - `campaign run --catalog URL` stores each run there as it ends.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import Database from 'better-sqlite3';
import { noLeftovers, sleep, startBg, workDir } from './helpers/capture';
import { postgresBin, startPostgres } from './helpers/postgres';
import { CLI } from './helpers/tracedump';

const SERVER = `
const http = require('http');
const s = http.createServer((req, res) => res.end('hello ' + req.url + '\\n'));
s.listen(0, '127.0.0.1', () => console.log('ready ' + s.address().port));
`;

function sqliteCounts(dir: string): { runs: number; flows: number; objects: number; ids: string[] } {
  const db = new Database(path.join(dir, 'catalog.sqlite'), { readonly: true });
  try {
    const n = (q: string) => (db.prepare(q).get() as { n: number }).n;
    return {
      runs: n('SELECT count(*) AS n FROM runs'),
      flows: n('SELECT count(*) AS n FROM flows'),
      objects: n('SELECT count(*) AS n FROM objects'),
      ids: (db.prepare('SELECT run_id FROM runs ORDER BY label, repeat').all() as { run_id: string }[]).map((r) => r.run_id),
    };
  } finally {
    db.close();
  }
}

function run(args: string[]): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(CLI, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (status) => resolve({ status, stderr }));
  });
}

t.test('PostgreSQL: two pushes at once, a push cut off and pushed again, --catalog', { skip: !postgresBin() && !process.env.CI ? 'PostgreSQL is not installed (apt-get install postgresql)' : false }, async (t) => {
  const pg = await startPostgres(t);
  const dir = workDir(t, 'campaign-pg');
  fs.writeFileSync(path.join(dir, 'server.js'), SERVER);
  const web = startBg(t, [process.execPath, path.join(dir, 'server.js')], { env: { NODE_OPTIONS: '' } });
  const [, port] = await web.waitFor(/^ready (\d+)$/m);
  const planFile = path.join(dir, 'pg.yaml');
  fs.writeFileSync(
    planFile,
    `defaults: { repeat: 3, duration: 20s }
runs:
  - label: one
    command: [curl, -s, -o, /dev/null, "http://127.0.0.1:${port}/one"]
  - label: two
    command: curl -s -o /dev/null http://127.0.0.1:${port}/two http://127.0.0.1:${port}/three
`,
  );
  const made = spawnSync(CLI, ['campaign', 'run', planFile], { encoding: 'utf8' });
  t.equal(made.status, 0, `the campaign ran (${made.stderr.slice(-300)})`);
  const out = path.join(dir, 'pg.campaign');
  const local = sqliteCounts(out);
  t.ok(local.runs === 6 && local.flows >= 6 && local.objects >= 6, `the campaign: ${local.runs} runs, ${local.flows} flows, ${local.objects} objects`);

  // 1. two pushes at once into a fresh database
  pg.sql('CREATE DATABASE twice');
  const [a, b] = await Promise.all([run(['campaign', 'push', out, '--to', pg.url('twice')]), run(['campaign', 'push', out, '--to', pg.url('twice')])]);
  t.same([a.status, b.status], [0, 0], `both pushes succeed (${a.stderr.slice(-200)} | ${b.stderr.slice(-200)})`);
  const stored = (s: string) => Number(/(\d+) runs stored/.exec(s)?.[1] ?? NaN);
  t.equal(stored(a.stderr) + stored(b.stderr), 6, `between them, each run stored once (${stored(a.stderr)} + ${stored(b.stderr)})`);
  t.same(
    [pg.sql('SELECT count(*) FROM runs', 'twice'), pg.sql('SELECT count(*) FROM flows', 'twice'), pg.sql('SELECT count(*) FROM objects', 'twice')].map(Number),
    [local.runs, local.flows, local.objects],
    'PostgreSQL holds every run, flow and object once',
  );
  t.equal(pg.sql("SELECT count(DISTINCT label) FROM flows WHERE org IS NULL AND domain = '127.0.0.1'", 'twice'), '2', 'with their labels and destinations');
  const again = await run(['campaign', 'push', out, '--to', pg.url('twice')]);
  t.match(again.stderr, /0 runs stored, 6 there already/, 'pushed once more: nothing stored twice');

  // 2. a push cut off in the middle, then pushed again
  pg.sql('CREATE DATABASE cut');
  // the push waits on the second run's lock, held here, and is cut off there
  const holder = spawn('psql', ['-X', '-q', '-d', pg.url('cut'), '-c', `SELECT pg_advisory_lock(hashtext('${local.ids[1]}')); SELECT pg_sleep(60);`], { stdio: 'ignore' });
  await sleep(500);
  const cutPush = run(['campaign', 'push', out, '--to', pg.url('cut')]);
  let waiting = '0';
  for (let i = 0; i < 100 && waiting === '0'; i++) {
    await sleep(100);
    waiting = pg.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tracedump campaign' AND wait_event_type = 'Lock'");
  }
  t.equal(waiting, '1', 'the push waits on the second run');
  pg.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'tracedump campaign'");
  const cut = await cutPush;
  t.not(cut.status, 0, 'the push cut off fails');
  t.match(cut.stderr, /push again/, `and says to push again (${cut.stderr.trim().split('\n').slice(-2).join(' / ')})`);
  t.equal(pg.sql('SELECT count(*) FROM runs', 'cut'), '1', 'the run stored before the cut is there; the one cut off is not');
  holder.kill('SIGKILL');
  pg.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'psql' AND pid <> pg_backend_pid()");
  const retry = await run(['campaign', 'push', out, '--to', pg.url('cut')]);
  t.equal(retry.status, 0, `pushed again, it completes (${retry.stderr.slice(-200)})`);
  t.match(retry.stderr, /5 runs stored, 1 there already/, 'the rest stored, the first kept');
  t.same([pg.sql('SELECT count(*) FROM runs', 'cut'), pg.sql('SELECT count(*) FROM flows', 'cut')].map(Number), [local.runs, local.flows], 'each run once, with its flows');

  // 3. campaign run --catalog: each run there as it ends
  pg.sql('CREATE DATABASE live');
  const liveOut = path.join(dir, 'live.campaign');
  const live = spawnSync(CLI, ['campaign', 'run', planFile, '-o', liveOut, '--catalog', pg.url('live')], { encoding: 'utf8' });
  t.equal(live.status, 0, `campaign run --catalog (${live.stderr.slice(-200)})`);
  t.equal(pg.sql('SELECT count(*) FROM runs', 'live'), '6', 'its six runs are in PostgreSQL');
  t.equal(pg.sql("SELECT string_agg(DISTINCT label, ',' ORDER BY label) FROM flows", 'live'), 'one,two', 'with their flows, by label');
});

noLeftovers(t);
