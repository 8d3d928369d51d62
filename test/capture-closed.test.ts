// Capture fidelity at the edges of a connection, against an oracle tcpdump:
// 10. curl to a port with no listener: its SYN and the RST/ACK are both in the file (and
//     nothing else); curl to a served port: in `tshark -r`, the SYN comes first and the final
//     ACK of the FIN/ACK exchange last; datagrams to a closed UDP port: the ICMP/ICMPv6 port
//     unreachable errors quoting them are in the file; with --linger 30, capture ends once
//     the connection is done (TIME_WAIT or gone), long before 30 s, its last ACK kept.
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { captureScenario, FLOWS, PY, checkCapture, portFilter, noLeftovers, type SockRec } from './helpers/capture';
import { TCP_ACK, TCP_RST, TCP_SYN } from './helpers/pcap';

/** Every packet to or from `port` is the program's (nobody else uses the port meanwhile). */
function portRecord(host: string, port: number, t0: number, t1: number): SockRec {
  return { pid: 0, tid: 0, role: 'listen', proto: 'tcp', local: { address: host, port }, remote: null, t0, t1, n: 1, owner: 'traced' };
}

t.test('curl to a closed port: SYN and RST', async (t) => {
  const sc = await captureScenario(t, {
    freePorts: [{ host: '127.0.0.1', kind: 'tcp' }],
    command: ([port]) => ['curl', '-s', '--max-time', '10', `http://127.0.0.1:${port}/`],
  });
  const { run, ports: [port] } = sc;
  t.equal(run.status, 7, 'curl exits 7 (could not connect) and tracedump with it');
  const r = checkCapture(t, {
    tdFile: sc.out,
    oracleFile: sc.oracle.file,
    oracleStats: sc.oracle.stats,
    run,
    traced: [portRecord('127.0.0.1', port, sc.startedMs, sc.endedMs)],
    others: [],
    tcpConnections: 1,
  });
  t.same(
    r.td.packets.map((p) => [p.dport === port ? 'out' : 'in', p.tcpFlags & (TCP_SYN | TCP_ACK | TCP_RST)]),
    [
      ['out', TCP_SYN],
      ['in', TCP_RST | TCP_ACK],
    ],
    'exactly two packets: the SYN to the port, the RST/ACK from it',
  );
});

t.test('curl to a served port: tshark shows the SYN first and the FIN/ACK exchange last', async (t) => {
  const { ports, out, oracle, run, startedMs, endedMs } = await captureScenario(t, {
    servers: [['serve-tcp', '127.0.0.1', 0]],
    command: ([port]) => ['curl', '-s', '--max-time', '10', `http://127.0.0.1:${port}/`],
  });
  const srv = { port: ports[0] };
  t.equal(run.status, 0, 'curl succeeded');
  t.match(run.stdout, /hello from flows GET \/ HTTP\/1\.1/, 'curl printed the answer');
  checkCapture(t, {
    tdFile: out,
    oracleFile: oracle.file,
    oracleStats: oracle.stats,
    run,
    traced: [portRecord('127.0.0.1', srv.port, startedMs, endedMs)],
    others: [],
    tcpConnections: 1,
  });
  const ts = spawnSync(
    'tshark',
    ['-n', '-r', out, '-T', 'fields', '-E', 'separator=,', '-e', 'tcp.srcport', '-e', 'tcp.flags.syn', '-e', 'tcp.flags.ack', '-e', 'tcp.flags.fin', '-e', 'tcp.flags.reset'],
    { encoding: 'utf8' },
  );
  t.equal(ts.status, 0, 'tshark -r exits 0');
  const rows = ts.stdout
    .trim()
    .split('\n')
    .map((l) => l.split(','));
  const flag = (v: string) => v === '1' || v === 'True';
  const srvPort = String(srv.port);
  t.ok(rows.length >= 8, `a whole connection (${rows.length} packets)`);
  t.ok(flag(rows[0][1]) && !flag(rows[0][2]) && rows[0][0] !== srvPort, 'the first packet is the client SYN');
  const fins = rows.map((r, i) => [r, i] as const).filter(([r]) => flag(r[3]));
  t.same(
    [...new Set(fins.map(([r]) => r[0] === srvPort))].sort(),
    [false, true],
    'a FIN from each side',
  );
  const last = rows[rows.length - 1];
  t.ok(
    fins.length === 2 && fins[1][1] >= rows.length - 2 && flag(last[2]) && !flag(last[4]),
    `the file ends with the FIN/ACK exchange: the last packet is the ACK of the last FIN (${rows.slice(-3).map((r) => r.join(' ')).join(' | ')})`,
  );
});

for (const host of ['127.0.0.1', '::1']) {
  t.test(`${host}: UDP to a closed port, the ICMP errors quoting the datagrams are in the file`, async (t) => {
    const sc = await captureScenario(t, {
      freePorts: [{ host, kind: 'udp' }],
      oracle: { filter: (ports) => portFilter(ports, true) },
      command: ([port]) => [PY, FLOWS, 'udp-closed', host, String(port)],
    });
    const { run, traced, ports: [port] } = sc;
    t.equal(run.status, 0, `the program saw ECONNREFUSED (${run.stderr.slice(-300)})`);
    t.equal(traced.length, 2, 'two sockets');
    const r = checkCapture(t, {
      tdFile: sc.out,
      oracleFile: sc.oracle.file,
      oracleStats: sc.oracle.stats,
      run,
      traced,
      others: [],
      udpSent: 2,
    });
    const icmp = r.td.packets.filter((p) => p.inner);
    t.equal(icmp.length, 2, 'two ICMP errors in the file');
    t.same(
      icmp.map((p) => [p.proto, p.inner?.dport]),
      [
        [host === '::1' ? 'icmp6' : 'icmp', port],
        [host === '::1' ? 'icmp6' : 'icmp', port],
      ],
      'port unreachable, quoting datagrams to the closed port',
    );
    t.equal(r.td.packets.length, 4, 'two datagrams and two errors, nothing else');
  });
}

t.test('--linger 30: capture ends once the connections are done, their last ACKs kept', async (t) => {
  const { ports, out, oracle, run, startedMs, endedMs } = await captureScenario(t, {
    servers: [['serve-tcp', '127.0.0.1', 0]],
    tdArgs: ['--linger', '30'],
    command: ([port]) => ['curl', '-s', '--max-time', '10', `http://127.0.0.1:${port}/`],
  });
  t.equal(run.status, 0, 'curl succeeded');
  // a bound far from the linger's 30 s: what is checked is that it ends when done, not how fast
  t.ok(run.elapsedMs < 15_000, `tracedump ended ${run.elapsedMs} ms after it started, not 30 s after curl`);
  checkCapture(t, {
    tdFile: out,
    oracleFile: oracle.file,
    oracleStats: oracle.stats,
    run,
    traced: [portRecord('127.0.0.1', ports[0], startedMs, endedMs)],
    others: [],
    tcpConnections: 1,
  });
});

noLeftovers(t);
