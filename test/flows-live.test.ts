// `-w FILE --flows FLOWS`: the flow records written while the capture runs equal those
// `tracedump flows` makes from the capture file of the same run; a flow whose packets stop ends
// by the clock while the program still runs; a run that fails before the program starts leaves
// an existing FLOWS file as it was.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { FLOWS, PY, captureScenario, noLeftovers, runTracedump, workDir } from './helpers/capture';
import { CLI } from './helpers/tracedump';

const lines = (text: string) => text.split('\n').filter((l) => l);

t.test('the live records equal `tracedump flows` on the file of the same run', async (t) => {
  const sc = await captureScenario(t, {
    file: 'out.pcapng',
    servers: [
      ['serve-tcp', '127.0.0.1', 0],
      ['serve-udp', '127.0.0.1', 0],
    ],
    tdArgs: (_, dir) => ['--flows', path.join(dir, 'out.flows.jsonl')],
    command: ([tcp, udp]) => [
      'sh',
      '-c',
      `${PY} ${FLOWS} tcp-get 127.0.0.1 ${tcp} 30 && ${PY} ${FLOWS} udp-query 127.0.0.1 ${udp} 20 fresh && ${PY} ${FLOWS} udp-query 127.0.0.1 ${udp} 10 long && curl -s --max-time 5 http://127.0.0.1:${tcp}/curl`,
    ],
  });
  t.equal(sc.run.status, 0, `the programs succeeded (${sc.run.stderr.slice(-300)})`);
  const live = lines(fs.readFileSync(path.join(sc.dir, 'out.flows.jsonl'), 'utf8'));
  const after = spawnSync(CLI, ['flows', '--json', sc.out], { encoding: 'utf8' });
  t.equal(after.status, 0, `tracedump flows reads the file (${after.stderr})`);
  const offline = lines(after.stdout);
  t.equal(live.length, 30 + 20 + 1 + 1, 'one live record per connection and UDP socket');
  t.same([...live].sort(), [...offline].sort(), 'the same records, byte for byte');
  const recs = live.map((l) => JSON.parse(l));
  t.ok(
    recs.every((r) => typeof r.pid === 'number' && r.app_dir === 'orig'),
    'every record has its process and the program as originator',
  );
  t.equal(fs.statSync(path.join(sc.dir, 'out.flows.jsonl')).mode & 0o777, 0o644, 'the file is mode 0644');
});

t.test('a flow whose packets stopped ends by the clock, while the program still runs', async (t) => {
  const sc = await captureScenario(t, {
    file: 'out.pcapng',
    servers: [['serve-udp', '127.0.0.1', 0]],
    tdArgs: (_, dir) => ['--flows', path.join(dir, 'f.jsonl'), '--flows-idle', '1'],
    // the program reads the flows file itself, 6 s after its exchange: the record is there
    command: ([udp], dir) => ['sh', '-c', `${PY} ${FLOWS} udp-query 127.0.0.1 ${udp} 1 long && sleep 6 && echo BEGIN && cat ${path.join(dir, 'f.jsonl')} && echo END`],
  });
  t.equal(sc.run.status, 0, `the program succeeded (${sc.run.stderr.slice(-300)})`);
  const seen = /BEGIN\n([^]*?)END/.exec(sc.run.stdout)?.[1] ?? '';
  const port = sc.traced[0]?.local.port;
  const rec = lines(seen).map((l) => JSON.parse(l)).find((r) => r['id.orig_p'] === port);
  t.ok(rec, `the UDP flow's record was written 6 s after its last packet, the program still running (${seen.trim()})`);
  t.same([rec?.conn_state, rec?.orig_pkts, rec?.resp_pkts], ['SF', 1, 1], 'its query and answer');
});

t.test('--flows without a capture, and a failed start: nothing is touched', async (t) => {
  const dir = workDir(t);
  const flowsFile = path.join(dir, 'keep.jsonl');
  fs.writeFileSync(flowsFile, 'old\n');
  const alone = await runTracedump(t, ['--events', '--flows', flowsFile], ['true']);
  t.equal(alone.status, 125, 'without -w: exit 125');
  t.match(alone.stderr, /--flows needs a capture/, 'the error says why');
  t.match(alone.stderr, /add -w FILE/, 'and what to do');
  const missing = await runTracedump(t, ['-w', path.join(dir, 'x.pcapng'), '--flows', flowsFile], ['/nonexistent/command']);
  t.equal(missing.status, 127, 'a command that does not exist: 127');
  t.equal(fs.readFileSync(flowsFile, 'utf8'), 'old\n', 'the existing flows file is as it was');
});

noLeftovers(t);
