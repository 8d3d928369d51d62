// Capture fidelity when a port the program released is reused, against an oracle tcpdump:
// 11. the traced program binds UDP port P, exchanges datagrams, closes, and binds TCP local
//     port L to connect to a server, then closes and exits, leaving one connection to a server
//     that never closes unfinished (FIN_WAIT2); while tracedump still lingers for it
//     (--linger 3), an untraced process binds the same UDP port P and connects from the same
//     local port L to the same server (the same 4-tuple): none of the later packets may be
//     in the file, every packet of the traced program must be.
// 12. the program itself gets the same UDP port again and again (1000 fresh sockets, one per query:
//     the DNS-client pattern, with only four ports to pick from in a network namespace): each
//     exchange belongs to the socket that held the port at its time, and every one is in the file.
import t from 'tap';
import { FLOWS, PY, captureScenario, checkCapture, makeNetns, noLeftovers, runFlows, sh } from './helpers/capture';

for (const host of ['127.0.0.1', '::1']) {
  t.test(`${host}: UDP port and TCP 4-tuple reused by an untraced process during the linger`, async (t) => {
    const sc = await captureScenario(t, {
      servers: [
        ['serve-udp', host, 0],
        ['serve-tcp', host, 0],
        ['serve-tcp', host, 0, 0, 'hold'],
      ],
      freePorts: [
        { host, kind: 'udp' },
        { host, kind: 'tcp' },
      ],
      tdArgs: ['--linger', '3', '--events=json'],
      command: ([udp, tcp, hold, lu, lt]) => [PY, FLOWS, 'reuse', host, ...[udp, tcp, lu, lt, hold].map(String)],
      // the traced program has exited (tracedump lingers): the untraced process reuses
      others: {
        when: (e) => e.kind === 'exit' && e.pid === e.tid,
        start: ([udp, tcp, , lu, lt], record) => [runFlows(t, ['reuse', host, udp, tcp, lu, lt], { record })],
      },
    });
    const { run, traced, others } = sc;
    const [, , hold, lu, lt] = sc.ports;
    const tracedExitAt = sc.othersStartedMs;
    const endAt = sc.endedMs;
    const reused = sc.othersDone[0] ?? { code: null, err: 'not started' };
    t.equal(run.status, 0, `the traced program succeeded (${run.stderr.slice(-300)})`);
    t.equal(reused.code, 0, `the untraced process reused the ports (${reused.err})`);
    t.same(
      traced.map((r) => [r.proto, r.local.port]).slice(0, 2),
      [
        ['udp', lu],
        ['tcp', lt],
      ],
      'the traced program used UDP port P and TCP local port L',
    );
    t.same(traced.slice(2).map((r) => r.remote?.port), [hold], 'and left a connection to the hold server open');
    t.same(
      others.map((r) => [r.proto, r.local.port]),
      [
        ['udp', lu],
        ['tcp', lt],
      ],
      'the untraced process used the same ports',
    );
    t.ok(
      others.every((o) => o.t0 > tracedExitAt && o.t1 < endAt),
      `the untraced process ran after the traced one exited and before tracedump ended (${others.map((o) => `${(o.t0 - tracedExitAt).toFixed(0)}..${(o.t1 - tracedExitAt).toFixed(0)} ms`)} after the exit; tracedump ended ${endAt - tracedExitAt} ms after it)`,
    );
    const r = checkCapture(t, {
      tdFile: sc.out,
      oracleFile: sc.oracle.file,
      oracleStats: sc.oracle.stats,
      run,
      traced,
      others,
      tcpConnections: 2,
      unfinishedTo: [hold],
      udpSent: 3,
      udpReceived: 3,
    });
    const reuseStart = Math.min(...others.map((o) => o.t0));
    t.same(
      r.td.packets.filter((p) => p.ms >= reuseStart && p.sport !== hold && p.dport !== hold).map((p) => `${p.proto} ${p.sport}>${p.dport} @${(p.ms - reuseStart).toFixed(3)}ms`),
      [],
      'no packet in the file from after the reuse began (but the held connection\'s FIN and ACK)',
    );
    t.ok(r.other.length >= 16, `the oracle saw the untraced process's packets (${r.other.length})`);
  });
}

t.test('UDP ports the program itself takes again at once: every exchange kept', async (t) => {
  const net = makeNetns(t);
  t.equal(sh(`ip netns exec ${net.name} sysctl -q net.ipv4.ip_local_port_range="40000 40003"`).status, 0, 'four ephemeral ports');
  const sc = await captureScenario(t, {
    netns: { name: net.name, capture: true },
    servers: [['serve-udp', '127.0.0.1', 0]],
    oracle: { filter: ([udp]) => `udp port ${udp}` },
    command: ([udp]) => [PY, FLOWS, 'udp-query', '127.0.0.1', String(udp), '1000', 'fresh'],
  });
  const { run, traced } = sc;
  t.equal(run.status, 0, `the traced program succeeded (${run.stderr.slice(-300)})`);
  const ports = new Set(traced.map((r) => r.local.port));
  t.ok(traced.length === 1000 && ports.size <= 4, `1000 sockets on ${ports.size} ports`);
  checkCapture(t, { tdFile: sc.out, oracleFile: sc.oracle.file, oracleStats: sc.oracle.stats, run, traced, others: [], udpSent: 1000, udpReceived: 1000 });
});

noLeftovers(t);
