// `tracedump read`: files written by tracedump itself (pcap and pcapng: the pid and command
// columns must name the client that made the packets), by tcpdump (microseconds and
// nanoseconds), by dumpcap and by tshark/editcap (pcapng), crafted files (big-endian pcap and
// pcapng, several sections, default and binary timestamp resolutions, Simple and obsolete
// Packet Blocks, unknown blocks, link types NULL/LOOP/Ethernet/RAW/SLL/SLL2), --json,
// --pid/--comm/-c, a file cut short in the middle of a packet and files that are no capture.
// tshark reading the same file is the oracle for every field it also shows.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { type Block, pcapngBlocks } from './helpers/pcapng-blocks';
import { decode, tcpFlagString } from '../src/read/decode';
import { ipv6Text } from '../src/packet/address';
import { CaptureReader, ReadError } from '../src/read/reader';
import { type JsonPacket, epochText, processInfo } from '../src/read/print';
import { ip4, ip6, tcp, udp, icmp } from './helpers/unit-packets';
import { CLI } from './helpers/tracedump';

const ROOT = path.resolve(__dirname, '..');
const PY = '/usr/bin/python3';
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tracedump-read-'));
t.teardown(() => {
  if (!process.env.TRACEDUMP_KEEP_TMP) fs.rmSync(dir, { recursive: true, force: true });
});

// Every process this file starts, killed at teardown if it is still there.
const started = new Set<ChildProcess>();
t.teardown(() => {
  for (const c of started) if (c.exitCode === null && c.signalCode === null && c.pid) {
    try {
      process.kill(c.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** `tracedump read ARGS`, through the shipped entry point. */
function read(args: string[], env: NodeJS.ProcessEnv = {}): Run {
  const r = spawnSync(CLI, ['read', ...args], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, TZ: 'UTC', ...env },
    maxBuffer: 64 << 20,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const lines = (s: string) => s.split('\n').filter((l) => l.length > 0);

type J = JsonPacket;

const JSON_KEYS = [
  'frame',
  'time',
  'pid',
  'tid',
  'comm',
  'exe',
  'direction',
  'iface',
  'ifindex',
  'proto',
  'src',
  'sport',
  'dst',
  'dport',
  'len',
  'iplen',
  'caplen',
  'flags',
  'info',
  'quoted',
];

function readJson(t: Test, file: string, extra: string[] = []): J[] {
  const r = read(['--json', ...extra, file]);
  t.equal(r.status, 0, `read --json ${file}: exit 0 ${r.stderr}`);
  t.equal(r.stderr, '', 'nothing on stderr');
  return lines(r.stdout).map((l) => {
    const v = JSON.parse(l) as J;
    return v;
  });
}

// ---- the oracle: tshark's view of a file -------------------------------------------------

interface Shark {
  time: string;
  proto: number;
  src: string;
  dst: string;
  sport: number | null;
  dport: number | null;
  /** tcpdump's length: the TCP or UDP payload, else the IP payload; null when tshark cannot tell */
  len: number | null;
  iplen: number;
  flags: string | null;
}

function tshark(file: string): Shark[] {
  const fields = ['frame.time_epoch', 'ip.src', 'ipv6.src', 'ip.dst', 'ipv6.dst', 'ip.proto', 'ipv6.nxt', 'tcp.srcport', 'udp.srcport', 'tcp.dstport', 'udp.dstport', 'ip.len', 'ipv6.plen', 'tcp.flags', 'ip.hdr_len', 'tcp.len', 'udp.length'];
  const r = spawnSync('tshark', ['-n', '-r', file, '-T', 'fields', '-E', 'separator=\t', '-E', 'occurrence=f', ...fields.flatMap((f) => ['-e', f])], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (r.status !== 0) throw new Error(`tshark -r ${file}: ${r.stderr}`);
  return lines(r.stdout).map((l) => {
    const [time, s4, s6, d4, d6, p4, p6, ts, us, td, ud, l4, l6, fl, hl, tl, ul] = l.split('\t');
    const proto = Number(p4 || p6);
    const ported = proto === 6 || proto === 17;
    const iplen = l4 ? Number(l4) : 40 + Number(l6);
    const ipPayload = l4 ? iplen - Number(hl) : Number(l6);
    return {
      time,
      proto,
      src: s4 || s6,
      dst: d4 || d6,
      sport: ported ? Number(ts || us) : null,
      dport: ported ? Number(td || ud) : null,
      // a TCP header not captured: tshark has no tcp.len (read gives the IP payload then)
      len: proto === 6 ? (tl === '' ? null : Number(tl)) : proto === 17 ? Number(ul) - 8 : ipPayload,
      iplen,
      flags: fl ? tcpFlagString(Number(fl) & 0xff) : null,
    };
  });
}

/** Every packet read equals tshark's reading of it. */
function sameAsTshark(t: Test, file: string, got: J[]): void {
  const want = tshark(file);
  t.equal(got.length, want.length, `${path.basename(file)}: as many packets as tshark reads (${want.length})`);
  let bad = 0;
  for (let i = 0; i < Math.min(got.length, want.length); i++) {
    const g = got[i];
    const w = want[i];
    const mine = { time: g.time, src: g.src, dst: g.dst, sport: g.sport, dport: g.dport, len: g.len, iplen: g.iplen, flags: g.flags };
    const theirs = { time: w.time, src: w.src, dst: w.dst, sport: w.sport, dport: w.dport, len: w.len ?? g.len, iplen: w.iplen, flags: w.flags };
    if (JSON.stringify(mine) !== JSON.stringify(theirs)) {
      if (bad++ < 5) t.same(mine, theirs, `${path.basename(file)} frame ${i + 1} as tshark reads it`);
    }
    t.equal(g.frame, i + 1);
  }
  t.equal(bad, 0, `${path.basename(file)}: every packet's time, endpoints, length and flags as tshark reads them`);
}

/** The decoded packets without their time, direction and process: the same whoever captured them. */
const wireKey = (j: J) => `${j.proto} ${j.src}:${j.sport} > ${j.dst}:${j.dport} len ${j.len} [${j.flags}] ${j.info ?? ''}`;

function multiset(keys: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const k of keys) m.set(k, (m.get(k) ?? 0) + 1);
  return m;
}

// ---- live files: a server, clients under tracedump, tcpdump/dumpcap beside them ------------

const SERVER = `
import socket, threading
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(('127.0.0.1', 0))
t.listen(16)
u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
u.bind(('::1', 0))
def free_port():
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.bind(('127.0.0.1', 0))
    port = c.getsockname()[1]
    c.close()
    return port
closed, probe = free_port(), free_port()
def serve_tcp():
    while True:
        conn, _ = t.accept()
        data = conn.recv(100)
        conn.sendall(b'echo:' + data)
        conn.close()
def serve_udp():
    while True:
        d, a = u.recvfrom(2000)
        u.sendto(b'echo:' + d, a)
threading.Thread(target=serve_tcp, daemon=True).start()
threading.Thread(target=serve_udp, daemon=True).start()
print(t.getsockname()[1], u.getsockname()[1], closed, probe, flush=True)
threading.Event().wait(120)
`;

// One TCP connection (127.0.0.1), one UDP question and answer (::1), one datagram to a closed
// port (answered by ICMP port unreachable); prints its pid.
const CLIENT = `
import os, socket, sys, time
tp, up, cp = (int(x) for x in sys.argv[1:4])
c = socket.create_connection(('127.0.0.1', tp), timeout=5)
c.sendall(b'hello')
while c.recv(100):
    pass
c.close()
u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
u.settimeout(5)
u.sendto(b'ping', ('::1', up))
u.recvfrom(100)
u.close()
e = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
e.sendto(b'x', ('127.0.0.1', cp))
time.sleep(0.05)
e.close()
print('client', os.getpid(), flush=True)
`;

function startProcess(cmd: string, args: string[]): ChildProcess {
  const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  started.add(c);
  return c;
}

/** Resolves with the first line of the stream that matches, or rejects after ms. */
function waitFor(c: ChildProcess, stream: 'stdout' | 'stderr', re: RegExp, ms: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`${c.spawnfile}: no ${re} on ${stream} within ${ms} ms: ${text}`)), ms);
    c[stream]!.on('data', (d: Buffer) => {
      text += d;
      const m = re.exec(text);
      if (m) {
        clearTimeout(timer);
        resolve(m[0]);
      }
    });
    c.on('exit', () => {
      clearTimeout(timer);
      if (!re.test(text)) reject(new Error(`${c.spawnfile} exited: ${text}`));
    });
  });
}

/** Polls cond every 20 ms until it holds; rejects after ms. */
async function waitUntil(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`not ready within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Stops a process with a signal; SIGKILL if it has not exited after ms. */
function stop(c: ChildProcess, signal: NodeJS.Signals, ms = 10_000): Promise<void> {
  return new Promise((resolve) => {
    if (c.exitCode !== null || c.signalCode !== null) return resolve();
    const timer = setTimeout(() => c.pid && process.kill(c.pid, 'SIGKILL'), ms);
    c.on('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    if (c.pid) process.kill(c.pid, signal);
  });
}

function runTracedump(file: string, ports: string[]): { pids: number[]; status: number | null; stderr: string } {
  const client = path.join(dir, 'client.py');
  const one = `${PY} ${client} ${ports.join(' ')}`;
  const r = spawnSync(CLI, ['-q', '--linger', '0.5', '-w', file, '--', '/bin/sh', '-c', `${one} && ${one}`], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  const pids = [...r.stdout.matchAll(/client (\d+)/g)].map((m) => Number(m[1]));
  return { pids, status: r.status, stderr: r.stderr };
}

const live: {
  ports: string[];
  pcap: string;
  pcapng: string;
  pcapPids: number[];
  pcapngPids: number[];
  tcpdumpUs: string;
  tcpdumpNs: string;
  dumpcap?: string;
  /** Where the readiness probes go: their packets are in the oracles' files only. */
  probePort: number;
} = { ports: [], pcap: '', pcapng: '', pcapPids: [], pcapngPids: [], tcpdumpUs: '', tcpdumpNs: '', probePort: 0 };

/** The packets of the clients: without the readiness probes. */
const clientPackets = (js: J[]) => js.filter((j) => j.dport !== live.probePort);

t.before(async () => {
  fs.writeFileSync(path.join(dir, 'client.py'), CLIENT);
  const server = startProcess(PY, ['-c', SERVER]);
  const ports = (await waitFor(server, 'stdout', /^\d+ \d+ \d+ \d+\n/, 10_000)).trim().split(' ');
  live.ports = ports.slice(0, 3);
  const [tp, up, cp, pp] = ports;
  live.probePort = Number(pp);
  // the oracles: the test's ports, the ICMP error quoting the closed port, and probes
  const filter = `tcp port ${tp} or udp port ${up} or udp port ${cp} or (icmp and icmp[30:2] = ${cp}) or udp dst port ${pp}`;
  live.tcpdumpUs = path.join(dir, 'tcpdump-us.pcap');
  live.tcpdumpNs = path.join(dir, 'tcpdump-ns.pcap');
  const oracles = [
    startProcess('tcpdump', ['-i', 'lo', '-n', '-U', '-w', live.tcpdumpUs, filter]),
    startProcess('tcpdump', ['-i', 'lo', '-n', '-U', '--time-stamp-precision', 'nano', '-w', live.tcpdumpNs, filter]),
  ];
  // "listening on" comes before the capture is live: send probe datagrams until each oracle
  // has one (tcpdump -U writes it at once; dumpcap counts its packets on stderr)
  let dumpcapPackets = 0; // as dumpcap counts them on stderr
  const ready = oracles.map((o, i) =>
    waitFor(o, 'stderr', /listening on/, 10_000).then(() => waitUntil(() => fs.statSync(i ? live.tcpdumpNs : live.tcpdumpUs).size > 24, 10_000)),
  );
  if (spawnSync('which', ['dumpcap']).status === 0) {
    live.dumpcap = path.join(dir, 'dumpcap.pcapng');
    const d = startProcess('dumpcap', ['-i', 'lo', '-f', filter, '-w', live.dumpcap]);
    d.stderr!.on('data', (b: Buffer) => {
      const m = [...String(b).matchAll(/Packets: (\d+)/g)].pop();
      if (m) dumpcapPackets = Number(m[1]);
    });
    oracles.push(d);
    ready.push(waitFor(d, 'stderr', /Packets: [1-9]/, 10_000).then(() => undefined));
  }
  const probe = dgram.createSocket('udp4');
  const probing = async (until: Promise<unknown>[]) => {
    const timer = setInterval(() => probe.send('probe', live.probePort, '127.0.0.1'), 50);
    try {
      await Promise.all(until);
    } finally {
      clearInterval(timer);
    }
  };
  try {
    await probing(ready);
  } catch (err) {
    probe.close();
    throw err;
  }
  live.pcap = path.join(dir, 'tracedump.pcap');
  live.pcapng = path.join(dir, 'tracedump.pcapng');
  const a = runTracedump(live.pcap, live.ports);
  const b = runTracedump(live.pcapng, live.ports);
  // Probes again until every oracle has written one sent after the runs: libpcap hands over a
  // ring block up to a second after its first packet, and what is still in the ring at SIGINT
  // is lost (the last client's packets were, now and then, after a fixed 300 ms).
  const sizes = [live.tcpdumpUs, live.tcpdumpNs].map((f) => fs.statSync(f).size);
  const counted = dumpcapPackets;
  try {
    await probing([
      waitUntil(() => fs.statSync(live.tcpdumpUs).size > sizes[0], 10_000),
      waitUntil(() => fs.statSync(live.tcpdumpNs).size > sizes[1], 10_000),
      ...(live.dumpcap ? [waitUntil(() => dumpcapPackets > counted, 10_000)] : []),
    ]);
  } finally {
    probe.close();
  }
  for (const o of oracles) await stop(o, 'SIGINT');
  await stop(server, 'SIGKILL');
  if (a.status !== 0 || b.status !== 0 || a.pids.length !== 2 || b.pids.length !== 2)
    throw new Error(`tracedump runs failed: ${a.status} ${a.stderr} / ${b.status} ${b.stderr}`);
  live.pcapPids = a.pids;
  live.pcapngPids = b.pids;
});

/** Packets of one client run: TCP handshake..FIN, the UDP question and answer, the datagram and its ICMP. */
function checkRun(t: Test, js: J[], name: string): void {
  const [tp, up, cp] = live.ports.map(Number);
  const tcpPkts = js.filter((j) => j.proto === 'tcp');
  t.ok(tcpPkts.length >= 8, `${name}: the TCP connection (${tcpPkts.length} packets)`);
  t.equal(tcpPkts[0]?.flags, 'S', `${name}: it starts with the SYN`);
  t.equal(tcpPkts[0]?.dport, tp);
  t.equal(tcpPkts[0]?.dst, '127.0.0.1');
  t.equal(tcpPkts[1]?.flags, 'SA', 'then the SYN/ACK');
  t.ok(tcpPkts.some((j) => j.flags === 'PA' && j.len === 5 && j.iplen === 20 + 32 + 5), 'the 5-byte request, with PSH (len: the payload)');
  t.ok(tcpPkts.some((j) => j.flags?.includes('F')), 'a FIN');
  const udpPkts = js.filter((j) => j.proto === 'udp' && (j.dport === up || j.sport === up));
  t.equal(udpPkts.length, 2, `${name}: the UDP question and answer`);
  t.equal(udpPkts[0]?.dst, '::1');
  t.equal(udpPkts[0]?.len, 4, 'len: the UDP payload, "ping"');
  t.equal(udpPkts[0]?.iplen, 40 + 8 + 4, 'IPv6 length: header, UDP header, "ping"');
  const icmps = js.filter((j) => j.proto === 'icmp');
  t.equal(icmps.length, 1, `${name}: the ICMP error`);
  t.equal(icmps[0]?.info, 'port unreachable');
  t.same(icmps[0]?.quoted?.dport, cp, 'quoting the datagram to the closed port');
  t.equal(icmps[0]?.sport, null, 'ICMP has no ports');
}

t.test('a pcapng written by tracedump: pid, tid, comm and exe of the client on every packet', async (t) => {
  const js = readJson(t, live.pcapng);
  sameAsTshark(t, live.pcapng, js);
  const [p1, p2] = live.pcapngPids;
  const exe = fs.realpathSync(PY);
  for (const j of js) {
    t.same(Object.keys(j), JSON_KEYS, 'every field, in order');
    if (!(j.pid === p1 || j.pid === p2)) t.fail(`frame ${j.frame}: pid ${j.pid}, not a client's`);
    if (j.tid !== j.pid) t.fail(`frame ${j.frame}: tid ${j.tid} (single-threaded clients)`);
    if (j.comm !== 'python3') t.fail(`frame ${j.frame}: comm ${j.comm}`);
    if (j.exe !== exe) t.fail(`frame ${j.frame}: exe ${j.exe}`);
    if (j.iface !== 'lo' || j.ifindex !== 1) t.fail(`frame ${j.frame}: iface ${j.iface} ${j.ifindex}`);
    if (j.direction !== 'in' && j.direction !== 'out') t.fail(`frame ${j.frame}: direction ${j.direction}`);
    if (!/^\d{10}\.\d{9}$/.test(j.time ?? '')) t.fail(`frame ${j.frame}: time ${j.time}`);
    if (j.caplen !== j.iplen) t.fail(`frame ${j.frame}: caplen ${j.caplen} != iplen ${j.iplen}`);
  }
  checkRun(t, js.filter((j) => j.pid === p1), 'first client');
  checkRun(t, js.filter((j) => j.pid === p2), 'second client');

  // the text lines: the same packets, the pid and command columns, local time with ns
  const r = read([live.pcapng]);
  t.equal(r.status, 0);
  const text = lines(r.stdout);
  t.equal(text.length, js.length, 'one text line per packet');
  const LINE = /^ *(\d+) (\d\d:\d\d:\d\d\.\d{9}) +(\d+) (\S+) +(in |out) (\S+) +(\S+) > (\S+) len (\d+)(?: \[([A-Z]+)\])?/;
  text.forEach((l, i) => {
    const f = LINE.exec(l);
    if (!f) return t.fail(`line ${i + 1} has the format: ${l}`);
    const j = js[i];
    if (Number(f[1]) !== j.frame) t.fail(`line ${i + 1}: frame ${f[1]} vs ${j.frame}`);
    const m = f.slice(1);
    const d = new Date(Number(j.time!.split('.')[0]) * 1000);
    const hms = d.toISOString().slice(11, 19); // TZ=UTC
    if (m[1] !== `${hms}.${j.time!.split('.')[1]}`) t.fail(`line ${i + 1}: time ${m[1]} vs ${j.time}`);
    if (Number(m[2]) !== j.pid || m[3] !== 'python3' || Number(m[8]) !== j.len || (m[9] ?? null) !== (j.flags === '' ? null : j.flags))
      t.fail(`line ${i + 1} disagrees with its JSON: ${l}`);
  });
  // columns are aligned: the pid ends, the command and the direction start at the same place
  t.equal(new Set(text.map((l) => l.indexOf(' python3 '))).size, 1, 'the command column is aligned');
  t.ok(text.some((l) => / udp   \[::1\]:\d+ > \[::1\]:\d+ len 4$/.test(l)), 'IPv6 endpoints as [addr]:port');
  t.ok(text.some((l) => / icmp  127\.0\.0\.1 > 127\.0\.0\.1 len \d+ port unreachable for udp 127\.0\.0\.1:\d+ > 127\.0\.0\.1:\d+$/.test(l)), 'the ICMP error and what it answers');
  t.match(text[0], new RegExp(`^    1 \\d\\d:\\d\\d:\\d\\d\\.\\d{9} +${p1} python3 {9}out tcp   127\\.0\\.0\\.1:\\d+ > 127\\.0\\.0\\.1:${live.ports[0]} len 0 \\[S\\]$`), 'the SYN line: frame 1, sent by the program');
});

t.test('the time column is the local time of the reader', async (t) => {
  const utc = lines(read(['--no-number', '-c', '1', live.pcapng]).stdout)[0];
  const kolkata = lines(read(['--no-number', '-c', '1', live.pcapng], { TZ: 'Asia/Kolkata' }).stdout)[0];
  const secs = (l: string) => {
    const [h, m, s] = l.slice(0, 8).split(':').map(Number);
    return h * 3600 + m * 60 + s;
  };
  t.equal((secs(kolkata) - secs(utc) + 86400) % 86400, 5.5 * 3600, '+05:30 in Asia/Kolkata');
  t.equal(kolkata.slice(8), utc.slice(8), 'the rest of the line is the same');
});

t.test('--pid, --comm and -c select packets', async (t) => {
  const all = readJson(t, live.pcapng);
  const [p1, p2] = live.pcapngPids;
  const n1 = all.filter((j) => j.pid === p1).length;
  const n2 = all.filter((j) => j.pid === p2).length;
  t.ok(n1 > 0 && n2 > 0 && n1 + n2 === all.length);
  const only1 = readJson(t, live.pcapng, ['--pid', String(p1)]);
  t.equal(only1.length, n1, '--pid P: only its packets');
  t.ok(only1.every((j) => j.pid === p1));
  t.same(only1.map((j) => j.frame), all.filter((j) => j.pid === p1).map((j) => j.frame), 'frame numbers stay those of the file');
  t.equal(readJson(t, live.pcapng, ['--pid', `${p1},${p2}`]).length, all.length, '--pid P1,P2');
  t.equal(readJson(t, live.pcapng, ['--pid', String(p1), '--pid', String(p2)]).length, all.length, '--pid P1 --pid P2');
  t.equal(readJson(t, live.pcapng, ['--pid', '1']).length, 0, 'a pid with no packets: none');
  t.equal(readJson(t, live.pcapng, ['--comm', 'python3']).length, all.length, '--comm python3');
  t.equal(readJson(t, live.pcapng, ['--comm', 'sh']).length, 0, '--comm sh: the shell sent nothing');
  t.equal(readJson(t, live.pcapng, ['--comm', 'python3', '--pid', String(p2)]).length, n2, '--comm and --pid together: both must hold');
  t.equal(readJson(t, live.pcapng, ['-c', '3']).length, 3, '-c 3');
  t.same(readJson(t, live.pcapng, ['--pid', String(p2), '-c', '2']).map((j) => j.frame), all.filter((j) => j.pid === p2).slice(0, 2).map((j) => j.frame), '-c counts printed packets');
  t.equal(lines(read(['--pid', String(p2), live.pcapng]).stdout).length, n2, 'text too');
  t.equal(readJson(t, live.pcap, ['--pid', String(live.pcapPids[0])]).length, 0, 'a pcap has no process: --pid selects nothing');
  const bad = read(['--pid', 'abc', live.pcapng]);
  t.equal(bad.status, 2, 'a bad --pid: exit 2');
  t.match(bad.stderr, /abc/);
  t.equal(read(['-c', '0', live.pcapng]).status, 2, '-c 0 is refused');
  t.equal(read([]).status, 2, 'no file: exit 2');
  t.equal(read(['--help']).status, 0, '--help');
});

t.test('a pcap written by tracedump: no process columns', async (t) => {
  const js = readJson(t, live.pcap);
  sameAsTshark(t, live.pcap, js);
  t.ok(js.every((j) => j.pid === null && j.tid === null && j.comm === null && j.exe === null && j.iface === null));
  t.ok(js.every((j) => j.ifindex === 1 && j.direction !== null), 'SLL2 gives the interface index and the direction');
  // the two client runs follow each other: split them at the second SYN to the server
  const syns = js.filter((j) => j.flags === 'S').map((j) => js.indexOf(j));
  t.equal(syns.length, 2, 'two connections');
  checkRun(t, js.slice(0, syns[1]), 'first client');
  checkRun(t, js.slice(syns[1]), 'second client');
  const text = lines(read([live.pcap]).stdout);
  t.equal(text.length, js.length);
  t.ok(text.every((l) => /^ +\d+ \d\d:\d\d:\d\d\.\d{9} {7}- - {15}(in |out) /.test(l)), `pid and command columns show '-': ${text[0]}`);
});

t.test('pcap written by tcpdump, microseconds and nanoseconds', async (t) => {
  const us = readJson(t, live.tcpdumpUs);
  sameAsTshark(t, live.tcpdumpUs, us);
  const ns = readJson(t, live.tcpdumpNs);
  sameAsTshark(t, live.tcpdumpNs, ns);
  t.ok(us.every((j) => j.time!.endsWith('000')), 'microsecond times');
  t.ok(ns.some((j) => !j.time!.endsWith('000')), 'nanosecond times');
  t.ok(us.every((j) => j.direction === null && j.ifindex === null && j.pid === null), 'Ethernet on lo: no direction, no process');
  const usText = lines(read([live.tcpdumpUs]).stdout);
  t.equal(usText.length, us.length);
  t.match(usText[us.findIndex((j) => j.flags === 'S')], /^ +\d+ \d\d:\d\d:\d\d\.\d{6} {7}- - {15}-   tcp   127\.0\.0\.1:\d+ > 127\.0\.0\.1:\d+ len 0 \[S\]$/, 'a microsecond time column');
  t.match(lines(read([live.tcpdumpNs]).stdout)[0], /^    1 \d\d:\d\d:\d\d\.\d{9} /, 'a nanosecond time column');
  // the same packets as tracedump wrote (tcpdump saw both tracedump runs: four clients)
  const mine = [...readJson(t, live.pcap), ...readJson(t, live.pcapng)];
  t.same(multiset(clientPackets(us).map(wireKey)), multiset(mine.map(wireKey)), 'tcpdump (Ethernet) and tracedump (SLL2) files decode to the same packets');
  t.same(multiset(clientPackets(ns).map(wireKey)), multiset(mine.map(wireKey)), 'the nanosecond file too');
});

t.test('pcapng written by dumpcap, and converted by tshark and editcap', async (t) => {
  const files: string[] = [];
  if (live.dumpcap) files.push(live.dumpcap);
  else t.comment('no dumpcap: only converted files');
  const tsharked = path.join(dir, 'tshark.pcapng');
  let r = spawnSync('tshark', ['-r', live.tcpdumpNs, '-F', 'pcapng', '-w', tsharked], { encoding: 'utf8', timeout: 60_000 });
  t.equal(r.status, 0, r.stderr);
  files.push(tsharked);
  const edited = path.join(dir, 'editcap-us.pcapng');
  r = spawnSync('editcap', ['-F', 'pcapng', live.tcpdumpUs, edited], { encoding: 'utf8', timeout: 60_000 });
  t.equal(r.status, 0, r.stderr);
  files.push(edited);
  // tracedump's own pcapng, rewritten by editcap (Wireshark's own block layout)
  const rewritten = path.join(dir, 'editcap-tracedump.pcapng');
  r = spawnSync('editcap', ['-F', 'pcapng', live.pcapng, rewritten], { encoding: 'utf8', timeout: 60_000 });
  t.equal(r.status, 0, r.stderr);
  files.push(rewritten);
  const want = multiset(clientPackets(readJson(t, live.tcpdumpUs)).map(wireKey));
  for (const f of files) {
    const js = readJson(t, f);
    sameAsTshark(t, f, js);
    if (f !== rewritten) t.same(multiset(clientPackets(js).map(wireKey)), want, `${path.basename(f)}: the packets tcpdump captured`);
  }
  const us = readJson(t, edited);
  t.ok(us.every((j) => j.time!.endsWith('000')), 'editcap from a microsecond pcap: microsecond times');
  t.match(lines(read([edited]).stdout)[0], /^    1 \d\d:\d\d:\d\d\.\d{6} /, 'six digits in the time column');
  if (live.dumpcap) {
    const d = readJson(t, live.dumpcap);
    t.ok(d.every((j) => j.iface === 'lo'), 'dumpcap names the interface');
  }
  // the comment survives editcap, so the process columns do too (pid from the comment when
  // the Wireshark version does not keep option 8)
  const re = readJson(t, rewritten);
  const orig = readJson(t, live.pcapng);
  t.same(re.map((j) => [j.pid, j.comm, j.exe]), orig.map((j) => [j.pid, j.comm, j.exe]), 'process columns kept through editcap');
});

// ---- crafted files ------------------------------------------------------------------------

class Bytes {
  private parts: Buffer[] = [];
  constructor(readonly le: boolean) {}
  u8(n: number) {
    this.parts.push(Buffer.from([n]));
    return this;
  }
  u16(n: number) {
    const b = Buffer.alloc(2);
    if (this.le) b.writeUInt16LE(n);
    else b.writeUInt16BE(n);
    this.parts.push(b);
    return this;
  }
  u32(n: number) {
    const b = Buffer.alloc(4);
    if (this.le) b.writeUInt32LE(n >>> 0);
    else b.writeUInt32BE(n >>> 0);
    this.parts.push(b);
    return this;
  }
  i64(n: bigint) {
    const b = Buffer.alloc(8);
    if (this.le) b.writeBigInt64LE(n);
    else b.writeBigInt64BE(n);
    this.parts.push(b);
    return this;
  }
  raw(b: Buffer) {
    this.parts.push(b);
    return this;
  }
  pad() {
    const n = this.length % 4;
    if (n) this.parts.push(Buffer.alloc(4 - n));
    return this;
  }
  get length() {
    return this.parts.reduce((s, p) => s + p.length, 0);
  }
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

function opts(le: boolean, list: Array<[number, Buffer | string]>): Buffer {
  const b = new Bytes(le);
  for (const [code, v] of list) {
    const val = typeof v === 'string' ? Buffer.from(v) : v;
    b.u16(code).u16(val.length).raw(val).pad();
  }
  if (list.length) b.u32(0);
  return b.done();
}

function block(le: boolean, type: number, body: Buffer, options: Buffer = Buffer.alloc(0)): Buffer {
  const len = 12 + body.length + options.length;
  return new Bytes(le).u32(type).u32(len).raw(body).raw(options).u32(len).done();
}

const shb = (le: boolean) => block(le, 0x0a0d0d0a, new Bytes(le).u32(0x1a2b3c4d).u16(1).u16(0).i64(-1n).done(), opts(le, [[4, 'crafted']]));
const idb = (le: boolean, linktype: number, o: Array<[number, Buffer | string]> = []) =>
  block(le, 1, new Bytes(le).u16(linktype).u16(0).u32(65535).done(), opts(le, o));
function epb(le: boolean, ifid: number, ts: bigint, data: Buffer, o: Array<[number, Buffer | string]> = [], origLen = data.length): Buffer {
  const body = new Bytes(le).u32(ifid).u32(Number(ts >> 32n)).u32(Number(ts & 0xffffffffn)).u32(data.length).u32(origLen).raw(data).pad().done();
  return block(le, 6, body, opts(le, o));
}
const spb = (le: boolean, data: Buffer) => block(le, 3, new Bytes(le).u32(data.length).raw(data).pad().done());
function pb(le: boolean, ifid: number, ts: bigint, data: Buffer, o: Array<[number, Buffer | string]> = []): Buffer {
  const body = new Bytes(le).u16(ifid).u16(0).u32(Number(ts >> 32n)).u32(Number(ts & 0xffffffffn)).u32(data.length).u32(data.length).raw(data).pad().done();
  return block(le, 2, body, opts(le, o));
}

const ether = (ethertype: number, payload: Buffer) => {
  const h = Buffer.alloc(14);
  h.writeUInt16BE(ethertype, 12);
  return Buffer.concat([h, payload]);
};
const vlan = (ethertype: number, payload: Buffer) => {
  const h = Buffer.alloc(18);
  h.writeUInt16BE(0x8100, 12);
  h.writeUInt16BE(42, 14);
  h.writeUInt16BE(ethertype, 16);
  return Buffer.concat([h, payload]);
};
const sll = (pkttype: number, ethertype: number, payload: Buffer) => {
  const h = Buffer.alloc(16);
  h.writeUInt16BE(pkttype, 0);
  h.writeUInt16BE(772, 2);
  h.writeUInt16BE(ethertype, 14);
  return Buffer.concat([h, payload]);
};
const sll2 = (pkttype: number, ifindex: number, ethertype: number, payload: Buffer) => {
  const h = Buffer.alloc(20);
  h.writeUInt16BE(ethertype, 0);
  h.writeUInt32BE(ifindex, 4);
  h.writeUInt16BE(1, 8);
  h[10] = pkttype;
  return Buffer.concat([h, payload]);
};
const nullHdr = (af: number, le: boolean, payload: Buffer) => Buffer.concat([new Bytes(le).u32(af).done(), payload]);

const SYN = ip4('10.0.0.1', '10.0.0.2', 6, tcp(40000, 443, 0x02));
const SYNACK = ip4('10.0.0.2', '10.0.0.1', 6, tcp(443, 40000, 0x12));
const FPA = ip4('10.0.0.1', '10.0.0.2', 6, tcp(40000, 443, 0x19, Buffer.from('bye')));
const UDP6 = ip6('2001:db8::1', 'fe80::1:2', 17, udp(5353, 53, Buffer.from('query')));
const ICMP6_ERR = ip6('2001:db8::2', '2001:db8::1', 58, icmp(1, 4, UDP6));
const ECHO = ip4('192.168.1.1', '192.168.1.2', 1, icmp(8, 0, Buffer.alloc(8)));
const ARP = (() => {
  const b = Buffer.alloc(28);
  b.writeUInt16BE(1, 0);
  b.writeUInt16BE(0x0800, 2);
  b[4] = 6;
  b[5] = 4;
  b.writeUInt16BE(1, 6);
  Buffer.from([192, 168, 1, 1]).copy(b, 14);
  Buffer.from([192, 168, 1, 9]).copy(b, 24);
  return b;
})();

function pcapFile(le: boolean, magic: number, linktype: number, recs: Array<{ sec: number; frac: number; data: Buffer; orig?: number }>, modified = false): Buffer {
  const b = new Bytes(le).u32(magic).u16(2).u16(4).u32(0).u32(0).u32(65535).u32(linktype);
  for (const r of recs) {
    b.u32(r.sec).u32(r.frac).u32(r.data.length).u32(r.orig ?? r.data.length);
    if (modified) b.u32(7).u16(0x0800).u8(0).u8(0);
    b.raw(r.data);
  }
  return b.done();
}

function write(name: string, data: Buffer): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, data);
  return f;
}

const T0 = 1_700_000_000; // 2023-11-14T22:13:20Z

t.test('crafted pcap: both byte orders, micro- and nanoseconds, the modified format', async (t) => {
  const cases: Array<[string, boolean, number, boolean]> = [
    ['le-us.pcap', true, 0xa1b2c3d4, false],
    ['be-us.pcap', false, 0xa1b2c3d4, false],
    ['le-ns.pcap', true, 0xa1b23c4d, false],
    ['be-ns.pcap', false, 0xa1b23c4d, false],
    ['modified.pcap', true, 0xa1b2cd34, true],
  ];
  for (const [name, le, magic, modified] of cases) {
    const ns = magic === 0xa1b23c4d;
    const f = write(
      name,
      pcapFile(le, magic, 101, [
        { sec: T0, frac: ns ? 123456789 : 123456, data: SYN },
        { sec: T0 + 1, frac: 5, data: UDP6 },
        { sec: T0 + 2, frac: 0, data: FPA.subarray(0, 30), orig: FPA.length },
      ], modified),
    );
    const js = readJson(t, f);
    if (!modified) sameAsTshark(t, f, js);
    t.same(
      js.map((j) => [j.time, j.proto, j.src, j.sport, j.dst, j.dport, j.len, j.iplen, j.caplen, j.flags]),
      [
        [`${T0}.${ns ? '123456789' : '123456000'}`, 'tcp', '10.0.0.1', 40000, '10.0.0.2', 443, 0, 40, 40, 'S'],
        [`${T0 + 1}.${ns ? '000000005' : '000005000'}`, 'udp', '2001:db8::1', 5353, 'fe80::1:2', 53, 5, 53, 53, null],
        // the TCP header was not captured: its length is not known, the IP payload is
        [`${T0 + 2}.000000000`, 'tcp', '10.0.0.1', 40000, '10.0.0.2', 443, 23, 43, 30, null],
      ],
      `${name}: RAW IPv4 and IPv6; a snapped packet keeps its length (the flags were not captured)`,
    );
    const text = lines(read([f]).stdout);
    t.same(
      text,
      [
        `    1 22:13:20.${ns ? '123456789' : '123456'}       - -               -   tcp   10.0.0.1:40000 > 10.0.0.2:443 len 0 [S]`,
        `    2 22:13:21.${ns ? '000000005' : '000005'}       - -               -   udp   [2001:db8::1]:5353 > [fe80::1:2]:53 len 5`,
        `    3 22:13:22.${ns ? '000000000' : '000000'}       - -               -   tcp   10.0.0.1:40000 > 10.0.0.2:443 len 23 (30 of 43 captured)`,
      ],
      `${name}: text lines`,
    );
  }
});

t.test('crafted pcap: link types', async (t) => {
  const cases: Array<[string, number, Buffer, Partial<J>]> = [
    ['ethernet', 1, ether(0x0800, SYNACK), { proto: 'tcp', flags: 'SA', direction: null }],
    ['vlan', 1, vlan(0x86dd, UDP6), { proto: 'udp', src: '2001:db8::1', dport: 53 }],
    ['arp', 1, ether(0x0806, ARP), { proto: 'arp', src: '192.168.1.1', dst: '192.168.1.9', info: 'request' }],
    ['lldp', 1, ether(0x88cc, Buffer.alloc(20)), { proto: 'lldp', src: null }],
    ['sll-out', 113, sll(4, 0x0800, FPA), { proto: 'tcp', direction: 'out', flags: 'FPA' }],
    ['sll-in', 113, sll(0, 0x86dd, ICMP6_ERR), { proto: 'icmp6', direction: 'in', info: 'port unreachable', quoted: { proto: 'udp', src: '2001:db8::1', sport: 5353, dst: 'fe80::1:2', dport: 53 } }],
    ['sll2', 276, sll2(4, 7, 0x0800, ECHO), { proto: 'icmp', direction: 'out', ifindex: 7, info: 'echo request', sport: null }],
    ['null-le', 0, nullHdr(2, true, SYN), { proto: 'tcp', src: '10.0.0.1' }],
    ['null-be', 0, nullHdr(30, false, UDP6), { proto: 'udp', dst: 'fe80::1:2' }],
    ['loop', 108, nullHdr(24, false, UDP6), { proto: 'udp', sport: 5353 }],
    ['raw-12', 12, SYN, { proto: 'tcp', dport: 443 }],
    ['ipv4', 228, SYN, { proto: 'tcp', dport: 443 }],
    ['unknown-linktype', 147, Buffer.alloc(10), { proto: 'linktype-147', len: 10 }],
  ];
  for (const [name, linktype, data, want] of cases) {
    const f = write(`link-${name}.pcap`, pcapFile(true, 0xa1b2c3d4, linktype, [{ sec: T0, frac: 0, data }]));
    const [j] = readJson(t, f);
    const got: Partial<J> = {};
    for (const k of Object.keys(want) as Array<keyof J>) (got as Record<string, unknown>)[k] = j?.[k];
    t.same(got, want, `${name} (linktype ${linktype})`);
    if (['ethernet', 'vlan', 'sll-out', 'sll-in', 'sll2', 'null-le', 'null-be', 'loop'].includes(name)) sameAsTshark(t, f, [j]);
  }
});

t.test('crafted pcapng: two sections of either byte order, resolutions, SPB, PB, unknown blocks', async (t) => {
  const proc = Buffer.alloc(8);
  const le = true;
  const be = false;
  const pidBE = new Bytes(be).u32(4242).u32(4243).done();
  proc.writeUInt32LE(777, 0);
  proc.writeUInt32LE(778, 4);
  const file = Buffer.concat([
    // section 1, big-endian: Ethernet with the default resolution (microseconds), SLL2 in ns
    shb(be),
    idb(be, 1, [[2, 'eth0']]),
    idb(be, 276, [[2, 'any'], [9, Buffer.from([9])]]),
    block(be, 4, Buffer.from([0, 0, 0, 0])), // an (empty) name resolution block
    epb(be, 0, BigInt(T0) * 1_000_000n + 250_000n, ether(0x0800, SYN), [[2, new Bytes(be).u32(2).done()]]),
    block(be, 0x40000bad, Buffer.alloc(12, 0x55)), // a custom block
    epb(be, 1, BigInt(T0) * 1_000_000_000n + 7n, sll2(0, 3, 0x86dd, UDP6), [[8, pidBE], [1, 'pid=4242 tid=4243 comm=my prog exe=/opt/my prog/bin']]),
    block(be, 5, new Bytes(be).u32(0).u32(0).u32(0).done()), // statistics
    // section 2, little-endian: NULL with ms resolution, LOOP with 2^-20 and an offset
    shb(le),
    idb(le, 0, [[9, Buffer.from([3])]]),
    idb(le, 108, [[9, Buffer.from([0x80 | 20])], [14, new Bytes(le).i64(100n).done()]]),
    spb(le, nullHdr(2, true, FPA)),
    epb(le, 0, BigInt(T0) * 1000n + 999n, nullHdr(2, true, SYNACK), [[8, proc]]),
    pb(le, 1, (BigInt(T0) << 20n) + (1n << 19n), nullHdr(24, false, UDP6), [[2, new Bytes(le).u32(1).done()]]),
    epb(le, 0, BigInt(T0) * 1000n, nullHdr(2, true, SYN), [[1, 'pid=55 tid=56 comm=curl']]),
  ]);
  const f = write('crafted.pcapng', file);
  const js = readJson(t, f);
  t.same(
    js.map((j) => [j.frame, j.time, j.iface, j.direction, j.proto, j.src, j.dst, j.flags, j.pid, j.tid, j.comm, j.exe]),
    [
      [1, `${T0}.250000000`, 'eth0', 'out', 'tcp', '10.0.0.1', '10.0.0.2', 'S', null, null, null, null],
      [2, `${T0}.000000007`, 'any', 'in', 'udp', '2001:db8::1', 'fe80::1:2', null, 4242, 4243, 'my prog', '/opt/my prog/bin'],
      [3, null, null, null, 'tcp', '10.0.0.1', '10.0.0.2', 'FPA', null, null, null, null],
      [4, `${T0}.999000000`, null, null, 'tcp', '10.0.0.2', '10.0.0.1', 'SA', 777, 778, null, null],
      [5, `${T0 + 100}.500000000`, null, 'in', 'udp', '2001:db8::1', 'fe80::1:2', null, null, null, null, null],
      [6, `${T0}.000000000`, null, null, 'tcp', '10.0.0.1', '10.0.0.2', 'S', 55, 56, 'curl', null],
    ],
    'every packet of both sections, with its interface, time, direction and process',
  );
  // tshark reads the same file the same way (the SPB has no time: compare the rest)
  const shark = tshark(f).filter((s) => s.src !== ''); // tshark shows the custom block as a frame
  t.equal(shark.length, js.length, 'tshark reads as many packets');
  t.same(shark.map((s) => [s.src, s.dst, s.len, s.iplen]), js.map((j) => [j.src, j.dst, j.len, j.iplen]), 'tshark: same endpoints and lengths');
  const text = lines(read(['--no-number', f]).stdout);
  t.equal(text[1], `22:13:20.000000007    4242 my prog         in  udp   [2001:db8::1]:5353 > [fe80::1:2]:53 len 5`, 'ns time, process from option 8 and the comment');
  t.equal(text[2], `${'-'.padEnd(12)} ${'-'.padStart(7)} ${'-'.padEnd(15)} -   tcp   10.0.0.1:40000 > 10.0.0.2:443 len 3 [FPA]`, 'a Simple Packet Block has no time (the column keeps its width)');
  t.equal(text[3].slice(0, 12), '22:13:20.999', 'millisecond resolution: three digits');
  t.equal(text[0].slice(0, 15), '22:13:20.250000', 'default resolution: microseconds');
  t.equal(lines(read([f]).stdout)[2].slice(0, 6), '    3 ', 'with the frame number by default');
  t.equal(readJson(t, f, ['--comm', 'my prog']).length, 1, '--comm with a space');
  t.equal(readJson(t, f, ['--pid', '55,777']).length, 2, '--pid from option 8 and from the comment');
});

t.test('a comment alone gives the process; a comment of another shape is ignored', async (t) => {
  const rec = (comments: string[], pid?: number, tid?: number) =>
    ({ frame: 1, iface: { id: 0, linktype: 101, snaplen: 0, digits: 6, offsetSec: 0, decimal: 6 }, caplen: 0, origLen: 0, data: Buffer.alloc(0), comments, pid, tid }) as Parameters<typeof processInfo>[0];
  t.same(processInfo(rec(['pid=1 tid=2 comm=a b exe=/x y'])), { pid: 1, tid: 2, comm: 'a b', exe: '/x y' });
  t.same(processInfo(rec(['hello', 'pid=1 tid=1 comm=sh'], 1, 1)), { pid: 1, tid: 1, comm: 'sh', exe: null });
  t.same(processInfo(rec(['pid=9 tid=9 comm=other'], 1, 2)), { pid: 1, tid: 2, comm: null, exe: null }, 'a comment about another pid');
  t.same(processInfo(rec(['just a note'])), { pid: null, tid: null, comm: null, exe: null });
  t.equal(epochText(T0, 5), `${T0}.000000005`);
  t.equal(ipv6Text(Buffer.from('00000000000000000000ffff7f000001', 'hex'), 0), '::ffff:127.0.0.1');
  t.equal(ipv6Text(Buffer.from('20010db8000000010000000000000001', 'hex'), 0), '2001:db8:0:1::1');
  t.equal(ipv6Text(Buffer.from('20010db8000100000001000100010001', 'hex'), 0), '2001:db8:1:0:1:1:1:1', 'a single zero group is not compressed');
  t.equal(tcpFlagString(0x02 | 0x10), 'SA');
  t.equal(tcpFlagString(0x01 | 0x08 | 0x10), 'FPA');
  const frag = ip4('10.0.0.1', '10.0.0.2', 17, udp(1, 2, Buffer.alloc(100)), { fragOffset: 10 });
  const d = decode(101, frag, frag.length);
  t.same([d.proto, d.sport, d.info], ['udp', null, 'fragment'], 'a later fragment has no ports');
});

// ---- damaged files, and files that are not captures ---------------------------------------

/** Offsets of the blocks of a pcapng file (well formed: it is damaged after). */
function blocks(b: Buffer): Block[] {
  const walk = pcapngBlocks(b);
  if (walk.problems.length) throw new Error(`not a well-formed pcapng file: ${walk.problems.join('; ')}`);
  return walk.blocks;
}

t.test('a file cut short in the middle of a packet: the whole packets, a warning, exit 1', async (t) => {
  const whole = readJson(t, live.pcap);
  const pcap = fs.readFileSync(live.pcap);
  const cut = write('cut.pcap', pcap.subarray(0, pcap.length - 10));
  let r = read(['--json', cut]);
  t.equal(r.status, 1, 'exit 1');
  t.equal(lines(r.stdout).length, whole.length - 1, 'every whole packet printed');
  t.same(lines(r.stdout).map((l) => JSON.parse(l)), whole.slice(0, -1), 'the same as from the whole file');
  t.equal(r.stderr, `tracedump: ${cut}: cut short in the middle of a packet\n`, 'one warning line');
  const headerCut = write('cut-header.pcap', pcap.subarray(0, 24 + 8));
  r = read([headerCut]);
  t.equal(r.status, 1);
  t.equal(r.stdout, '');
  t.match(r.stderr, /cut short in the middle of a packet/, 'cut inside the record header');

  const ng = fs.readFileSync(live.pcapng);
  const bl = blocks(ng);
  const epbs = bl.filter((b) => b.type === 6);
  const last = epbs[epbs.length - 1];
  const cutNg = write('cut.pcapng', ng.subarray(0, last.at + 40));
  r = read([cutNg]);
  t.equal(r.status, 1);
  t.equal(lines(r.stdout).length, epbs.length - 1, 'pcapng: every whole packet printed');
  t.equal(r.stderr, `tracedump: ${cutNg}: cut short in the middle of a packet\n`);
  // tracedump's pcapng ends with interface statistics: cut inside them, every packet is whole
  const tail = bl[bl.length - 1];
  t.equal(tail.type, 5, 'the file ends with a statistics block');
  const cutIsb = write('cut-isb.pcapng', ng.subarray(0, tail.at + 12));
  r = read([cutIsb]);
  t.equal(r.status, 1);
  t.equal(lines(r.stdout).length, epbs.length, 'all packets printed');
  t.match(r.stderr, /cut short in the middle of a block/);
  // -c stops before the damage: nothing to warn about
  r = read(['-c', '2', cut]);
  t.equal(r.status, 0);
  t.equal(r.stderr, '');
  // a damaged block length
  const bad = Buffer.from(ng);
  bad.writeUInt32LE(13, epbs[1].at + 4);
  r = read([write('bad.pcapng', bad)]);
  t.equal(r.status, 1, 'a damaged file: exit 1');
  t.equal(lines(r.stdout).length, 1, 'the packet before the damage');
  t.match(r.stderr, /impossible length \(13\): the file is damaged/);
  const badPcap = Buffer.from(pcap);
  badPcap.writeUInt32LE(0x7fffffff, 24 + 16 + whole[0].caplen + 20 + 8); // the second record's caplen
  r = read([write('bad.pcap', badPcap)]);
  t.equal(r.status, 1, 'a damaged record header: exit 1');
  t.equal(lines(r.stdout).length, 1, 'the packet before it');
  t.match(r.stderr, /claims 2147483647 bytes: the file is damaged/);
});

t.test('files that are not captures: a clear error, exit 2', async (t) => {
  const cases: Array<[string, Buffer | null, RegExp]> = [
    ['text.txt', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), /not a pcap or pcapng capture file: it starts with 47 45 54 20/],
    ['empty', Buffer.alloc(0), /not a pcap or pcapng capture file: it is empty/],
    ['tiny', Buffer.from([0xd4]), /not a pcap or pcapng capture file/],
    ['gz.pcap.gz', Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0]), /gzip-compressed/],
    ['bad-bom.pcapng', Buffer.concat([Buffer.from('0a0d0d0a1c000000', 'hex'), Buffer.alloc(20)]), /not a pcap or pcapng capture file/],
    ['missing', null, /cannot open: no such file/],
  ];
  for (const [name, data, re] of cases) {
    const f = data ? write(name, data) : path.join(dir, name);
    const r = read([f]);
    t.equal(r.status, 2, `${name}: exit 2`);
    t.equal(r.stdout, '', `${name}: nothing printed`);
    t.match(r.stderr, re, `${name}: ${r.stderr.trim()}`);
    t.equal(lines(r.stderr).length, 1, 'one line');
    t.match(r.stderr, new RegExp(`^tracedump: ${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `), 'names the file');
  }
  const r = read([dir]);
  t.equal(r.status, 2, 'a directory');
  t.match(r.stderr, /is a directory/);
  t.throws(() => CaptureReader.open(path.join(dir, 'text.txt')), ReadError);
});

t.test('large files are streamed, not loaded', async (t) => {
  // ~40 MB of 1 KB packets: the reader keeps a bounded buffer; every packet is printed
  const n = 40_000;
  const payload = ip4('10.0.0.1', '10.0.0.2', 17, udp(1000, 2000, Buffer.alloc(1000)));
  const rec = Buffer.alloc(16 + payload.length);
  payload.copy(rec, 16);
  rec.writeUInt32LE(payload.length, 8);
  rec.writeUInt32LE(payload.length, 12);
  const f = path.join(dir, 'large.pcap');
  const fd = fs.openSync(f, 'w');
  fs.writeSync(fd, pcapFile(true, 0xa1b2c3d4, 101, []));
  const batch: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const r = Buffer.from(rec);
    r.writeUInt32LE(T0 + Math.floor(i / 1000), 0);
    r.writeUInt32LE((i % 1000) * 1000, 4);
    batch.push(r);
    if (batch.length === 1000) fs.writeSync(fd, Buffer.concat(batch.splice(0)));
  }
  fs.closeSync(fd);
  const code = `const {CaptureReader} = require(${JSON.stringify(path.join(ROOT, 'dist', 'read', 'reader.js'))});
    const r = CaptureReader.open(process.argv[1]); let n = 0, peak = 0;
    while (r.next()) { n++; if (n % 1000 === 0) peak = Math.max(peak, process.memoryUsage().arrayBuffers); }
    console.log(n, peak);`;
  const out = spawnSync(process.execPath, ['-e', code, f], { encoding: 'utf8', timeout: 60_000 });
  const [count, peak] = out.stdout.trim().split(' ').map(Number);
  t.equal(count, n, 'every packet');
  t.ok(peak < 16 << 20, `buffers stay small (${(peak / 1048576).toFixed(1)} MiB for a ${(fs.statSync(f).size / 1048576).toFixed(0)} MiB file)`);
  const r = read([f]);
  t.equal(r.status, 0);
  t.equal(lines(r.stdout).length, n, 'every line printed');
});

t.test("'-' reads standard input as it comes: tracedump -w - piped into read -", async (t) => {
  // one datagram, 3 s of quiet, another: the first line must be out long before the end
  const cmd = `import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.sendto(b'a', ('127.0.0.1', ${live.probePort}))\ntime.sleep(3)\ns.sendto(b'b', ('127.0.0.1', ${live.probePort}))\n`;
  const td = startProcess(CLI, ['-q', '-w', '-', '--linger', '0.2', '--', PY, '-c', cmd]);
  const reader = spawn(CLI, ['read', '--json', '-'], { stdio: [td.stdout!, 'pipe', 'pipe'], env: { ...process.env, TZ: 'UTC' } });
  started.add(reader);
  const start = Date.now();
  const arrivals: number[] = [];
  let text = '';
  reader.stdout!.on('data', (d: Buffer) => {
    text += d;
    while (arrivals.length < lines(text).length) arrivals.push(Date.now() - start);
  });
  const status = await new Promise<number | null>((resolve) => reader.on('exit', (c) => resolve(c)));
  const end = Date.now() - start;
  await stop(td, 'SIGKILL', 0);
  t.equal(status, 0);
  const js = lines(text).map((l) => JSON.parse(l) as J);
  t.same(js.filter((j) => j.proto === 'udp').map((j) => j.dport), [live.probePort, live.probePort], 'both datagrams');
  t.ok(arrivals[0] < end - 2000, `the first line came ${end - arrivals[0]} ms before the end`);
});

t.test('the CLI runs it as `tracedump read`', async (t) => {
  const r = spawnSync(CLI, ['read', '--json', '-c', '1', live.pcapng], { encoding: 'utf8', timeout: 60_000 });
  t.equal(r.status, 0, r.stderr);
  t.equal(lines(r.stdout).length, 1);
  t.equal(JSON.parse(lines(r.stdout)[0]).pid, live.pcapngPids[0]);
});

// ---- tcpdump habits: an expression, -t styles, the program's side of loopback packets -------

/** tcpdump -r FILE -tt EXPR: the times of the packets it selects (the oracle of an expression). */
function tcpdumpTimes(file: string, expr: string, nano: boolean): string[] {
  const r = spawnSync('tcpdump', ['-r', file, '-tt', '-nn', ...(nano ? ['--time-stamp-precision=nano'] : []), expr], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tcpdump -r ${file} '${expr}': ${r.stderr}`);
  return lines(r.stdout).map((l) => l.split(' ')[0]);
}

t.test('an expression selects the packets tcpdump -r selects; frame numbers stay the file\'s', async (t) => {
  const [tp, up, cp] = live.ports;
  const exprs = ['tcp', `udp port ${up}`, 'icmp', 'tcp[tcpflags] & tcp-syn != 0', 'ip6', `host 127.0.0.1 and not port ${tp}`, `udp and dst port ${cp}`];
  for (const [file, nano] of [
    [live.pcapng, true],
    [live.pcap, true],
    [live.tcpdumpUs, false],
  ] as const) {
    const all = readJson(t, file);
    const frameOf = new Map(all.map((j) => [j.time, j.frame]));
    for (const expr of exprs) {
      const r = read(['--json', file, expr]);
      t.equal(r.status, 0, r.stderr);
      const mine = lines(r.stdout).map((l) => JSON.parse(l) as J);
      const want = tcpdumpTimes(file, expr, nano);
      t.ok(want.length > 0, `${path.basename(file)} '${expr}': tcpdump selects ${want.length}`);
      t.same(
        mine.map((j) => (nano ? j.time : j.time!.slice(0, -3))),
        want,
        `${path.basename(file)} '${expr}': the same packets as tcpdump -r`,
      );
      t.ok(
        mine.every((j) => frameOf.get(j.time) === j.frame),
        `${path.basename(file)} '${expr}': each keeps its frame number in the file`,
      );
    }
  }
  const text = lines(read([live.pcapng, 'tcp', 'and', `port ${tp}`]).stdout);
  t.equal(text.length, lines(read([live.pcapng, `tcp and port ${tp}`]).stdout).length, 'the expression may be given as several words, as tcpdump takes it');
  t.ok(text.length > 0);
  const bad = read([live.pcapng, 'tcp prot 80']);
  t.equal(bad.status, 2, 'a bad expression: exit 2');
  t.match(bad.stderr, /syntax error/);
  t.equal(bad.stdout, '', 'nothing printed');
});

t.test('-t, -tt, -ttt, -tttt, -ttttt: the time column as tcpdump writes it', async (t) => {
  const js = readJson(t, live.pcapng);
  const col = (flag: string) => lines(read([flag, '--no-number', live.pcapng]).stdout).map((l) => l.split(/ +/)[0] + (flag === '-tttt' ? ` ${l.split(/ +/)[1]}` : ''));
  t.same(col('-tt'), js.map((j) => j.time), '-tt: epoch seconds, the file\'s precision');
  const dates = col('-tttt');
  js.forEach((j, i) => {
    const d = new Date(Number(j.time!.split('.')[0]) * 1000); // TZ=UTC
    const want = `${d.toISOString().slice(0, 10)} ${d.toISOString().slice(11, 19)}.${j.time!.split('.')[1]}`;
    if (dates[i] !== want) t.fail(`-tttt line ${i + 1}: ${dates[i]} vs ${want}`);
  });
  const ns = (time: string) => BigInt(time.replace('.', ''));
  const hms = (d: bigint) => {
    const s = d / 1_000_000_000n;
    const pad = (n: bigint) => String(n).padStart(2, '0');
    return `${pad(s / 3600n)}:${pad((s / 60n) % 60n)}:${pad(s % 60n)}.${String(d % 1_000_000_000n).padStart(9, '0')}`;
  };
  t.same(col('-ttt'), js.map((j, i) => hms(i === 0 ? 0n : ns(j.time!) - ns(js[i - 1].time!))), '-ttt: since the packet before');
  t.same(col('-ttttt'), js.map((j) => hms(ns(j.time!) - ns(js[0].time!))), '-ttttt: since the first packet');
  const none = lines(read(['-t', live.pcapng]).stdout);
  t.match(none[0], /^    1 +\d+ python3 /, '-t: no time column');
  t.same(lines(read(['--time-style', 'date', live.pcapng]).stdout), lines(read(['-tttt', live.pcapng]).stdout), '--time-style date is -tttt');
});

t.test('loopback packets: the direction is the program\'s side, in the file and as read shows it', async (t) => {
  const [tp, up, cp] = live.ports.map(Number);
  const js = readJson(t, live.pcapng);
  // the clients are traced, the servers are not: what goes to a server port the program sent
  for (const j of js) {
    const want = j.proto === 'icmp' ? 'in' : [tp, up, cp].includes(j.dport!) ? 'out' : 'in';
    if (j.direction !== want) t.fail(`frame ${j.frame} ${j.src}:${j.sport} > ${j.dst}:${j.dport}: ${j.direction}, not ${want}`);
  }
  t.ok(js.some((j) => j.direction === 'out') && js.some((j) => j.direction === 'in'), 'both directions');
  // what tshark reads in the file itself: the pcapng flags and the SLL2 packet type agree
  const r = spawnSync('tshark', ['-n', '-r', live.pcapng, '-T', 'fields', '-e', 'frame.number', '-e', 'frame.packet_flags_direction', '-e', 'sll.pkttype'], { encoding: 'utf8' });
  const rows = lines(r.stdout).map((l) => l.split('\t'));
  t.equal(rows.length, js.length);
  for (const [frame, flags, pkttype] of rows) {
    const j = js[Number(frame) - 1];
    const out = j.direction === 'out';
    if (Number(flags) !== (out ? 2 : 1) || Number(pkttype) !== (out ? 4 : 0)) t.fail(`frame ${frame}: epb_flags ${flags}, SLL2 pkttype ${pkttype}, read says ${j.direction}`);
  }
  const pcapJs = readJson(t, live.pcap);
  t.same(pcapJs.map((j) => j.direction), js.map((j) => j.direction), 'the pcap (SLL2 packet type) says the same');
});
