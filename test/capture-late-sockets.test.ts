// Sockets the program got without a socket call tracedump stops at, against an oracle tcpdump:
// - inherited from tracedump's caller (on fd 3, and on stdin): every packet from the command's
//   start on is in the file, none from before (the caller's handshake);
// - received over a Unix socket (SCM_RIGHTS) from an untraced process and used with send();
// - made by io_uring (IORING_OP_SOCKET, CONNECT, SEND, RECV: no socket call at all).
// The last two are found by searching the fd tables: the file holds every packet from the find
// on, and what it lacks is exactly what the 'found' event, the stderr message and the summary
// say (the socket's own count of segments by then).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { CLI } from './helpers/tracedump';
import { type TdRun, FLOWS, PY, captureScenario, eventOf, makeNetns, noLeftovers, parseSummary, sh, startBg, startServer, workDir } from './helpers/capture';
import { type Packet, readPcap } from './helpers/pcap';

const HOST = '127.0.0.1';

/** A packet's identity on the wire: the same packet in both files has the same key. */
function key(p: Packet): string {
  return `${p.src}:${p.sport}>${p.dst}:${p.dport} f${p.tcpFlags} s${p.seq} a${p.ack} l${p.payloadLen}`;
}

function flowPackets(file: string, localPort: number, serverPort: number): Packet[] {
  return readPcap(file).packets.filter(
    (p) => p.proto === 'tcp' && ((p.sport === localPort && p.dport === serverPort) || (p.dport === localPort && p.sport === serverPort)),
  );
}

/** bash -c SCRIPT, bounded; its stderr parsed as tracedump's would be. */
function runShell(t: Test, script: string, env: NodeJS.ProcessEnv): Promise<TdRun> {
  const start = Date.now();
  const child = spawn('bash', ['-c', script], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c));
  child.stderr.on('data', (c: Buffer) => (err += c));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, 60_000);
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return new Promise((resolve) =>
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      const events = err.split('\n').flatMap((l) => eventOf(l) ?? []);
      resolve({ status, signal, timedOut, elapsedMs: Date.now() - start, stdout: out, stderr: err, summary: parseSummary(err), events });
    }),
  );
}

for (const fd of [3, 0]) {
  t.test(`a TCP socket inherited on fd ${fd}: captured from the command's start`, async (t) => {
    const redirect = fd === 3 ? '' : '<&3 3<&-';
    const sc = await captureScenario(t, {
      servers: [['serve-tcp', HOST, 0, 0, 'sink']],
      oracle: { filter: ([port]) => `tcp port ${port}` },
      // the caller opens the connection and tracedump's command inherits it
      run: ({ out, ports: [port] }) =>
        runShell(
          t,
          `exec 3<>/dev/tcp/${HOST}/${port} || exit 99; exec "$TD" --events=json -w "$OUT" -- ${PY} ${FLOWS} fd-send ${fd} 10 20 ${redirect}`,
          { ...process.env, TD: CLI, OUT: out },
        ),
    });
    const { run, out, oracle } = sc;
    const server = { port: sc.ports[0] };
    t.equal(run.status, 0, `the command succeeded (${run.stderr.slice(-400)})`);
    const inherited = run.events.filter((e) => e.kind === 'socket' && e.call === 'inherited');
    t.equal(inherited.length, 1, 'one socket event says the socket was inherited');
    const local = (inherited[0]?.local as { port: number } | undefined)?.port ?? -1;
    t.equal(inherited[0]?.fd, fd, `on fd ${fd}`);
    const exec = run.events.find((e) => e.kind === 'exec');
    const execAt = (exec?.time as number) ?? 0;
    const oraclePackets = flowPackets(oracle.file, local, server.port);
    const tdPackets = flowPackets(out, local, server.port);
    const expected = oraclePackets.filter((p) => p.ms >= execAt).map(key).sort();
    t.ok(expected.length >= 20, `the oracle saw the command's packets (${expected.length})`);
    t.same(tdPackets.map(key).sort(), expected, "the file holds exactly the oracle's packets from the command's start on");
    t.equal(oraclePackets.filter((p) => p.ms < execAt).length, 3, "the caller's handshake came before (not the command's)");
    t.notMatch(run.stderr, /found late/, 'nothing is said to be found late');
  });
}

interface LateCase {
  name: string;
  /** Starts the case's programs; returns the traced command. */
  setUp(t: Test, dir: string, serverPort: number): Promise<string[]>;
}

const cases: LateCase[] = [
  {
    name: 'a TCP socket received over a Unix socket (SCM_RIGHTS), used with send()',
    async setUp(t, dir, serverPort) {
      const unix = path.join(dir, 'give.sock');
      const giver = startBg(t, [PY, FLOWS, 'scm-give', unix, HOST, String(serverPort)]);
      await giver.waitFor(/^ready/m);
      return [PY, FLOWS, 'scm-take', unix, '20', '50'];
    },
  },
  {
    name: 'a TCP socket made and used through io_uring only',
    async setUp(t, dir) {
      const bin = path.join(dir, 'uring');
      const cc = spawnSync('gcc', ['-O1', '-Wall', '-o', bin, path.join(__dirname, 'fixtures', 'uring.c'), '-luring'], { encoding: 'utf8' });
      if (cc.status !== 0) throw new Error(`gcc uring.c: ${cc.stderr} (liburing-dev is installed by test/install-tools.sh)`);
      return [bin, HOST, '{PORT}', '20', '50'];
    },
  },
];

for (const c of cases) {
  t.test(`${c.name}: found, and what was missed before is said exactly`, async (t) => {
    const sc = await captureScenario(t, {
      servers: [['serve-tcp', HOST, 0, 0, 'sink']],
      oracle: { filter: ([port]) => `tcp port ${port}` },
      command: async ([port], dir) => (await c.setUp(t, dir, port)).map((a) => (a === '{PORT}' ? String(port) : a)),
      tdArgs: (_, dir) => ['--events=json', '-o', path.join(dir, 'events.jsonl')],
    });
    const { run, out, oracle } = sc;
    const server = { port: sc.ports[0] };
    const events = path.join(sc.dir, 'events.jsonl');
    t.equal(run.status, 0, `the command succeeded (${run.stderr.slice(-400)})`);
    const found = fs
      .readFileSync(events, 'utf8')
      .split('\n')
      .flatMap((l) => eventOf(l) ?? [])
      .filter((e) => e.kind === 'socket' && e.call === 'found');
    t.equal(found.length, 1, "one 'found' event");
    const e = found[0] ?? {};
    const local = (e.local as { port: number } | undefined)?.port ?? -1;
    const oraclePackets = flowPackets(oracle.file, local, server.port);
    const tdPackets = flowPackets(out, local, server.port);
    t.ok(oraclePackets.length >= 40, `the oracle saw the connection (${oraclePackets.length} packets)`);
    const inFile = new Set(tdPackets.map(key));
    const oracleKeys = new Set(oraclePackets.map(key));
    t.same(tdPackets.filter((p) => !oracleKeys.has(key(p))).map(key), [], 'every packet in the file is one the oracle saw');
    const missing = oraclePackets.filter((p) => !inFile.has(key(p)));
    const foundAt = e.time as number;
    t.same(missing.filter((p) => p.ms >= foundAt).map(key), [], 'every packet from the find on is in the file');
    t.equal(e.exchangedBefore, missing.length, `the event says how many packets came before the find (${missing.length})`);
    t.ok(tdPackets.length > 0, `the file holds the rest (${tdPackets.length})`);
    t.match(
      run.stderr,
      new RegExp(`1 socket found late \\(${missing.length} TCP packets? from before not captured\\)`),
      'the summary says so',
    );
  });
}


// An inherited ping socket has a "port" (its echo identifier) and no peer, as a listener has:
// a TCP socket found later on that local port is no connection it accepted, and is reported.
t.test('a ping socket is no listener: a TCP socket found on its identifier is reported', async (t) => {
  const dir = workDir(t);
  const net = makeNetns(t);
  t.equal(sh(`ip netns exec ${net.name} sysctl -q net.ipv4.ping_group_range="0 2147483647"`).status, 0, 'ping sockets allowed');
  const server = await startServer(t, ['serve-tcp', HOST, 0, 0, 'sink'], { netns: net.name });
  const ident = 40123;
  const unix = path.join(dir, 'give.sock');
  // the giver connects from local port `ident` and hands the socket over
  const giver = startBg(t, [
    'ip', 'netns', 'exec', net.name, PY, '-c',
    `import socket; u = socket.socket(socket.AF_UNIX); u.bind('${unix}'); u.listen(1); print('ready', flush=True); c, _ = u.accept()
s = socket.socket(); s.bind(('${HOST}', ${ident})); s.connect(('${HOST}', ${server.port})); socket.send_fds(c, [b'fd'], [s.fileno()]); s.close(); c.close()`,
  ]);
  await giver.waitFor(/^ready/m);
  const events = path.join(dir, 'events.jsonl');
  // tracedump's caller holds a ping socket bound to identifier `ident` on fd 3: inherited
  const run = await runShell(
    t,
    `exec ip netns exec ${net.name} ${PY} -c "
import os, socket
p = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP); p.bind(('${HOST}', ${ident}))
os.dup2(p.fileno(), 3); os.set_inheritable(3, True)
os.execv('${CLI}', ['tracedump', '--events=json', '-o', '${events}', '-w', '${path.join(dir, 'out.pcap')}', '--', '${PY}', '${FLOWS}', 'scm-take', '${unix}', '20', '50'])
"`,
    process.env,
  );
  t.equal(run.status, 0, `the command succeeded (${run.stderr.slice(-400)})`);
  const all = fs.readFileSync(events, 'utf8').split('\n').flatMap((l) => eventOf(l) ?? []);
  t.ok(all.some((e) => e.kind === 'socket' && e.call === 'inherited' && e.proto === 'icmp'), 'the ping socket was inherited');
  const found = all.filter((e) => e.kind === 'socket' && e.call === 'found');
  t.same(found.map((e) => (e.local as { port: number }).port), [ident], `the TCP socket on port ${ident} is reported found`);
});

noLeftovers(t);
