// Many threads and many processes under tracedump, against an oracle tcpdump:
//  - a program with 200 threads alive at once, each making one TCP connection (request,
//    answer, close) to a local untraced server while two untraced noise clients talk to the
//    same server: all 200 connections are in the file whole (SYN to FIN/ACK), no packet of the
//    noise clients is;
//  - a program that forks 500 short-lived children (25 at a time), each making one TCP
//    connection or one UDP exchange and _exit(0)ing: all 500 are in the file, tracedump exits
//    with the program's status within a bounded time, and none of the program's processes is
//    left afterwards.
// The programs are small python scripts written into the test's work dir; their sockets are
// made and recorded by the flows.py fixture's own client functions (tcp_get, udp_query).
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import {
  FLOWS,
  PY,
  type SockRec,
  captureScenario,
  checkCapture,
  noLeftovers,
  runFlows,
  tcpConnections,
  workDir,
} from './helpers/capture';
import { type Packet, TCP_ACK, TCP_FIN, TCP_SYN } from './helpers/pcap';

const FIXTURES = path.dirname(FLOWS);

const THREADS_PY = `import os, signal, sys, threading
sys.path.insert(0, sys.argv[1])
import flows
signal.alarm(100)
host, port, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
bar = threading.Barrier(n + 1, timeout=60)
errors = []

def worker(k):
    try:
        bar.wait()  # every thread exists before the first connects
        flows.tcp_get(host, port, 1, tag=f'thread{k}')
    except BaseException as e:
        errors.append(f'{k}: {e!r}')

ths = [threading.Thread(target=worker, args=(k,), name=f'w{k}') for k in range(n)]
for th in ths:
    th.start()
print('threads alive', threading.active_count() - 1, flush=True)
bar.wait()
for th in ths:
    th.join(60)
stuck = sum(1 for th in ths if th.is_alive())
if errors or stuck:
    sys.stderr.write(f'threads: {len(errors)} failed {errors[:5]}, {stuck} stuck\\n')
    sys.stderr.flush()
    os._exit(1)
print('done threads', n, flush=True)
`;

const FORKS_PY = `import os, signal, sys
sys.path.insert(0, sys.argv[1])
import flows
signal.alarm(110)
host, tport, uport = sys.argv[2], sys.argv[3], sys.argv[4]
n, batch, status = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
print('parent', os.getpid(), flush=True)
kids, waiting, failed = [], [], 0

def reap():
    global failed
    for p in waiting:
        _, st = os.waitpid(p, 0)
        if st != 0:
            failed += 1
    waiting.clear()

for i in range(n):
    pid = os.fork()
    if pid == 0:
        signal.alarm(30)
        code = 1
        try:
            if i % 2 == 0:
                flows.tcp_get(host, tport, 1, tag=f'fork{i}')
            else:
                flows.udp_query(host, uport, 1, 'fresh', tag=f'fork{i}-')
            code = 0
        except BaseException as e:
            sys.stderr.write(f'child {i}: {e!r}\\n')
            sys.stderr.flush()
        os._exit(code)
    kids.append(pid)
    waiting.append(pid)
    if len(waiting) >= batch:
        reap()
reap()
print('kids ' + ' '.join(map(str, kids)), flush=True)
print('done forks', n, 'failed', failed, flush=True)
os._exit(status if failed == 0 else 1)
`;

/** TCP connections in a file that start with a SYN and carry a FIN from each side. */
function wholeTcp(packets: Packet[], serverPort: number): { whole: number; total: number; bad: string[] } {
  const conns = tcpConnections(packets.filter((p) => p.proto === 'tcp' && (p.sport === serverPort || p.dport === serverPort)));
  const bad: string[] = [];
  let whole = 0;
  for (const c of conns) {
    const syn = (c[0].tcpFlags & (TCP_SYN | TCP_ACK)) === TCP_SYN;
    const fins = new Set(c.filter((p) => p.tcpFlags & TCP_FIN).map((p) => `${p.src}.${p.sport}`));
    if (syn && fins.size === 2) whole++;
    else if (bad.length < 10) bad.push(`${c[0].src}.${c[0].sport} > ${c[0].dst}.${c[0].dport}: syn ${syn}, fins ${fins.size}`);
  }
  return { whole, total: conns.length, bad };
}

/** How many of the noise connections were open while the program had sockets. */
function overlapping(traced: SockRec[], others: SockRec[]): number {
  const from = Math.min(...traced.map((r) => r.t0));
  const to = Math.max(...traced.map((r) => r.t1));
  return others.filter((o) => o.t1 >= from && o.t0 <= to).length;
}

/** Processes still running the script (by pid, and anywhere by its path on the command line). */
function leftovers(pids: Iterable<number>, script: string): string[] {
  const found = new Set<string>();
  const check = (pid: string) => {
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmd.includes(script)) found.add(`pid ${pid}: ${cmd.slice(0, 120)}`);
    } catch {
      /* gone */
    }
  };
  for (const p of pids) check(String(p));
  for (const d of fs.readdirSync('/proc')) if (/^\d+$/.test(d)) check(d);
  return [...found];
}

/** Kills (by pid) whatever of the script is still running: teardown safety for the fixture. */
function killLeft(t: Test, script: string, pids: () => Iterable<number>): void {
  t.teardown(() => {
    for (const l of leftovers(pids(), script)) {
      const pid = Number(/^pid (\d+)/.exec(l)?.[1]);
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  });
}

t.test('200 threads alive at once, one TCP connection each, beside untraced noise clients', async (t) => {
  const dir = workDir(t, 'load-threads');
  const n = 200;
  const script = path.join(dir, 'threads.py');
  fs.writeFileSync(script, THREADS_PY);
  let seen: SockRec[] = [];
  killLeft(t, script, () => seen.map((r) => r.pid));
  // two noise clients, 400 connections each, 2 ms apart: they span the program's run (started
  // when the program is, at its exec: tracedump's own start-up, up to a second for the ring on a
  // VM slow to give back memory, does not eat into them)
  const sc = await captureScenario(t, {
    servers: [['serve-tcp', '127.0.0.1', 0]],
    tdArgs: ['--events=json'],
    others: {
      when: (e) => e.kind === 'exec',
      start: ([port], record) => [
        runFlows(t, ['tcp-get', '127.0.0.1', port, 400], { record, gapMs: 2 }),
        runFlows(t, ['tcp-get', '127.0.0.1', port, 400], { record, gapMs: 2 }),
      ],
    },
    command: ([port]) => [PY, script, FIXTURES, '127.0.0.1', String(port), String(n)],
    timeoutMs: 120_000,
  });
  const { run, traced, others, othersDone: noise } = sc;
  const server = { port: sc.ports[0] };
  t.notOk(run.timedOut, `tracedump ended within 120 s (${run.elapsedMs} ms)`);
  t.equal(run.status, 0, `the program succeeded (${run.stderr.slice(-400)})`);
  t.match(run.stdout, new RegExp(`^threads alive ${n}$`, 'm'), `${n} threads were alive at once`);
  t.match(run.stdout, new RegExp(`^done threads ${n}$`, 'm'), 'every thread finished');
  t.same(noise.map((x) => x.code), [0, 0], `the noise clients succeeded (${noise.map((x) => x.err.slice(-200)).join(' ')})`);
  seen = [...traced, ...others];
  t.equal(traced.length, n, `the program recorded ${n} connections`);
  t.equal(new Set(traced.map((r) => r.tid)).size, n, `from ${n} threads`);
  t.equal(new Set(traced.map((r) => r.pid)).size, 1, 'of one process');
  t.equal(others.length, 800, 'the noise clients recorded their 800 connections');
  t.ok(overlapping(traced, others) > 0, `the noise clients were connecting while the threads were (${overlapping(traced, others)} connections)`);
  const r = checkCapture(t, {
    tdFile: sc.out,
    oracleFile: sc.oracle.file,
    oracleStats: sc.oracle.stats,
    run,
    traced,
    others,
    tcpConnections: n,
  });
  const w = wholeTcp(r.td.packets, server.port);
  t.equal(w.total, n, `the file holds exactly ${n} TCP connections`);
  t.equal(w.whole, n, `all ${n} are whole in the file: SYN first, FIN from both sides`);
  t.same(w.bad, [], 'no connection cut short in the file');
  const noisePorts = new Set(others.map((o) => o.local.port));
  const tracedPorts = new Set(traced.map((o) => o.local.port));
  t.ok(tcpConnections(r.other).length >= 800, `the oracle saw the noise connections (${tcpConnections(r.other).length})`);
  const noiseInFile = r.td.packets.filter((p) => {
    const client = p.sport === server.port ? p.dport : p.sport;
    return noisePorts.has(client) && !tracedPorts.has(client);
  });
  t.equal(noiseInFile.length, 0, 'no packet of the noise clients is in the file');
  t.same(leftovers([...new Set(traced.map((x) => x.pid))], script), [], 'the program is gone');
});

t.test('500 short-lived forked children, one TCP connection or UDP exchange each', async (t) => {
  const dir = workDir(t, 'load-forks');
  const n = 500;
  const status = 23;
  const script = path.join(dir, 'forks.py');
  fs.writeFileSync(script, FORKS_PY);
  let pids: number[] = [];
  killLeft(t, script, () => pids);
  const sc = await captureScenario(t, {
    servers: [
      ['serve-tcp', '127.0.0.1', 0],
      ['serve-udp', '127.0.0.1', 0],
    ],
    others: { start: ([tcp], record) => [runFlows(t, ['tcp-get', '127.0.0.1', tcp, 150], { record, gapMs: 20 })] },
    command: ([tcp, udp]) => [PY, script, FIXTURES, '127.0.0.1', String(tcp), String(udp), String(n), '25', String(status)],
    timeoutMs: 150_000,
  });
  const { run, traced, others } = sc;
  const noise = sc.othersDone[0] ?? { code: null, err: 'not started' };
  t.notOk(run.timedOut, 'tracedump ended within its time limit');
  t.ok(run.elapsedMs < 120_000, `nothing hung: tracedump ran ${run.elapsedMs} ms (< 120 s)`);
  t.equal(run.status, status, `tracedump exits with the program's status ${status} (${run.stderr.slice(-400)})`);
  t.match(run.stdout, new RegExp(`^done forks ${n} failed 0$`, 'm'), `all ${n} children succeeded`);
  t.equal(noise.code, 0, `the noise client succeeded (${noise.err.slice(-200)})`);
  const kids = (/^kids (.*)$/m.exec(run.stdout)?.[1] ?? '').split(' ').filter((x) => x).map(Number);
  const parent = Number(/^parent (\d+)$/m.exec(run.stdout)?.[1]);
  pids = [parent, ...kids, ...traced.map((r) => r.pid)];
  t.equal(kids.length, n, `the program forked ${n} children`);
  t.equal(traced.length, n, `the children recorded ${n} sockets`);
  t.same(
    [...new Set(traced.map((r) => r.pid))].sort((a, b) => a - b),
    [...kids].sort((a, b) => a - b),
    'one socket in each child',
  );
  t.equal(traced.filter((r) => r.proto === 'tcp').length, n / 2, `${n / 2} TCP connections`);
  t.ok(overlapping(traced, others) > 0, `the noise client was connecting while the children were (${overlapping(traced, others)} connections)`);
  t.equal(traced.filter((r) => r.proto === 'udp').length, n / 2, `${n / 2} UDP exchanges`);
  const r = checkCapture(t, {
    tdFile: sc.out,
    oracleFile: sc.oracle.file,
    oracleStats: sc.oracle.stats,
    run,
    traced,
    others,
    tcpConnections: n / 2,
    udpSent: n / 2,
    udpReceived: n / 2,
  });
  const [tcpPort, udpPort] = sc.ports;
  const w = wholeTcp(r.td.packets, tcpPort);
  t.equal(w.total, n / 2, `the file holds exactly ${n / 2} TCP connections`);
  t.equal(w.whole, n / 2, `all ${n / 2} are whole in the file: SYN first, FIN from both sides`);
  t.same(w.bad, [], 'no connection cut short in the file');
  const udpPorts = new Set(traced.filter((x) => x.proto === 'udp').map((x) => x.local.port));
  const udpOut = r.td.packets.filter((p) => p.proto === 'udp' && p.dport === udpPort && udpPorts.has(p.sport));
  const udpIn = r.td.packets.filter((p) => p.proto === 'udp' && p.sport === udpPort && udpPorts.has(p.dport));
  t.equal(udpOut.length, n / 2, `the file holds the ${n / 2} queries`);
  t.equal(udpIn.length, n / 2, `and the ${n / 2} answers`);
  t.same(leftovers(pids, script), [], 'no process of the program is left (parent and 500 children gone)');
});

noLeftovers(t);
