// Capture fidelity, UDP on loopback, against an oracle tcpdump:
//  2. DNS-like queries: 300 from fresh unconnected sockets, 300 from one long-lived socket,
//     100 on a connected socket (an untraced echo server answers each); the same over ::1,
//     with TCP over ::1 too;
//  6. a UDP socket idle for 1.5 s between socket() and its first sendto; sendmsg and
//     sendmmsg with destinations on unbound sockets (IPv4 and IPv6).
import t from 'tap';
import {
  FLOWS,
  PY,
  captureScenario,
  checkCapture,
  noLeftovers,
} from './helpers/capture';

t.test('DNS-like UDP queries over 127.0.0.1: fresh, long-lived and connected sockets', async (t) => {
  const sc = await captureScenario(t, {
    servers: [['serve-udp', '127.0.0.1', 0]],
    command: ([port]) => {
      const q = (n: number, mode: string) => `${PY} ${FLOWS} udp-query 127.0.0.1 ${port} ${n} ${mode}`;
      return ['sh', '-c', `${q(300, 'fresh')} && ${q(300, 'long')} && ${q(100, 'connected')}`];
    },
  });
  t.equal(sc.run.status, 0, `the client succeeded (${sc.run.stderr.slice(-300)})`);
  t.equal(sc.traced.length, 302, 'the client recorded 300 fresh sockets, a long-lived one and a connected one');
  checkCapture(t, { tdFile: sc.out, oracleFile: sc.oracle.file, oracleStats: sc.oracle.stats, run: sc.run, traced: sc.traced, others: [], udpSent: 700, udpReceived: 700 });
});

t.test('IPv6 over ::1: UDP fresh, long-lived, connected; TCP', async (t) => {
  const sc = await captureScenario(t, {
    servers: [
      ['serve-udp', '::1', 0],
      ['serve-tcp', '::1', 0],
    ],
    command: ([udp, tcp]) => {
      const q = (n: number, mode: string) => `${PY} ${FLOWS} udp-query ::1 ${udp} ${n} ${mode}`;
      return ['sh', '-c', `${q(100, 'fresh')} && ${q(100, 'long')} && ${q(50, 'connected')} && ${PY} ${FLOWS} tcp-get ::1 ${tcp} 30`];
    },
  });
  t.equal(sc.run.status, 0, `the client succeeded (${sc.run.stderr.slice(-300)})`);
  t.equal(sc.traced.length, 132, 'the client recorded 102 UDP sockets and 30 TCP connections');
  const r = checkCapture(t, {
    tdFile: sc.out,
    oracleFile: sc.oracle.file,
    oracleStats: sc.oracle.stats,
    run: sc.run,
    traced: sc.traced,
    others: [],
    tcpConnections: 30,
    udpSent: 250,
    udpReceived: 250,
  });
  t.ok(
    r.td.packets.every((p) => p.ipVersion === 6),
    'every packet in the file is IPv6',
  );
});

for (const host of ['127.0.0.1', '::1']) {
  t.test(`${host}: a UDP socket idle for 1.5 s, then used; sendmsg and sendmmsg on unbound sockets`, async (t) => {
    const { out, oracle, run, traced } = await captureScenario(t, {
      servers: [['serve-udp', host, 0]],
      command: ([port]) => [PY, FLOWS, 'udp-idle', host, String(port), '1500'],
    });
    t.equal(run.status, 0, `the client succeeded (${run.stderr.slice(-300)})`);
    t.equal(traced.length, 3, 'the client recorded 3 sockets');
    checkCapture(t, {
      tdFile: out,
      oracleFile: oracle.file,
      oracleStats: oracle.stats,
      run,
      traced,
      others: [],
      udpSent: 5,
      udpReceived: 5,
    });
  });
}

noLeftovers(t);
