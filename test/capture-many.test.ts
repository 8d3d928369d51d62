// Capture fidelity with many sockets, against an oracle tcpdump:
//  8. 10,000 UDP sockets open at once, each sending one datagram to an untraced local sink:
//     all 10,000 datagrams are in the file, nothing else.
import t from 'tap';
import {
  captureScenario,
  FLOWS,
  PY,
  checkCapture,
  noLeftovers,
} from './helpers/capture';

t.test('10,000 UDP sockets open at once, one datagram each', async (t) => {
  const n = 10_000;
  // the fixture raises RLIMIT_NOFILE itself (setrlimit); ulimit here too, as a user would
  const { out, oracle, run, traced } = await captureScenario(t, {
    servers: [['serve-udp', '127.0.0.1', 0, 'sink']],
    command: ([port]) => ['sh', '-c', `ulimit -n 20000 && exec ${PY} ${FLOWS} udp-many 127.0.0.1 ${port} ${n}`],
    timeoutMs: 240_000,
  });
  t.equal(run.status, 0, `the program succeeded (${run.stderr.slice(-300)})`);
  t.match(run.stdout, new RegExp(`^open ${n}$`, 'm'), `${n} sockets were open at once`);
  t.equal(traced.length, n, `the program recorded ${n} sockets`);
  t.equal(new Set(traced.map((r) => r.local.port)).size, n, `${n} distinct local ports`);
  const r = checkCapture(t, {
    tdFile: out,
    oracleFile: oracle.file,
    oracleStats: oracle.stats,
    run,
    traced,
    others: [],
    udpSent: n,
    udpReceived: 0,
  });
  t.equal(r.td.packets.length, n, `exactly ${n} packets in the file`);
  t.equal(new Set(r.td.packets.map((p) => p.sport)).size, n, `from ${n} distinct source ports`);
  t.comment(`tracedump run: ${run.elapsedMs} ms`);
});

noLeftovers(t);
