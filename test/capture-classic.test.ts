// Capture fidelity with the classic BPF fallback (--kernel-filter=classic), against an oracle
// tcpdump: the stop path swaps in the wide program when a rule is added, the controller then
// attaches an exact port-interval program; userspace judges exactly either way.
//  - TCP connections and fresh UDP sockets, with an untraced noise client on the same servers;
//  - 3,000 UDP sockets open at once (more ports than a linear classic program could hold).
import t from 'tap';
import { FLOWS, PY, captureScenario, checkCapture, noLeftovers, runFlows } from './helpers/capture';

const CLASSIC = '--kernel-filter=classic';

t.test('classic filter: TCP and UDP with an untraced noise client on the same servers', async (t) => {
  const sc = await captureScenario(t, {
    servers: [
      ['serve-tcp', '127.0.0.1', 0],
      ['serve-udp', '127.0.0.1', 0],
    ],
    others: {
      start: ([tcp, udp], record) => [
        runFlows(t, ['tcp-get', '127.0.0.1', tcp, 150], { record, gapMs: 2 }),
        runFlows(t, ['udp-query', '127.0.0.1', udp, 150, 'fresh'], { record, gapMs: 2 }),
      ],
    },
    tdArgs: [CLASSIC],
    command: ([tcp, udp]) => ['sh', '-c', `${PY} ${FLOWS} tcp-get 127.0.0.1 ${tcp} 100 && ${PY} ${FLOWS} udp-query 127.0.0.1 ${udp} 100 fresh`],
  });
  const { run, traced, others } = sc;
  t.equal(run.status, 0, `the program succeeded (${run.stderr.slice(-300)})`);
  t.match(run.stderr, /\(classic filter\)/, 'the summary names the classic filter');
  t.same(sc.othersDone.map((x) => x.code), [0, 0], 'the noise clients succeeded');
  t.equal(traced.length, 200, 'the program recorded 100 TCP and 100 UDP sockets');
  t.equal(others.length, 300, 'the noise recorded its sockets');
  checkCapture(t, {
    tdFile: sc.out,
    oracleFile: sc.oracle.file,
    oracleStats: sc.oracle.stats,
    run,
    traced,
    others,
    udpSent: 100,
    udpReceived: 100,
  });
});

t.test('classic filter: 3,000 UDP sockets open at once, one datagram each', async (t) => {
  const n = 3_000;
  const sc = await captureScenario(t, {
    servers: [['serve-udp', '127.0.0.1', 0, 'sink']],
    tdArgs: [CLASSIC],
    command: ([sink]) => ['sh', '-c', `ulimit -n 20000 && exec ${PY} ${FLOWS} udp-many 127.0.0.1 ${sink} ${n}`],
    timeoutMs: 240_000,
  });
  const { run, traced } = sc;
  t.equal(run.status, 0, `the program succeeded (${run.stderr.slice(-300)})`);
  t.match(run.stderr, /\(classic filter\)/, 'the summary names the classic filter');
  t.equal(traced.length, n, `the program recorded ${n} sockets`);
  const r = checkCapture(t, {
    tdFile: sc.out,
    oracleFile: sc.oracle.file,
    oracleStats: sc.oracle.stats,
    run,
    traced,
    others: [],
    udpSent: n,
    udpReceived: 0,
  });
  t.equal(r.td.packets.length, n, `exactly ${n} packets in the file`);
});

noLeftovers(t);
