// `tracedump stats` on crafted captures whose flows have sizes and durations drawn from known
// distributions (log-normal up, Pareto down, in one file; exponential both ways in another):
//  - every quantile equals the one computed here from the sizes written (type 7), per file
//    (each file its own application, named by the file);
//  - the best-fitting family is the one the sizes were drawn from, with its parameters near
//    the true ones;
//  - --window: the windows' bytes up and down sum to the flows' IP bytes (tracedump flows);
//  - --model writes the model, --compare of a model with itself finds no difference and of the
//    two files a large one;
//  - bad input: no capture in a directory, an unreadable model, a bad --window.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { A, F, P, S, TcpConversation, type Crafted, writeCraftedPcap } from './helpers/craft-pcap';
import { CLI } from './helpers/tracedump';

// xorshift32: the same draws on every run
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return (x + 0.5) / 0x100000000;
  };
}

function normal(u: () => number): number {
  return Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
}

interface Drawn {
  up: number[];
  down: number[];
  duration: number[];
}

/** n flows: a handshake, `up` bytes from the client, `down` from the server, FINs; lasting `duration` s. */
function craft(file: string, n: number, draw: (u: () => number) => [number, number, number], seed: number): Drawn {
  const u = rng(seed);
  const packets: Crafted[] = [];
  const drawn: Drawn = { up: [], down: [], duration: [] };
  for (let i = 0; i < n; i++) {
    const [up, down, duration] = draw(u);
    drawn.up.push(up);
    drawn.down.push(down);
    drawn.duration.push(duration);
    const t0 = i * 2; // 2 s apart: every flow ends (its close delay) before the next starts
    const c = new TcpConversation(['10.0.0.1', 20000 + i], [`198.18.0.${1 + (i % 200)}`, 80]);
    c.send(t0, 'c', S).send(t0 + 1e-6, 's', S | A).send(t0 + 2e-6, 'c', A);
    for (let left = up; left > 0; left -= Math.min(left, 1400)) c.send(t0 + 3e-6, 'c', P | A, Math.min(left, 1400));
    for (let left = down; left > 0; left -= Math.min(left, 1400)) c.send(t0 + 4e-6, 's', P | A, Math.min(left, 1400));
    // the last FIN ends it (Zeek: later packets do not lengthen a closed connection)
    c.send(t0 + duration - 1e-6, 'c', F | A).send(t0 + duration, 's', F | A).send(t0 + duration + 1e-6, 'c', A);
    packets.push(...c.packets);
  }
  writeCraftedPcap(file, packets);
  return drawn;
}

/** Type 7 percentile, written out again here. */
function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  const h = (s.length - 1) * (p / 100);
  const lo = Math.floor(h);
  return s[lo] + (h - lo) * (s[Math.min(lo + 1, s.length - 1)] - s[lo]);
}

function stats(args: string[]): { status: number | null; stdout: string; stderr: string; rows: Record<string, unknown>[] } {
  const r = spawnSync(CLI, ['stats', ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const rows = args.includes('--json')
    ? r.stdout
        .split('\n')
        .filter((l) => l)
        .map((l) => JSON.parse(l))
    : [];
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, rows };
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tracedump-stats-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const runs = path.join(dir, 'runs');
fs.mkdirSync(runs);
// durations: multiples of 1 µs (the pcap's resolution), from 10 ms to 1 s
const usec = (s: number) => Math.round(s * 1e6) / 1e6;
const heavy = craft(
  path.join(runs, 'heavy.pcap'),
  300,
  (u) => [Math.round(Math.exp(6 + 0.8 * normal(u))), Math.round(1000 / u() ** (1 / 1.5)), usec(0.01 + u() * 0.99)],
  7,
);
const light = craft(path.join(runs, 'light.pcap'), 200, (u) => [1 + Math.round(-300 * Math.log(u())), 1 + Math.round(-2000 * Math.log(u())), usec(0.01 + u() * 0.2)], 11);

t.test('quantiles and fits of two captures, each its own application', async (t) => {
  const r = stats(['--json', runs]);
  t.equal(r.status, 0, `exit 0 (${r.stderr})`);
  for (const [app, drawn] of [
    ['heavy', heavy],
    ['light', light],
  ] as const) {
    for (const [metric, values] of [
      ['flow_bytes_up', drawn.up],
      ['flow_bytes_down', drawn.down],
      ['flow_duration', drawn.duration],
    ] as const) {
      const row = r.rows.find((x) => x.app === app && x.metric === metric);
      const expected = [values.length, Math.min(...values), ...[5, 25, 50, 75, 95, 99].map((p) => percentile(values, p)), Math.max(...values)];
      const got = row ? ['count', 'min', 'p5', 'p25', 'p50', 'p75', 'p95', 'p99', 'max'].map((f) => row[f] as number) : [];
      t.ok(
        got.length === expected.length && got.every((g, i) => Math.abs(g - expected[i]) <= 1e-6 * Math.max(1, Math.abs(expected[i]))),
        `${app} ${metric}: count, min, p5..p99, max as drawn (${expected.map((x) => +x.toPrecision(6)).join(' ')})`,
      );
      const mean = values.reduce((a, b) => a + b, 0) / values.length;
      t.ok(row && Math.abs((row.mean as number) - mean) <= 1e-6 * mean, `${app} ${metric}: the mean`);
    }
  }
  const m = path.join(dir, 'model.json');
  t.equal(stats(['--model', m, path.join(runs, 'heavy.pcap')]).status, 0, '--model');
  const model = JSON.parse(fs.readFileSync(m, 'utf8'));
  const metrics = model.apps.heavy.groups[0].metrics;
  const up = metrics.flow_bytes_up.fits[0];
  t.equal(up.family, 'lognormal', 'sizes up: log-normal fits best');
  t.ok(Math.abs(up.params.mu - 6) < 0.15 && Math.abs(up.params.sigma - 0.8) < 0.1, `near mu 6, sigma 0.8 (${up.params.mu.toFixed(3)}, ${up.params.sigma.toFixed(3)})`);
  const down = metrics.flow_bytes_down.fits[0];
  t.equal(down.family, 'pareto', 'sizes down: Pareto fits best');
  t.ok(Math.abs(down.params.alpha - 1.5) < 0.3, `alpha near 1.5 (${down.params.alpha.toFixed(3)})`);
  t.equal(metrics.flow_bytes_up.quantiles.length, 101, 'a quantile table of percentiles 0..100');
  const h = metrics.flow_bytes_down.histogram;
  t.same([h.edges.length, h.counts.reduce((a: number, b: number) => a + b, 0) + h.zeros], [h.counts.length + 1, 300], 'a histogram: its edges, every flow in a bin');
});

t.test('--window sums equal the flows', async (t) => {
  const file = path.join(runs, 'heavy.pcap');
  const r = stats(['--json', '--window', '10s', file]);
  t.equal(r.status, 0, 'exit 0');
  t.ok(r.rows.length >= 60, `a row per 10 s window (${r.rows.length})`);
  const fl = spawnSync(CLI, ['flows', '--json', file], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const flows = fl.stdout
    .split('\n')
    .filter((l) => l)
    .map((l) => JSON.parse(l));
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  t.same(
    [sum(r.rows.map((x) => x.up_bytes as number)), sum(r.rows.map((x) => x.down_bytes as number))],
    [sum(flows.map((f) => f.orig_ip_bytes)), sum(flows.map((f) => f.resp_ip_bytes))],
    'bytes up and down over the windows = the flows\' IP bytes each way',
  );
});

t.test('--compare: a model against itself, and against another', async (t) => {
  const a = path.join(dir, 'a.json');
  const b = path.join(dir, 'b.json');
  t.equal(stats(['--model', a, '--app', 'command', path.join(runs, 'heavy.pcap')]).status, 0);
  t.equal(stats(['--model', b, path.join(runs, 'light.pcap')]).status, 0);
  const same = stats(['--json', '--compare', a, a]);
  t.equal(same.status, 0, 'exit 0');
  t.ok(same.rows.length > 0 && same.rows.every((x) => x.ks === 0), 'against itself: every distance 0');
  // name both apps the same to compare them metric by metric
  const bm = JSON.parse(fs.readFileSync(b, 'utf8'));
  bm.apps = { heavy: bm.apps.light };
  fs.writeFileSync(b, JSON.stringify(bm));
  const diff = stats(['--json', '--compare', a, b]);
  const up = diff.rows.find((x) => x.metric === 'flow_bytes_down');
  t.ok(up && (up.ks as number) > 0.3, `heavy against light: sizes down far apart (D=${up?.ks})`);
  t.same([up?.count_a, up?.count_b], [300, 200], 'with both counts');
});

t.test('bad input is said, with what to do', async (t) => {
  const empty = path.join(dir, 'empty');
  fs.mkdirSync(empty);
  const none = stats([empty]);
  t.equal(none.status, 2, 'no capture: exit 2');
  t.match(none.stderr, /no capture file/, 'says so');
  const junk = path.join(dir, 'junk.json');
  fs.writeFileSync(junk, '{"x": 1}');
  const bad = stats(['--compare', junk, junk]);
  t.equal(bad.status, 2, 'not a model: exit 2');
  t.match(bad.stderr, /is not a tracedump model\n\s+make one with: tracedump stats --model/, 'names the file and the fix');
  const w = stats(['--window', '0s', runs]);
  t.equal(w.status, 2, 'a bad --window: exit 2');
  t.match(w.stderr, /--window must be a duration above 0/, 'says what a window is');
  const m = path.join(dir, 'kept.json');
  fs.writeFileSync(m, 'the user\'s file');
  const notCapture = path.join(dir, 'not.pcap');
  fs.writeFileSync(notCapture, 'not a capture');
  const failed = stats(['--model', m, notCapture]);
  t.equal(failed.status, 2, 'not a capture: exit 2');
  t.equal(fs.readFileSync(m, 'utf8'), "the user's file", 'and the model file named is left as it was');
});
