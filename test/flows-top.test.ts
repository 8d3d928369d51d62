// --top: the live table on a terminal (a pseudo-terminal from script(1)), while the capture is
// written and when attached; keys switch the view; its figures agree with the file's flows. And
// the table's rows, rates and layout as pure functions.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { processRows, renderTop, withRates, type TopRow } from '../src/flows/top';
import { FLOWS, PY, noLeftovers, startBg, startServer, workDir } from './helpers/capture';
import { CLI } from './helpers/tracedump';

/** Runs a shell line in a pseudo-terminal of 140×40; `keys` are typed after `afterMs`. */
function inTerminal(t: Test, line: string, o: { keys?: string; afterMs?: number; timeoutMs?: number } = {}): Promise<{ status: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn('script', ['-qefc', `stty cols 140 rows 40; ${line}`, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('latin1')));
    child.stderr.on('data', (c: Buffer) => (out += c.toString('latin1')));
    if (o.keys) setTimeout(() => child.stdin.write(o.keys), o.afterMs ?? 1500);
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 60_000);
    t.teardown(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, out });
    });
  });
}

/** The screens drawn (each begins by going home and clearing), without escape sequences. */
function screens(out: string): string[] {
  return out
    .split('\x1b[H\x1b[2J')
    .slice(1)
    .map((s) => s.replace(/\x1b\[[0-9;?]*[a-zA-Z]/g, ''));
}

t.test('the rows: processes summed with their ended flows, rates, the layout', async (t) => {
  const row = (id: string, pid: number, up: number, down: number): TopRow => ({
    id,
    pid,
    comm: `c${pid}`,
    proto: 'tcp',
    local: '127.0.0.1:1',
    remote: 'example.org (192.0.2.1:443)',
    state: 'S1',
    upBytes: up,
    downBytes: down,
    upPkts: 1,
    downPkts: 2,
    flows: 1,
    rate: 0,
  });
  const ended = new Map([[7, { ...row('ended 7', 7, 1000, 2000), flows: 3 }]]);
  const procs = processRows([row('a', 7, 10, 20), row('b', 8, 5, 5)], ended);
  t.same(
    procs.map((p) => [p.pid, p.flows, p.upBytes, p.downBytes]),
    [
      [7, 4, 1010, 2020],
      [8, 1, 5, 5],
    ],
    'per process: open and ended flows together',
  );
  const last = new Map([['a', 30]]);
  const rated = withRates([row('a', 7, 100, 30)], last, 2);
  t.equal(rated[0].rate, 50, '(130 - 30) bytes in 2 s: 50 B/s');
  t.equal(last.get('a'), 130, 'the totals kept for the next refresh');
  const text = renderTop({ view: 'flows', sort: 'rate', rows: [row('x', 1, 1, 1), { ...row('y', 2, 5000, 0), rate: 2048 }], counts: { written: 10, undecided: 1, other: 2, drops: 0 }, width: 140, height: 10, keys: true, elapsedSec: 3 });
  const lines = text.split('\n');
  t.match(lines[1], /packets written 10, not yet judged or left out 1, not TCP\/UDP\/ICMP 2, dropped by the kernel 0/, 'the counts line');
  t.match(lines[2], /PID\s+COMMAND\s+PROTO\s+LOCAL\s+REMOTE\s+STATE\s+SENT\s+RECEIVED\s+PACKETS\s+RATE/, 'the titles');
  t.match(lines[3], /^\s+2 c2 .*example\.org \(192\.0\.2\.1:443\).*2\.0 KiB\/s$/, 'the fastest first, with its server name');
  t.ok(lines.every((l) => l.length <= 140), 'nothing wider than the terminal');
});

t.test('--top while writing the file: the program, its flows, its server names', async (t) => {
  const dir = workDir(t);
  const server = await startServer(t, ['serve-tcp', '127.0.0.1', 0]);
  const out = path.join(dir, 'out.pcapng');
  // the command's stdin is off the terminal: keys are read ('v': the processes view)
  const r = await inTerminal(
    t,
    `${CLI} -w ${out} --top -- sh -c 'for i in 1 2 3 4 5 6; do ${PY} ${FLOWS} tcp-get 127.0.0.1 ${server.port} 3 >/dev/null; sleep 0.5; done' < /dev/null`,
    { keys: 'v', afterMs: 2500 },
  );
  t.equal(r.status, 0, `tracedump and the command ended well (${r.out.slice(-300)})`);
  const shown = screens(r.out);
  t.ok(shown.length >= 3, `the table was drawn ${shown.length} times (once a second and on a key)`);
  const flowsView = shown.find((s) => /tracedump --top {3}flows/.test(s) && /python3/.test(s));
  t.ok(flowsView, 'a flows view with the program in it');
  t.match(flowsView ?? '', new RegExp(`127\\.0\\.0\\.1:${server.port}`), "the server's end");
  t.match(flowsView ?? '', /keys: v flows\/processes/, 'keys are offered');
  const procView = shown.find((s) => /tracedump --top {3}processes/.test(s));
  t.ok(procView, "after 'v', the processes view");
  t.match(procView ?? '', /PID\s+COMMAND\s+FLOWS\s+SENT\s+RECEIVED/, 'with its titles');
  t.match(r.out, /tracedump: \d+ packets .* written to/, 'the summary after the table, on the normal screen');
  const fl = spawnSync(CLI, ['flows', '--json', out], { encoding: 'utf8' });
  t.equal(fl.stdout.split('\n').filter((l) => l).length, 18, 'the file holds the 18 connections the table showed');
});

t.test('--top attached: the table of a running program; it runs on', async (t) => {
  const dir = workDir(t);
  const server = await startServer(t, ['serve-tcp', '127.0.0.1', 0]);
  const loop = path.join(dir, 'loop.sh');
  fs.writeFileSync(loop, `while :; do ${PY} ${FLOWS} tcp-get 127.0.0.1 ${server.port} 1 >/dev/null; sleep 0.2; done\n`);
  const prog = startBg(t, ['sh', loop]);
  const r = await inTerminal(t, `${CLI} -w ${path.join(dir, 'a.pcapng')} --top -p ${prog.pid} --duration 3`, { keys: 'p', afterMs: 1500 });
  t.equal(r.status, 0, `tracedump detached after 3 s (${r.out.slice(-300)})`);
  const shown = screens(r.out);
  t.ok(shown.some((s) => /python3/.test(s)), 'the attached program’s children are in the table');
  t.ok(shown.some((s) => /by pid/.test(s)), "'p' sorted by pid: keys are read when attached");
  t.equal(spawnSync('kill', ['-0', String(prog.pid)]).status, 0, 'the program runs on');
});

t.test('--top refused where it cannot draw', async (t) => {
  const noTerminal = spawnSync(CLI, ['-w', '/tmp/x.pcapng', '--top', '--', 'true'], { encoding: 'utf8' });
  t.equal(noTerminal.status, 125, 'stderr not a terminal: 125');
  t.match(noTerminal.stderr, /--top draws a table on a terminal, and stderr is not one/, 'said');
  t.match(noTerminal.stderr, /--flows FILE/, 'with what to do instead');
});

noLeftovers(t);
