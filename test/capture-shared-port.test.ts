// A UDP port the program shares with an untraced process (both bind it with SO_REUSEPORT), and
// clients sending to it from fresh ports, against an oracle tcpdump: the kernel gives each
// datagram to one of the two, and which one cannot be known from outside. tracedump says so
// (stderr or an event naming the other process, the summary), keeps every datagram received on
// the port with a pcapng comment on each, and keeps exactly the program's own answers.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import t from 'tap';
import { FLOWS, PY, captureScenario, freePort, noLeftovers, runFlows, sleep, startServer, startTracedump } from './helpers/capture';
import { readPcap } from './helpers/pcap';

t.test('a UDP port shared with an untraced process (SO_REUSEPORT)', async (t) => {
  let other: Awaited<ReturnType<typeof startServer>> | undefined;
  const sc = await captureScenario(t, {
    startServers: async (_dir, record) => {
      const port = freePort('127.0.0.1', 'udp');
      other = await startServer(t, ['serve-udp-reuseport', '127.0.0.1', port, 4], { record });
      return [port];
    },
    oracle: { filter: ([port]) => `udp port ${port}`, iface: 'lo' },
    file: 'out.pcapng',
    // the traced server takes the port too; once it listens and a sweep has seen the other
    // socket on the port (every 250 ms), a client sends from fresh ports
    run: async ({ out, record, ports: [port] }) => {
      let ready = false;
      const td = startTracedump(t, ['--events=json', '-w', out, '--', PY, FLOWS, 'serve-udp-reuseport', '127.0.0.1', String(port), '4'], {
        env: { ...process.env, FLOWS_RECORD: record },
        onStdout: (all) => (ready = ready || /^ready/m.test(all)),
      });
      for (let i = 0; i < 200 && !ready; i++) await sleep(50);
      t.ok(ready, 'the traced server listens');
      await sleep(800);
      const client = await runFlows(t, ['udp-query', '127.0.0.1', port, 80, 'fresh']);
      t.equal(client.code, 0, `the client got its 80 answers (${client.err})`);
      const run = await td.done;
      await other?.bg.exited;
      return run;
    },
  });
  const { run, out, oracle } = sc;
  const port = sc.ports[0];
  const otherPid = other?.bg.pid ?? -1;
  t.equal(run.status, 0, `the traced server ended (${run.stderr.slice(-300)})`);
  const traced = sc.traced[0]?.n ?? -1;
  const untraced = sc.others[0]?.n ?? -1;
  t.equal(traced + untraced, 80, `the kernel spread the 80 queries: ${traced} to the traced server, ${untraced} to the other`);
  t.ok(traced > 0 && untraced > 0, 'both got some');

  const warning = run.events.find((e) => e.kind === 'warning' && /is shared with/.test(String(e.message)));
  t.match(String(warning?.message), new RegExp(`UDP port ${port} is shared with pid ${otherPid} \\(python3\\) \\(SO_REUSEPORT\\)`), 'a warning event names the other process');
  t.match(run.stderr, /, 1 port shared with another process \(its received packets may be that one's\);/, 'the summary says so');

  const seen = readPcap(oracle.file).packets.filter((p) => p.proto === 'udp');
  t.equal(seen.filter((p) => p.dport === port).length, 80, 'the oracle saw 80 queries');
  t.equal(seen.filter((p) => p.sport === port).length, 80, 'and 80 answers');
  const fields = spawnSync('tshark', ['-r', out, '-Y', 'udp', '-T', 'fields', '-E', 'separator=|', '-e', 'udp.srcport', '-e', 'udp.dstport', '-e', 'frame.comment'], {
    encoding: 'utf8',
  });
  const rows = fields.stdout
    .split('\n')
    .filter((l) => l)
    .map((l) => l.split('|'));
  const queries = rows.filter((r) => Number(r[1]) === port);
  const answers = rows.filter((r) => Number(r[0]) === port);
  t.equal(queries.length, 80, `every query received on the shared port is in the file (${fields.stderr})`);
  t.equal(answers.length, traced, "the file holds exactly the traced server's answers");
  t.ok(
    queries.every((r) => r[2].includes(`UDP port ${port} is shared with pid ${otherPid}`)),
    `each query carries the comment (${queries[0]?.[2]})`,
  );
  t.notOk(
    answers.some((r) => r[2].includes('is shared')),
    'the answers, sent by the program, do not',
  );
  t.ok(
    fs.readFileSync(out).includes("Not in this capture: 1 port shared with another process (its received packets may be that one's)"),
    "the file's statistics block says it too",
  );
});

noLeftovers(t);
