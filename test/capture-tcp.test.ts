// Capture fidelity, TCP on loopback, against an oracle tcpdump:
//  1. 200 sequential HTTP-like connections of the traced client to an untraced server;
//  3. the same while an untraced noise process hits the same server endpoints at the same
//     time (TCP and UDP): none of the noise's packets may be in the file.
import t from 'tap';
import { PY, FLOWS, captureScenario, checkCapture, runFlows, noLeftovers } from './helpers/capture';

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
  const n = 150;
  // the traced client: n TCP connections then n UDP queries from fresh sockets; the noise
  // does the same (3x as many, 2 ms apart), in two untraced processes started the moment the
  // traced client prints "start"
  const sc = await captureScenario(t, {
    servers: [
      ['serve-tcp', '127.0.0.1', 0],
      ['serve-udp', '127.0.0.1', 0],
    ],
    command: ([tcp, udp]) => ['sh', '-c', `echo start; ${PY} ${FLOWS} tcp-get 127.0.0.1 ${tcp} ${n} && ${PY} ${FLOWS} udp-query 127.0.0.1 ${udp} ${n} fresh`],
    others: {
      when: /start/,
      start: ([tcp, udp], record) => [
        runFlows(t, ['tcp-get', '127.0.0.1', tcp, n * 3], { record, gapMs: 2 }),
        runFlows(t, ['udp-query', '127.0.0.1', udp, n * 3, 'fresh'], { record, gapMs: 2 }),
      ],
    },
  });
  const { run, traced, others } = sc;
  t.equal(run.status, 0, `the traced client succeeded (${run.stderr.slice(-300)})`);
  t.same(
    sc.othersDone.map((x) => x.code),
    [0, 0],
    `the noise clients ran and succeeded (${sc.othersDone.map((x) => x.err).join(' ')})`,
  );
  t.equal(traced.length, 2 * n, 'the traced client recorded its sockets');
  t.equal(others.length, 6 * n, 'the noise recorded its sockets');
  const r = checkCapture(t, {
    tdFile: sc.out,
    oracleFile: sc.oracle.file,
    oracleStats: sc.oracle.stats,
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
