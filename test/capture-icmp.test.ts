// ICMP echo, against an oracle tcpdump, in a network namespace that lets every group open ping
// sockets (net.ipv4.ping_group_range):
// - through ping sockets (SOCK_DGRAM, IPPROTO_ICMP / IPPROTO_ICMPV6), IPv4 and IPv6: every
//   request and reply of the program is in the file, none of an untraced process pinging the
//   same host at the same time (the echo identifier is the socket's "port");
// - through a raw socket (root): not captured, and said so on stderr and in the summary.
import path from 'node:path';
import t from 'tap';
import { FLOWS, PY, captureScenario, makeNetns, noLeftovers, runFlows, runTracedump, sh, workDir } from './helpers/capture';
import { type Packet, readPcap } from './helpers/pcap';

const echoes = (file: string) => readPcap(file).packets.filter((p: Packet) => p.proto === 'icmp' || p.proto === 'icmp6');
const ident = (p: Packet) => p.ip.readUInt16BE(p.ipVersion === 4 ? (p.ip[0] & 0x0f) * 4 + 4 : 44);

for (const host of ['127.0.0.1', '::1']) {
  t.test(`${host}: echoes of a ping socket, beside an untraced pinger`, async (t) => {
    const net = makeNetns(t);
    t.equal(sh(`ip netns exec ${net.name} sysctl -q net.ipv4.ping_group_range="0 2147483647"`).status, 0, 'ping sockets allowed');
    const sc = await captureScenario(t, {
      netns: { name: net.name, capture: true },
      oracle: { filter: () => 'icmp or icmp6' },
      others: { start: () => [runFlows(t, ['ping', host, '20', 'dgram'], { netns: net.name })] },
      command: () => [PY, FLOWS, 'ping', host, '20', 'dgram'],
    });
    const { run, out, oracle } = sc;
    const other = sc.othersDone[0];
    t.equal(run.status, 0, `the traced pinger succeeded (${run.stderr.slice(-300)})`);
    t.equal(other?.code, 0, `the untraced pinger succeeded (${other?.err})`);
    const inFile = echoes(out);
    const seen = echoes(oracle.file).filter((p) => p.src === p.dst); // loopback: each packet once
    const ids = new Set(inFile.map(ident));
    t.equal(ids.size, 1, `one echo identifier in the file (${[...ids]})`);
    const id = [...ids][0];
    const program = seen.filter((p) => ident(p) === id);
    t.equal(program.length, 40, "the oracle saw the program's 20 requests and 20 replies");
    t.ok(seen.length - program.length >= 40, `and the untraced pinger's (${seen.length - program.length})`);
    t.same(inFile.map((p) => p.ip.toString('hex')).sort(), program.map((p) => p.ip.toString('hex')).sort(), "the file holds exactly the program's echoes");
  });
}

t.test('a raw ICMP socket: not captured, and said so', async (t) => {
  const dir = workDir(t);
  const net = makeNetns(t);
  const out = path.join(dir, 'out.pcap');
  const run = await runTracedump(t, ['-w', out], [PY, FLOWS, 'ping', '127.0.0.1', '3', 'raw'], { netns: net.name });
  t.equal(run.status, 0, `the program succeeded (${run.stderr.slice(-300)})`);
  t.match(run.stderr, /pid \d+ \(python3\): raw ICMP socket fd \d+: its packets are not captured/, 'stderr names the raw socket');
  t.match(run.summary?.line ?? '', /, 1 raw socket not captured;/, 'the summary counts it');
});

noLeftovers(t);
