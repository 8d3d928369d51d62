// Capture fidelity across processes and threads, against an oracle tcpdump:
//  5. 3 forked children and 3 threads start at the same moment, each making TCP connections
//     and UDP queries from fresh sockets; an exec chain `sh -c 'a; b'` (two programs run one
//     after the other by a shell, each with its own sockets).
import t from 'tap';
import {
  captureScenario,
  FLOWS,
  PY,
  checkCapture,
  noLeftovers,
} from './helpers/capture';

t.test('3 forked children and 3 threads at once', async (t) => {
  const n = 20;
  const { out, oracle, run, traced } = await captureScenario(t, {
    servers: [
      ['serve-tcp', '127.0.0.1', 0],
      ['serve-udp', '127.0.0.1', 0],
    ],
    command: ([tcp, udp]) => [PY, FLOWS, 'mixed', '127.0.0.1', String(tcp), String(udp), String(n)],
  });
  t.equal(run.status, 0, `the program succeeded (${run.stderr.slice(-300)})`);
  t.equal(traced.length, 6 * 2 * n, 'the program recorded every socket');
  t.equal(new Set(traced.map((r) => r.pid)).size, 4, 'sockets of 3 children and the parent');
  t.equal(new Set(traced.map((r) => r.tid)).size, 6, 'sockets of 6 threads (3 children, 3 threads)');
  checkCapture(t, {
    tdFile: out,
    oracleFile: oracle.file,
    oracleStats: oracle.stats,
    run,
    traced,
    others: [],
    tcpConnections: 6 * n,
    udpSent: 6 * n,
    udpReceived: 6 * n,
  });
});

t.test("exec chain: sh -c 'a; b'", async (t) => {
  // `exec` in the middle of the chain too: sh -> python (a); sh -> sh -> exec python (b)
  const { out, oracle, run, traced } = await captureScenario(t, {
    servers: [
      ['serve-tcp', '127.0.0.1', 0],
      ['serve-udp', '::1', 0],
    ],
    command: ([tcp, udp]) => [
      'sh',
      '-c',
      `${PY} ${FLOWS} tcp-get 127.0.0.1 ${tcp} 10; sh -c 'exec ${PY} ${FLOWS} udp-query ::1 ${udp} 10 fresh'; exec ${PY} ${FLOWS} tcp-get 127.0.0.1 ${tcp} 5`,
    ],
  });
  t.equal(run.status, 0, `the chain succeeded (${run.stderr.slice(-300)})`);
  t.equal(traced.length, 25, 'the chain recorded 15 TCP connections and 10 UDP sockets');
  t.equal(new Set(traced.map((r) => r.pid)).size, 3, 'sockets of three programs');
  checkCapture(t, {
    tdFile: out,
    oracleFile: oracle.file,
    oracleStats: oracle.stats,
    run,
    traced,
    others: [],
    tcpConnections: 15,
    udpSent: 10,
    udpReceived: 10,
  });
});

noLeftovers(t);
