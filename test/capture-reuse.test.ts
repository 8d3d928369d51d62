// Capture fidelity when a port the program released is reused, against an oracle tcpdump:
// 11. the traced program binds UDP port P, exchanges datagrams, closes, and binds TCP local
//     port L to connect to a server, then closes and exits; while tracedump still lingers
//     (--linger 3), an untraced process binds the same UDP port P and connects from the same
//     local port L to the same server (the same 4-tuple): none of the later packets may be
//     in the file, every packet of the traced program must be.
// 12. the program itself gets the same UDP port again and again (1000 fresh sockets, one per query:
//     the DNS-client pattern, with only four ports to pick from in a network namespace): each
//     exchange belongs to the socket that held the port at its time, and every one is in the file.
import path from 'node:path';
import t from 'tap';
import {
  checkCapture,
  freePort,
  makeNetns,
  sh,
  portFilter,
  readRecords,
  runFlows,
  runTracedump,
  startOracle,
  startServer,
  FLOWS,
  PY,
  workDir,
  noLeftovers,
} from './helpers/capture';

for (const host of ['127.0.0.1', '::1']) {
  t.test(`${host}: UDP port and TCP 4-tuple reused by an untraced process during the linger`, async (t) => {
    const dir = workDir(t);
    const udp = await startServer(t, ['serve-udp', host, 0]);
    const tcp = await startServer(t, ['serve-tcp', host, 0]);
    const lu = freePort(host, 'udp');
    const lt = freePort(host, 'tcp');
    const oracle = await startOracle(t, { file: path.join(dir, 'oracle.pcap'), filter: portFilter([udp.port, tcp.port]) });
    const out = path.join(dir, 'out.pcap');
    const rec = path.join(dir, 'traced.jsonl');
    const otherRec = path.join(dir, 'other.jsonl');
    const args = [host, udp.port, tcp.port, lu, lt].map(String);
    let reuse: Promise<{ code: number | null; err: string }> | null = null;
    let tracedExitAt = 0;
    const run = await runTracedump(t, ['--linger', '3', '--events=json', '-w', out], [PY, FLOWS, 'reuse', ...args], {
      record: rec,
      onStderrLine: (line) => {
        // the traced program has exited (tracedump lingers): the untraced process reuses
        if (reuse || !line.startsWith('{"')) return;
        const e = JSON.parse(line);
        if (e.kind === 'exit' && e.pid === e.tid) {
          tracedExitAt = Date.now();
          reuse = runFlows(t, ['reuse', ...args], { record: otherRec });
        }
      },
    });
    const endAt = Date.now();
    const reused = await ((reuse as Promise<{ code: number | null; err: string }> | null) ?? Promise.resolve({ code: null, err: 'not started' }));
    const stats = await oracle.stop();
    t.equal(run.status, 0, `the traced program succeeded (${run.stderr.slice(-300)})`);
    t.equal(reused.code, 0, `the untraced process reused the ports (${reused.err})`);
    const traced = readRecords(rec, 'traced');
    const others = readRecords(otherRec, 'other');
    t.same(
      traced.map((r) => [r.proto, r.local.port]),
      [
        ['udp', lu],
        ['tcp', lt],
      ],
      'the traced program used UDP port P and TCP local port L',
    );
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
      tdFile: out,
      oracleFile: oracle.file,
      oracleStats: stats,
      run,
      traced,
      others,
      tcpConnections: 1,
      udpSent: 3,
      udpReceived: 3,
    });
    const reuseStart = Math.min(...others.map((o) => o.t0));
    t.same(
      r.td.packets.filter((p) => p.ms >= reuseStart).map((p) => `${p.proto} ${p.sport}>${p.dport} @${(p.ms - reuseStart).toFixed(3)}ms`),
      [],
      'no packet in the file from after the reuse began',
    );
    t.ok(r.other.length >= 16, `the oracle saw the untraced process's packets (${r.other.length})`);
  });
}

t.test('UDP ports the program itself takes again at once: every exchange kept', async (t) => {
  const dir = workDir(t);
  const net = makeNetns(t);
  t.equal(sh(`ip netns exec ${net.name} sysctl -q net.ipv4.ip_local_port_range="40000 40003"`).status, 0, 'four ephemeral ports');
  const udp = await startServer(t, ['serve-udp', '127.0.0.1', 0], { netns: net.name });
  const oracle = await startOracle(t, { file: path.join(dir, 'oracle.pcap'), filter: `udp port ${udp.port}`, iface: 'lo', netns: net.name });
  const out = path.join(dir, 'out.pcap');
  const rec = path.join(dir, 'traced.jsonl');
  const run = await runTracedump(t, ['-w', out], [PY, FLOWS, 'udp-query', '127.0.0.1', String(udp.port), '1000', 'fresh'], { record: rec, netns: net.name });
  const stats = await oracle.stop();
  t.equal(run.status, 0, `the traced program succeeded (${run.stderr.slice(-300)})`);
  const traced = readRecords(rec, 'traced');
  const ports = new Set(traced.map((r) => r.local.port));
  t.ok(traced.length === 1000 && ports.size <= 4, `1000 sockets on ${ports.size} ports`);
  checkCapture(t, { tdFile: out, oracleFile: oracle.file, oracleStats: stats, run, traced, others: [], udpSent: 1000, udpReceived: 1000 });
});

noLeftovers(t);
