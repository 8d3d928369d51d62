// Capture fidelity across a veth pair, against an oracle tcpdump:
//  7. the traced client talks to servers in a network namespace the test creates (TCP and
//     UDP, IPv4 and IPv6 over the veth pair); the namespace is deleted at the end.
import t from 'tap';
import { FLOWS, PY, captureScenario, checkCapture, makeNetns, sh, noLeftovers } from './helpers/capture';

let nsName = '';

t.test('TCP and UDP, IPv4 and IPv6, to a host in a network namespace', async (t) => {
  const net = makeNetns(t);
  nsName = net.name;
  const f = `${PY} ${FLOWS}`;
  const sc = await captureScenario(t, {
    netns: { name: net.name },
    servers: [
      ['serve-tcp', '::', 0],
      ['serve-udp', '::', 0],
    ],
    command: ([tcp, udp]) => [
      'sh',
      '-c',
      [
        `${f} tcp-get ${net.nsV4} ${tcp} 20`,
        `${f} tcp-get ${net.nsV6} ${tcp} 20`,
        `${f} udp-query ${net.nsV4} ${udp} 40 fresh`,
        `${f} udp-query ${net.nsV6} ${udp} 40 fresh`,
        `${f} udp-query ${net.nsV4} ${udp} 40 long`,
        `${f} udp-query ${net.nsV6} ${udp} 20 connected`,
      ].join(' && '),
    ],
  });
  const { run, traced } = sc;
  t.equal(run.status, 0, `the client succeeded (${run.stderr.slice(-300)})`);
  t.equal(traced.length, 40 + 80 + 2, 'the client recorded 40 connections and 82 UDP sockets');
  const r = checkCapture(t, {
    tdFile: sc.out,
    oracleFile: sc.oracle.file,
    oracleStats: sc.oracle.stats,
    run,
    traced,
    others: [],
    tcpConnections: 40,
    udpSent: 140,
    udpReceived: 140,
  });
  const v4 = r.td.packets.filter((p) => p.ipVersion === 4).length;
  const v6 = r.td.packets.filter((p) => p.ipVersion === 6).length;
  t.ok(v4 > 0 && v6 > 0, `IPv4 (${v4}) and IPv6 (${v6}) packets in the file`);
  t.ok(
    r.td.packets.every((p) => [net.hostV4, net.nsV4, net.hostV6, net.nsV6].includes(p.src)),
    'every packet went over the veth pair',
  );
});

t.test('the namespace and its processes are gone after the test', async (t) => {
  t.ok(nsName, 'a namespace was made');
  t.notMatch(sh('ip netns list').out, nsName, `${nsName} deleted`);
  t.notMatch(sh('ip -o link').out, `tdh${nsName.slice(6)}`, 'the veth pair is gone');
});

noLeftovers(t);
