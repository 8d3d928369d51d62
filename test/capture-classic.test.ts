// Capture fidelity with the classic BPF fallback (--kernel-filter=classic), against an oracle
// tcpdump: the stop path swaps in the wide program when a rule is added, the controller then
// attaches an exact port-interval program; userspace judges exactly either way.
//  - TCP connections and fresh UDP sockets, with an untraced noise client on the same servers;
//  - 3,000 UDP sockets open at once (more ports than a linear classic program could hold).
import path from 'node:path';
import t from 'tap';
import {
  FLOWS,
  PY,
  checkCapture,
  portFilter,
  readRecords,
  runFlows,
  runTracedump,
  startOracle,
  startServer,
  workDir,
  noLeftovers,
} from './helpers/capture';

const CLASSIC = '--kernel-filter=classic';

t.test('classic filter: TCP and UDP with an untraced noise client on the same servers', async (t) => {
  const dir = workDir(t);
  const tcp = await startServer(t, ['serve-tcp', '127.0.0.1', 0]);
  const udp = await startServer(t, ['serve-udp', '127.0.0.1', 0]);
  const oracle = await startOracle(t, { file: path.join(dir, 'oracle.pcap'), filter: portFilter([tcp.port, udp.port]) });
  const out = path.join(dir, 'out.pcap');
  const rec = path.join(dir, 'traced.jsonl');
  const noiseRec = path.join(dir, 'noise.jsonl');
  const script = `${PY} ${FLOWS} tcp-get 127.0.0.1 ${tcp.port} 100 && ${PY} ${FLOWS} udp-query 127.0.0.1 ${udp.port} 100 fresh`;
  const noise = Promise.all([
    runFlows(t, ['tcp-get', '127.0.0.1', tcp.port, 150], { record: noiseRec, gapMs: 2 }),
    runFlows(t, ['udp-query', '127.0.0.1', udp.port, 150, 'fresh'], { record: noiseRec, gapMs: 2 }),
  ]);
  const run = await runTracedump(t, [CLASSIC, '-w', out], ['sh', '-c', script], { record: rec });
  const noiseDone = await noise;
  const stats = await oracle.stop();
  t.equal(run.status, 0, `the program succeeded (${run.stderr.slice(-300)})`);
  t.match(run.stderr, /\(classic filter\)/, 'the summary names the classic filter');
  t.same(noiseDone.map((x) => x.code), [0, 0], 'the noise clients succeeded');
  const traced = readRecords(rec, 'traced');
  t.equal(traced.length, 200, 'the program recorded 100 TCP and 100 UDP sockets');
  const others = readRecords(noiseRec, 'other');
  t.equal(others.length, 300, 'the noise recorded its sockets');
  checkCapture(t, {
    tdFile: out,
    oracleFile: oracle.file,
    oracleStats: stats,
    run,
    traced,
    others,
    udpSent: 100,
    udpReceived: 100,
  });
});

t.test('classic filter: 3,000 UDP sockets open at once, one datagram each', async (t) => {
  const dir = workDir(t);
  const n = 3_000;
  const sink = await startServer(t, ['serve-udp', '127.0.0.1', 0, 'sink']);
  const oracle = await startOracle(t, { file: path.join(dir, 'oracle.pcap'), filter: portFilter([sink.port]) });
  const out = path.join(dir, 'out.pcap');
  const rec = path.join(dir, 'traced.jsonl');
  const run = await runTracedump(
    t,
    [CLASSIC, '-w', out],
    ['sh', '-c', `ulimit -n 20000 && exec ${PY} ${FLOWS} udp-many 127.0.0.1 ${sink.port} ${n}`],
    { record: rec, timeoutMs: 240_000 },
  );
  const stats = await oracle.stop();
  t.equal(run.status, 0, `the program succeeded (${run.stderr.slice(-300)})`);
  t.match(run.stderr, /\(classic filter\)/, 'the summary names the classic filter');
  const traced = readRecords(rec, 'traced');
  t.equal(traced.length, n, `the program recorded ${n} sockets`);
  const r = checkCapture(t, {
    tdFile: out,
    oracleFile: oracle.file,
    oracleStats: stats,
    run,
    traced,
    others: [],
    udpSent: n,
    udpReceived: 0,
  });
  t.equal(r.td.packets.length, n, `exactly ${n} packets in the file`);
});

noLeftovers(t);
