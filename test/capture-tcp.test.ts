// Capture fidelity, TCP on loopback, against an oracle tcpdump:
//  1. 200 sequential HTTP-like connections of the traced client to an untraced server;
//  3. the same while an untraced noise process hits the same server endpoints at the same
//     time (TCP and UDP): none of the noise's packets may be in the file.
import path from 'node:path';
import t from 'tap';
import {
  PY,
  FLOWS,
  captureScenario,
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

t.test('200 sequential TCP connections to an untraced server', async (t) => {
  const sc = await captureScenario(t, {
    servers: [['serve-tcp', '127.0.0.1', 0]],
    command: ([port]) => [PY, FLOWS, 'tcp-get', '127.0.0.1', String(port), '200'],
  });
  t.equal(sc.run.status, 0, `the client succeeded (${sc.run.stderr.slice(-300)})`);
  t.equal(sc.traced.length, 200, 'the client recorded 200 connections');
  checkCapture(t, { tdFile: sc.out, oracleFile: sc.oracle.file, oracleStats: sc.oracle.stats, run: sc.run, traced: sc.traced, others: [], tcpConnections: 200 });
  t.comment(`tracedump run: ${sc.run.elapsedMs} ms`);
});

t.test('noise: an untraced process hits the same servers at the same time', async (t) => {
  const dir = workDir(t);
  const tcp = await startServer(t, ['serve-tcp', '127.0.0.1', 0]);
  const udp = await startServer(t, ['serve-udp', '127.0.0.1', 0]);
  const oracle = await startOracle(t, { file: path.join(dir, 'oracle.pcap'), filter: portFilter([tcp.port, udp.port]) });
  const out = path.join(dir, 'out.pcap');
  const rec = path.join(dir, 'traced.jsonl');
  const noiseRec = path.join(dir, 'noise.jsonl');
  const n = 150;
  // the traced client: n TCP connections then n UDP queries from fresh sockets; the noise
  // does the same (3x as many, 2 ms apart), in two untraced processes started the moment the
  // traced client prints "start"
  const script = `echo start; ${PY} ${FLOWS} tcp-get 127.0.0.1 ${tcp.port} ${n} && ${PY} ${FLOWS} udp-query 127.0.0.1 ${udp.port} ${n} fresh`;
  let noise: Promise<{ code: number | null; err: string }[]> | null = null;
  const startNoise = () =>
    Promise.all([
      runFlows(t, ['tcp-get', '127.0.0.1', tcp.port, n * 3], { record: noiseRec, gapMs: 2 }),
      runFlows(t, ['udp-query', '127.0.0.1', udp.port, n * 3, 'fresh'], { record: noiseRec, gapMs: 2 }),
    ]);
  const run = await runTracedump(t, ['-w', out], ['sh', '-c', script], {
    record: rec,
    onStdout: (all) => {
      if (!noise && all.includes('start')) noise = startNoise();
    },
  });
  const noiseDone = await (noise as Promise<{ code: number | null; err: string }[]> | null ?? Promise.resolve([]));
  const stats = await oracle.stop();
  t.equal(run.status, 0, `the traced client succeeded (${run.stderr.slice(-300)})`);
  t.same(
    noiseDone.map((x) => x.code),
    [0, 0],
    `the noise clients ran and succeeded (${noiseDone.map((x) => x.err).join(' ')})`,
  );
  const traced = readRecords(rec, 'traced');
  const others = readRecords(noiseRec, 'other');
  t.equal(traced.length, 2 * n, 'the traced client recorded its sockets');
  t.equal(others.length, 6 * n, 'the noise recorded its sockets');
  const r = checkCapture(t, {
    tdFile: out,
    oracleFile: oracle.file,
    oracleStats: stats,
    run,
    traced,
    others,
    tcpConnections: n,
    udpSent: n,
    udpReceived: n,
  });
  // the noise really overlapped the traced client in time
  const tracedSpan = [Math.min(...traced.map((x) => x.t0)), Math.max(...traced.map((x) => x.t1))];
  const overlapping = others.filter((o) => o.t0 < tracedSpan[1] && o.t1 > tracedSpan[0]).length;
  t.ok(overlapping >= 50, `the noise overlapped the traced client (${overlapping} noise sockets during it)`);
  t.ok(r.other.length >= 6 * n, `the oracle saw the noise (${r.other.length} packets)`);
});

noLeftovers(t);
