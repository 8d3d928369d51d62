// Capture fidelity in a connect storm, against an oracle tcpdump: 8,000 sequential loopback
// connections (connect, 1-byte request, close) from a C client as fast as it can go.
// Two bugs hid here, each losing whole connections with "0 dropped by the kernel":
//  - the controller, busy for a while with a burst of packets, gave up on packets whose
//    tracer event it had not applied yet (it measured the wait in wall time, during which it
//    could not apply any event);
//  - a local port reused by a later connection of the program (the earlier one in
//    TIME_WAIT, which the kernel reuses on loopback) left the earlier connection judged by the
//    later socket, and rejected.
// Two untraced storms first fill TIME_WAIT, so that the traced one reuses ports.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import t from 'tap';
import { TCP_ACK, TCP_SYN, packetKey, readPcap } from './helpers/pcap';
import { captureScenario, checkReadable, noLeftovers, startBg } from './helpers/capture';

const ROOT = path.resolve(__dirname, '..');

t.test('8,000 sequential connects: every packet of every connection', async (t) => {
  const n = 8_000;
  const sc = await captureScenario(t, {
    startServers: async (dir) => {
      const bin = path.join(dir, 'workloads');
      const cc = spawnSync('gcc', ['-O2', '-pthread', '-o', bin, path.join(ROOT, 'bench', 'workloads.c')], { encoding: 'utf8' });
      t.equal(cc.status, 0, `bench/workloads.c compiles (${cc.stderr})`);
      // the sink listens on base, base+1 (UDP) and base+2 (the epoll server the connects go
      // to), below the ephemeral range; another base if those are taken
      let base = 0;
      for (let i = 0; i < 10 && !base; i++) {
        const b = 20_000 + ((process.pid + i * 997) % 4_000) * 3;
        const sink = startBg(t, [bin, 'sink', String(b)]);
        if (await sink.waitFor(/\S/, 10_000).then(() => true, () => false)) base = b;
      }
      t.ok(base, 'the sink listens');
      for (let i = 0; i < 2; i++) {
        const warm = spawnSync(bin, ['connect', String(n), String(base + 2)], { encoding: 'utf8', timeout: 60_000 });
        t.equal(warm.status, 0, `an untraced storm first (${warm.stderr})`);
      }
      return [base + 2];
    },
    oracle: { filter: ([port]) => `tcp port ${port}` },
    tdArgs: ['--linger', '0.5'],
    command: ([port], dir) => [path.join(dir, 'workloads'), 'connect', String(n), String(port)],
    timeoutMs: 180_000,
  });
  const { run, out, ports: [port] } = sc;
  const stats = sc.oracle.stats;
  t.equal(run.status, 0, `the client succeeded (${run.stderr.slice(-300)})`);
  t.equal(run.summary?.dropped, 0, 'tracedump: 0 packets dropped by the kernel');
  t.equal(stats.dropped, 0, 'the oracle dropped nothing');

  const td = readPcap(out);
  const want = readPcap(sc.oracle.file);
  const firstSyns = (f: typeof td) => f.packets.filter((p) => (p.tcpFlags & (TCP_SYN | TCP_ACK)) === TCP_SYN && p.dport === port);
  t.equal(firstSyns(want).length, n, `the oracle saw ${n} connections`);
  const reused = n - new Set(firstSyns(want).map((p) => p.sport)).size;
  t.comment(`${reused} local ports were used twice in the traced storm`);
  t.equal(firstSyns(td).length, n, `tracedump's file has all ${n} connections`);

  const count = (f: typeof td) => {
    const m = new Map<string, number>();
    for (const p of f.packets) m.set(packetKey(p), (m.get(packetKey(p)) ?? 0) + 1);
    return m;
  };
  const got = count(td);
  const missing = [...count(want)].filter(([k, c]) => (got.get(k) ?? 0) < c).map(([k]) => k);
  t.equal(td.packets.length, want.packets.length, `as many packets as the oracle (${want.packets.length})`);
  t.same(missing.slice(0, 5), [], `no packet of the oracle is missing (${missing.length} are)`);
  checkReadable(t, out, { file: sc.oracle.file, td, oracle: want });
  noLeftovers(t);
});
