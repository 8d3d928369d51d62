// `-w FILE --flows FLOWS`: the flow records written while the capture runs equal those
// `tracedump flows` makes from the capture file of the same run; a flow whose packets stop ends
// by the clock while the program still runs; a run that fails before the program starts leaves
// an existing FLOWS file as it was.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { FLOWS, PY, captureScenario, noLeftovers, runTracedump, startBg, workDir } from './helpers/capture';
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

// Long transfers up and down: most packets take the native path (check mode: its flow fields are
// read again from each record), and are added to their flows from those fields.
t.test('long transfers written by the native path: the live records equal `tracedump flows` on the file', async (t) => {
  const summary = path.join(workDir(t), 'summary.json');
  const sc = await captureScenario(t, {
    file: 'out.pcapng',
    servers: [
      ['serve-tcp', '127.0.0.1', 0, 0, 'sink'],
      ['serve-tcp', '127.0.0.1', 0],
    ],
    startServers: async (dir) => {
      fs.writeFileSync(path.join(dir, 'big'), Buffer.alloc(12 << 20, 'flows'));
      const port = await new Promise<number>((resolve) => {
        const s = net.createServer().listen(0, '127.0.0.1', () => {
          const p = (s.address() as net.AddressInfo).port;
          s.close(() => resolve(p));
        });
      });
      const http = startBg(t, [PY, '-m', 'http.server', '--bind', '127.0.0.1', '--directory', dir, String(port)]);
      await http.waitFor(/Serving HTTP/);
      return [port];
    },
    tdArgs: (_, dir) => ['--flows', path.join(dir, 'out.flows.jsonl'), '--summary-json', summary],
    command: ([sink, tcp, http]) => [
      'sh',
      '-c',
      `${PY} ${FLOWS} tcp-bulk 127.0.0.1 ${sink} 16000000 && curl -s -o /dev/null http://127.0.0.1:${http}/big http://127.0.0.1:${http}/big && ${PY} ${FLOWS} tcp-get 127.0.0.1 ${tcp} 3`,
    ],
    timeoutMs: 60_000,
  });
  t.equal(sc.run.status, 0, `the programs succeeded (${sc.run.stderr.slice(-300)})`);
  const s = JSON.parse(fs.readFileSync(summary, 'utf8'));
  t.ok(s.packets_native_path > s.packets_written / 2, `most packets took the native path (${s.packets_native_path} of ${s.packets_written})`);
  t.equal(s.native_path_mismatches, 0, "its records and flow fields equal the pipeline's");
  const live = lines(fs.readFileSync(path.join(sc.dir, 'out.flows.jsonl'), 'utf8'));
  const after = spawnSync(CLI, ['flows', '--json', sc.out], { encoding: 'utf8' });
  t.equal(after.status, 0, `tracedump flows reads the file (${after.stderr})`);
  t.equal(live.length, 1 + 2 + 3, 'a record per connection (http.server speaks HTTP/1.0: a connection per download)');
  t.same([...live].sort(), [...lines(after.stdout)].sort(), 'the same records, byte for byte');
  const up = live.map((l) => JSON.parse(l)).find((r) => r.up_bytes === 16000000);
  t.ok(up, 'the upload carries its 16,000,000 bytes up');
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
