// Capture fidelity, the program as a server, against an oracle tcpdump:
//  4. the traced program binds, listens and accepts; two untraced clients talk to it: all of
//     its connections are the program's (they are its sockets) and must all be in the file;
//     an unrelated untraced server/client pair on another port at the same time must not.
import t from 'tap';
import { FLOWS, PY, captureScenario, checkCapture, noLeftovers, runFlows } from './helpers/capture';

t.test('traced TCP server, untraced clients; an unrelated pair on another port', async (t) => {
  const perClient = 25;
  const sc = await captureScenario(t, {
    servers: [['serve-tcp', '127.0.0.1', 0]],
    freePorts: [{ host: '127.0.0.1', kind: 'tcp' }],
    command: ([, port]) => [PY, FLOWS, 'serve-tcp', '127.0.0.1', String(port), String(2 * perClient)],
    others: {
      when: /^ready \d+$/m,
      start: ([unrelated, port], record) => [
        runFlows(t, ['tcp-get', '127.0.0.1', port, perClient], { record, gapMs: 3 }),
        runFlows(t, ['tcp-get', '127.0.0.1', port, perClient], { record, gapMs: 3 }),
        runFlows(t, ['tcp-get', '127.0.0.1', unrelated, 3 * perClient], { record, gapMs: 2 }),
      ],
    },
  });
  const { run, traced, others, othersDone } = sc;
  const [unrelated, port] = sc.ports;
  t.equal(run.status, 0, `the traced server served its clients and exited 0 (${run.stderr.slice(-300)})`);
  t.same(
    othersDone.map((x) => x.code),
    [0, 0, 0],
    `the untraced clients ran and succeeded (${othersDone.map((x) => x.err).join(' ')})`,
  );
  t.equal(traced.filter((r) => r.role === 'accepted').length, 2 * perClient, 'the server recorded its accepted sockets');
  t.equal(traced.filter((r) => r.role === 'listen').length, 1, 'the server recorded its listening socket');
  const r = checkCapture(t, {
    tdFile: sc.out,
    oracleFile: sc.oracle.file,
    oracleStats: sc.oracle.stats,
    run,
    traced,
    others,
    tcpConnections: 2 * perClient,
  });
  t.ok(
    r.td.packets.every((p) => p.sport === port || p.dport === port),
    'every packet in the file is to or from the traced server port',
  );
  const unrelatedSeen = r.other.filter((p) => p.sport === unrelated || p.dport === unrelated).length;
  t.ok(unrelatedSeen >= 3 * perClient * 8, `the oracle saw the unrelated pair (${unrelatedSeen} packets)`);
});

t.test('traced UDP echo server, untraced clients; an unrelated UDP pair on another port', async (t) => {
  const perClient = 60;
  const sc = await captureScenario(t, {
    servers: [['serve-udp', '127.0.0.1', 0]],
    freePorts: [{ host: '127.0.0.1', kind: 'udp' }],
    command: ([, port]) => [PY, FLOWS, 'serve-udp', '127.0.0.1', String(port), 'echo', String(2 * perClient)],
    others: {
      when: /^ready \d+$/m,
      start: ([unrelated, port], record) => [
        runFlows(t, ['udp-query', '127.0.0.1', port, perClient, 'fresh'], { record, gapMs: 2 }),
        runFlows(t, ['udp-query', '127.0.0.1', port, perClient, 'long'], { record }),
        runFlows(t, ['udp-query', '127.0.0.1', unrelated, 2 * perClient, 'fresh'], { record, gapMs: 1 }),
      ],
    },
  });
  const { run, traced, others, othersDone } = sc;
  const port = sc.ports[1];
  t.equal(run.status, 0, `the traced server answered its clients and exited 0 (${run.stderr.slice(-300)})`);
  t.same(
    othersDone.map((x) => x.code),
    [0, 0, 0],
    `the untraced clients ran and succeeded (${othersDone.map((x) => x.err).join(' ')})`,
  );
  t.equal(traced.length, 1, 'the server recorded its socket');
  const r = checkCapture(t, {
    tdFile: sc.out,
    oracleFile: sc.oracle.file,
    oracleStats: sc.oracle.stats,
    run,
    traced,
    others,
  });
  t.equal(r.td.packets.length, 4 * perClient, 'every query and answer of the traced server is in the file');
  t.ok(
    r.td.packets.every((p) => p.sport === port || p.dport === port),
    'every packet in the file is to or from the traced server port',
  );
});

noLeftovers(t);
