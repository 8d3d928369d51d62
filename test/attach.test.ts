// Attach mode (-p PID[,PID] / --pname NAME): tracedump seizes running processes, adopts the
// sockets they already have, follows what they do and start from then on, and detaches at the
// end; the programs run on as if nothing had happened. Real processes and packets, judged
// against an oracle tcpdump:
//  1. a client (a long-lived TCP connection and UDP socket made before the attach, then a
//     loop of short connections) attached for 2 s beside an untraced twin: every packet of it
//     inside the capture window and none of the twin; it finishes with its own output/status
//  2. a threaded server with its listening socket and an accepted connection from before the
//     attach, untraced clients: the traffic of the window; it keeps serving after the detach
//  3. a process with threads that forks after the attach: every thread attached, the packets
//     of children, grandchildren and new threads captured; tracedump ends after it exits
//  4. --pname (and -p A,B): every process of that name and no other
//  5. stops: SIGINT, SIGTERM, SIGHUP, -c N; a SIGSTOPped process stays stopped
//  6. failures: no such pid, a kernel thread, a traced process, tracedump itself, -p with a
//     command, --pname matching nothing: exit 125, a message, the target untouched
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import {
  type Bg,
  PY,
  type TdRun,
  checkCapture,
  checkReadable,
  classify,
  eventOf,
  freePort,
  noLeftovers,
  portFilter,
  readRecords,
  recMatches,
  sleep,
  startBg,
  startOracle,
  startTracedump,
  tcpConnections,
  workDir,
} from './helpers/capture';
import { type Packet, TCP_FIN, TCP_SYN, describe, packetKey, readPcap } from './helpers/pcap';
import { CLI } from './helpers/tracedump';

const HOST = '127.0.0.1';

// The fixture, written into each test's work dir. The name ends in flows.py so that
// noLeftovers() recognises it. Servers print "ready TCP UDP", clients "started ..." then
// "done ..."; every socket is recorded to $AF_RECORD in the format of flows.py (readRecords).
const FIXTURE = String.raw`#!/usr/bin/python3
import json, os, signal, socket, sys, threading, time

REC = os.environ.get('AF_RECORD')
_fd = os.open(REC, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if REC else None
signal.alarm(120)  # nothing outlives a failed test for long
if os.environ.get('AF_COMM'):  # the name --pname looks for
    with open('/proc/self/comm', 'w') as f:
        f.write(os.environ['AF_COMM'])


def now_ms():
    return time.time() * 1000.0


def ep(a):
    return None if a is None else {'address': a[0], 'port': a[1]}


def record(role, proto, local, remote, t0, n=1):
    if _fd is not None:
        line = json.dumps({'pid': os.getpid(), 'tid': threading.get_native_id(), 'role': role,
                           'proto': proto, 'local': ep(local), 'remote': ep(remote),
                           't0': t0, 't1': now_ms(), 'n': n}) + '\n'
        os.write(_fd, line.encode())  # one write on an O_APPEND fd: lines never interleave


def out(s):
    sys.stdout.write(s + '\n')
    sys.stdout.flush()


def all_threads_traced():
    for tid in os.listdir('/proc/self/task'):
        try:
            st = open('/proc/self/task/%s/status' % tid).read()
        except OSError:
            continue
        if 'TracerPid:\t0\n' in st:
            return False
    return True


def recv_line(s):
    data = b''
    while not data.endswith(b'\n'):
        c = s.recv(4096)
        if not c:
            break
        data += c
    return data


def server(host, tcp_port, udp_port):
    """TCP line echo, a thread per connection (after a line "once ..." the server closes);
    UDP echo ("R " + datagram) on its own thread."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, int(tcp_port)))
    ls.listen(512)
    us = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    us.bind((host, int(udp_port)))

    def udp():
        while True:
            d, peer = us.recvfrom(65536)
            us.sendto(b'R ' + d, peer)

    def handle(c):
        with c:
            c.settimeout(60)
            for line in c.makefile('rb'):
                c.sendall(b'R ' + line)
                if line.startswith(b'once'):
                    break

    threading.Thread(target=udp, daemon=True).start()
    out('ready %d %d' % (ls.getsockname()[1], us.getsockname()[1]))
    while True:
        c, _ = ls.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


def once(host, port, tag):
    """A short TCP exchange: connect, a line, its answer, the server's EOF, close."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    t0 = now_ms()
    s.connect((host, port))
    local, peer = s.getsockname(), s.getpeername()
    msg = ('once %s\n' % tag).encode()
    s.sendall(msg)
    got = recv_line(s)
    rest = s.recv(100)
    s.close()
    record('client', 'tcp', local, peer, t0)
    if got != b'R ' + msg or rest:
        raise SystemExit('attach-flows: bad answer %r %r' % (got, rest))


def udp_once(host, port, tag, s=None):
    """A datagram and its echo, on s or on a fresh socket (recorded)."""
    fresh = s is None
    if fresh:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    t0 = now_ms()
    msg = ('u %s' % tag).encode()
    s.sendto(msg, (host, port))
    got = s.recvfrom(65536)[0]
    if fresh:
        local = s.getsockname()
        s.close()
        record('udp', 'udp', local, None, t0)
    if got != b'R ' + msg:
        raise SystemExit('attach-flows: bad UDP answer %r' % got)


def client(host, tcp_port, udp_port, secs, status):
    """A long-lived TCP connection and UDP socket first (used every 4th round), then rounds of
    a short TCP connection (and a fresh UDP socket every 3rd round) for secs seconds."""
    tcp_port, udp_port = int(tcp_port), int(udp_port)
    t0 = now_ms()
    lc = socket.create_connection((host, tcp_port), timeout=10)
    lu = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ut0 = now_ms()
    udp_once(host, udp_port, 'first', lu)
    out('started %d %d' % (lc.getsockname()[1], lu.getsockname()[1]))
    end = time.time() + float(secs)
    i = pings = 0
    while time.time() < end and i < 2000:
        once(host, tcp_port, '%d %d' % (os.getpid(), i))
        if i % 3 == 1:
            udp_once(host, udp_port, '%d %d' % (os.getpid(), i))
        if i % 4 == 2:
            msg = ('ping %d\n' % pings).encode()
            lc.sendall(msg)
            if recv_line(lc) != b'R ' + msg:
                raise SystemExit('attach-flows: bad answer on the long connection')
            udp_once(host, udp_port, 'ping %d' % pings, lu)
            pings += 1
        i += 1
        time.sleep(0.03)
    local, peer = lc.getsockname(), lc.getpeername()
    lc.close()
    record('long', 'tcp', local, peer, t0, pings)
    local = lu.getsockname()
    lu.close()
    record('udp', 'udp', local, None, ut0, pings + 1)
    out('done %d %d' % (i, pings))
    sys.exit(int(status))


def family(host, tcp_port, udp_port, go_file, status):
    """3 idle threads; once go_file exists and every thread is traced: the idle threads, 2 new
    threads, 2 forked children (one of them forks a grandchild) and the main thread each make
    3 TCP connections and 2 UDP exchanges."""
    tcp_port, udp_port = int(tcp_port), int(udp_port)
    go = threading.Event()
    errors = []

    def work(tag):
        try:
            for i in range(3):
                once(host, tcp_port, '%s %d' % (tag, i))
            for i in range(2):
                udp_once(host, udp_port, '%s %d' % (tag, i))
        except BaseException as e:  # noqa: BLE001
            errors.append('%s: %s' % (tag, e))

    def idle(k):
        if go.wait(60):
            work('old-thread-%d' % k)

    olds = [threading.Thread(target=idle, args=(k,)) for k in range(3)]
    for th in olds:
        th.start()
    out('started %d' % len(os.listdir('/proc/self/task')))
    end = time.time() + 30
    while not (os.path.exists(go_file) and all_threads_traced()) and time.time() < end:
        time.sleep(0.01)
    go.set()
    news = [threading.Thread(target=work, args=('new-thread-%d' % k,)) for k in range(2)]
    for th in news:
        th.start()
    kids = []
    for k in range(2):
        pid = os.fork()
        if pid == 0:
            work('child-%d' % k)
            ok = not errors
            if k == 0:
                gp = os.fork()
                if gp == 0:
                    work('grandchild')
                    os._exit(1 if errors else 0)
                ok = ok and os.waitpid(gp, 0)[1] == 0
            if errors:
                sys.stderr.write('attach-flows: %s\n' % errors)
            os._exit(0 if ok else 1)
        kids.append(pid)
    work('main')
    for th in olds + news:
        th.join()
    bad = [p for p in kids if os.waitpid(p, 0)[1] != 0]
    if bad or errors:
        raise SystemExit('attach-flows: children %s failed, errors %s' % (bad, errors))
    out('done %d children' % len(kids))
    sys.exit(int(status))


def sleeper(secs, status):
    """No network: prints started, sleeps, prints done."""
    out('started')
    time.sleep(float(secs))
    out('done')
    sys.exit(int(status))


if __name__ == '__main__':
    {'server': server, 'client': client, 'family': family, 'sleeper': sleeper}[sys.argv[1]](*sys.argv[2:])
`;

function writeFixture(dir: string): string {
  const file = path.join(dir, 'attach-flows.py');
  fs.writeFileSync(file, FIXTURE, { mode: 0o755 });
  return file;
}

/** The untraced fixture server on fresh ports. */
async function startServer(t: Test, fx: string): Promise<{ bg: Bg; tcp: number; udp: number }> {
  const bg = startBg(t, [PY, fx, 'server', HOST, String(freePort(HOST, 'tcp')), String(freePort(HOST, 'udp'))]);
  const m = await bg.waitFor(/^ready (\d+) (\d+)$/m);
  return { bg, tcp: Number(m[1]), udp: Number(m[2]) };
}

/** A fixture client: a long-lived TCP connection and UDP socket, then a loop for secs. */
function startClient(
  t: Test,
  fx: string,
  srv: { tcp: number; udp: number },
  o: { secs: number; status: number; record?: string; comm?: string },
): Bg {
  const env: NodeJS.ProcessEnv = {};
  if (o.record) env.AF_RECORD = o.record;
  if (o.comm) env.AF_COMM = o.comm;
  return startBg(t, [PY, fx, 'client', HOST, String(srv.tcp), String(srv.udp), String(o.secs), String(o.status)], { env });
}

const CLIENT_OUT = /^started (\d+) (\d+)\ndone (\d+) (\d+)\n$/;

// ---- tracedump in attach mode -------------------------------------------------------------

type Ev = TdRun['events'][number];

interface Td {
  pid: number;
  child: ChildProcess;
  done: Promise<TdRun>;
  /** Resolves with the first JSON event matching pred (rejects at exit or after ms). */
  waitEvent(pred: (e: Ev) => boolean, ms?: number): Promise<Ev>;
}

/** Pids of every tracedump this file started (checked at the end). */
const tdPids = new Set<number>();

/** bin/tracedump ARGS (no command: attach mode), killed by pid at teardown. */
function tracedump(t: Test, args: string[], timeoutMs = 60_000): Td {
  let err = '';
  let closed = false;
  const events: Ev[] = [];
  const waiters = new Set<() => void>();
  const { child, pid, done } = startTracedump(t, args, {
    timeoutMs,
    onStderrLine: (l) => {
      err += l + '\n';
      const e = eventOf(l);
      if (e) events.push(e);
      for (const w of waiters) w();
    },
  });
  tdPids.add(pid);
  void done.then(
    () => {
      closed = true;
      for (const w of waiters) w();
    },
    () => undefined,
  );
  const waitEvent = (pred: (e: Ev) => boolean, ms = 20_000) =>
    new Promise<Ev>((resolve, reject) => {
      const check = () => {
        const e = events.find(pred);
        if (e || closed) {
          clearTimeout(timer);
          waiters.delete(check);
          if (e) resolve(e);
          else reject(new Error(`tracedump exited without the event: ${err.slice(-500)}`));
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no such event within ${ms} ms: ${err.slice(-500)}`));
      }, ms);
      waiters.add(check);
      check();
    });
  return { pid, child, done, waitEvent };
}

/** State and tracer of every thread of pid ([] once it is gone). */
function tasks(pid: number): { tid: number; state: string; tracer: number }[] {
  let tids: string[];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const res: { tid: number; state: string; tracer: number }[] = [];
  for (const tid of tids) {
    try {
      const st = fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
      res.push({
        tid: Number(tid),
        state: /^State:\s*(.*)$/m.exec(st)?.[1] ?? '?',
        tracer: Number(/^TracerPid:\s*(\d+)/m.exec(st)?.[1] ?? -1),
      });
    } catch {
      /* thread gone meanwhile */
    }
  }
  return res;
}

/** Every thread of pid exists, has no tracer and is not stopped (t/T). */
function checkRunsFree(t: Test, pid: number, what: string): void {
  const ts = tasks(pid);
  t.ok(ts.length > 0, `${what} (pid ${pid}) is still running after the detach`);
  t.same(
    ts.filter((x) => x.tracer !== 0).map((x) => `${x.tid} TracerPid ${x.tracer}`),
    [],
    `${what}: TracerPid 0 in every thread (${ts.length})`,
  );
  t.same(
    ts.filter((x) => /^[tT]/.test(x.state)).map((x) => `${x.tid} ${x.state}`),
    [],
    `${what}: no thread is stopped`,
  );
}

/** A process exited: its exit status and its output, unchanged by the attach. */
async function checkFinished(t: Test, bg: Bg, status: number, outRe: RegExp, what: string): Promise<void> {
  const r = await bg.exited;
  t.equal(r.code, status, `${what} exited with its own status ${status} (${bg.err().slice(-300)})`);
  t.match(bg.out(), outRe, `${what} printed its normal output (${JSON.stringify(bg.out())})`);
  t.equal(bg.err(), '', `${what} wrote nothing on stderr`);
}

function checkRun(t: Test, run: TdRun): void {
  t.notOk(run.timedOut, 'tracedump ended within its time limit');
  t.equal(run.status, 0, `tracedump exits 0 (${run.stderr.slice(-300)})`);
  t.ok(run.summary, `summary line (${run.summary?.line ?? run.stderr.slice(-300)})`);
  t.equal(run.summary?.dropped, 0, 'tracedump: 0 packets dropped by the kernel');
}

function multiset(ps: Packet[]): Map<string, Packet[]> {
  const m = new Map<string, Packet[]>();
  for (const p of ps) {
    const k = packetKey(p);
    const l = m.get(k);
    if (l) l.push(p);
    else m.set(k, [p]);
  }
  return m;
}

const listed = (ps: Packet[]) => {
  const l = [...ps].sort((a, b) => a.ms - b.ms).map(describe);
  return l.length > 20 ? [...l.slice(0, 20), `... and ${l.length - 20} more`] : l;
};

const lastPacket = (ps: Packet[]) => (ps.length ? Math.max(...ps.map((p) => p.ms)) : -Infinity);

/**
 * The capture window of an attach: from the attach (plus a margin: a thread may still send
 * while it is being seized) to `to`, by default the last packet tracedump wrote (it was
 * capturing then, so every program packet before it must be in the file). Recall: every program packet of the
 * oracle inside the window is in the file; precision: every packet of the file is a program
 * packet the oracle saw, once; none of `other`.
 */
function checkWindow(
  t: Test,
  o: { td: Packet[]; program: Packet[]; other: Packet[]; from: number; to?: number; minSpanMs: number },
): { to: number; inWindow: Packet[] } {
  const to = o.to ?? lastPacket(o.td);
  t.ok(
    to - o.from >= o.minSpanMs,
    `the window is ${(to - o.from).toFixed(0)} ms long (>= ${o.minSpanMs}: it captured till the end)`,
  );
  const inWindow = o.program.filter((p) => p.ms >= o.from && p.ms <= to);
  const got = multiset(o.td);
  const want = multiset(o.program);
  const otherKeys = new Set(o.other.map((p) => packetKey(p)));
  const missing: Packet[] = [];
  for (const [k, l] of multiset(inWindow)) missing.push(...l.slice(got.get(k)?.length ?? 0));
  t.same(listed(missing), [], `recall: all ${inWindow.length} program packets of the oracle inside the window are in the file`);
  const extra: Packet[] = [];
  const dup: Packet[] = [];
  for (const [k, l] of got) {
    const w = want.get(k)?.length ?? 0;
    if (w === 0) extra.push(...l);
    else if (l.length > w) dup.push(...l.slice(w));
  }
  t.same(listed(extra.filter((p) => otherKeys.has(packetKey(p)))), [], 'precision: no packet of another process is in the file');
  t.same(listed(extra.filter((p) => !otherKeys.has(packetKey(p)))), [], 'precision: no packet the oracle did not see');
  t.same(listed(dup), [], 'no duplicated packet');
  return { to, inWindow };
}

/** TCP connections of `packets` that began (SYN) and ended (last FIN/ACK) inside [from, to]. */
function connectionsInside(packets: Packet[], from: number, to: number): Packet[][] {
  return tcpConnections(packets).filter(
    (c) => c[0].ms >= from && c[c.length - 1].ms <= to && (c[0].tcpFlags & TCP_SYN) !== 0 && c.some((p) => p.tcpFlags & TCP_FIN),
  );
}

const ATTACH_MARGIN_MS = 20;

// ---- 1. a client ------------------------------------------------------------------------------

t.test('attach to a running client for 2 s beside an untraced twin: the window, whole; the client runs on', async (t) => {
  const dir = workDir(t, 'attach');
  const fx = writeFixture(dir);
  const srv = await startServer(t, fx);
  const oracle = await startOracle(t, { file: path.join(dir, 'oracle.pcap'), filter: portFilter([srv.tcp, srv.udp]) });
  const rec = path.join(dir, 'client.jsonl');
  const noiseRec = path.join(dir, 'noise.jsonl');
  const client = startClient(t, fx, srv, { secs: 6, status: 3, record: rec });
  const noise = startClient(t, fx, srv, { secs: 6, status: 0, record: noiseRec });
  const started = await client.waitFor(/^started (\d+) (\d+)$/m);
  await noise.waitFor(/^started/m);
  const [longPort, udpPort] = [Number(started[1]), Number(started[2])];
  await sleep(1000); // the client is well into its loop

  const out = path.join(dir, 'out.pcap');
  const td = tracedump(t, ['-w', out, '--events=json', '-p', String(client.pid), '--duration', '2']);
  const run = await td.done;
  checkRunsFree(t, client.pid, 'the client'); // at once: the client still has ~2 s to go
  checkRun(t, run);
  await checkFinished(t, client, 3, CLIENT_OUT, 'the client');
  t.equal((await noise.exited).code, 0, 'the untraced twin succeeded');
  const stats = await oracle.stop();
  t.equal(stats.dropped, 0, 'the oracle dropped nothing');

  // the events: one attach (1 thread), the two sockets it already had
  const attach = run.events.filter((e) => e.kind === 'attach');
  t.same(
    attach.map((e) => [e.pid, e.threads]),
    [[client.pid, 1]],
    'one "attach" event: the client, 1 thread',
  );
  const existing = run.events.filter((e) => e.kind === 'socket' && e.call === 'existing');
  const ex = (proto: string, port: number) =>
    existing.some((e) => e.proto === proto && (e.local as { port: number } | null)?.port === port);
  t.ok(ex('tcp', longPort), `an "existing" event for the long-lived TCP connection (port ${longPort})`);
  t.ok(ex('udp', udpPort), `an "existing" event for the long-lived UDP socket (port ${udpPort})`);
  t.ok(run.events.some((e) => e.kind === 'socket' && e.call === 'connect'), 'connect events for the new connections');

  checkReadable(t, out);
  const tdFile = readPcap(out);
  t.equal(run.summary?.packets, tdFile.packets.length, 'the summary counts the packets in the file');
  const traced = readRecords(rec, 'traced');
  const others = readRecords(noiseRec, 'other');
  const { program, other } = classify(readPcap(oracle.file).packets, traced, others);
  const from = Math.max(...attach.map((e) => e.time as number), ...existing.map((e) => e.time as number)) + ATTACH_MARGIN_MS;
  // The client is sequential: everything it did before its last socket call tracedump
  // reported happened while it was traced; that call's time closes the window judged here.
  const to = Math.max(...run.events.filter((e) => e.kind === 'socket').map((e) => e.time as number));
  const { inWindow } = checkWindow(t, { td: tdFile.packets, program, other, from, to, minSpanMs: 1700 });

  // the issue's words, each on its own: whole short connections, the pre-existing sockets
  const inside = connectionsInside(program, from, to);
  const inFile = multiset(tdFile.packets);
  t.ok(inside.length >= 15, `the client made ${inside.length} connections inside the window`);
  t.same(
    inside.filter((c) => c.some((p) => !inFile.has(packetKey(p)))).map((c) => describe(c[0])),
    [],
    'every connection that started and ended inside the window is whole in the file',
  );
  const isLong = (p: Packet) => p.proto === 'tcp' && (p.sport === longPort || p.dport === longPort);
  const isLongUdp = (p: Packet) => p.proto === 'udp' && (p.sport === udpPort || p.dport === udpPort);
  const longIn = inWindow.filter(isLong);
  t.ok(longIn.filter((p) => p.payloadLen > 0).length >= 6, `data on the long-lived connection inside the window (${longIn.length} packets)`);
  t.ok(longIn.every((p) => inFile.has(packetKey(p))), 'every packet of the long-lived connection inside the window is in the file');
  t.notOk(tdFile.packets.some((p) => isLong(p) && p.tcpFlags & TCP_SYN), 'its SYN (before the attach) is not');
  const udpIn = inWindow.filter(isLongUdp);
  t.ok(udpIn.length >= 6, `datagrams of the pre-existing UDP socket inside the window (${udpIn.length})`);
  t.ok(udpIn.every((p) => inFile.has(packetKey(p))), 'every one of them is in the file');
  t.ok(other.length > 100, `the oracle saw the twin (${other.length} packets)`);
  const tdLast = lastPacket(tdFile.packets);
  const after = program.filter((p) => p.ms > tdLast + 200).length;
  t.ok(after > 20, `the client went on after the detach (${after} packets of it after the capture)`);
  // The file should end at the detach. Between that last traced call and the file's last
  // packet, no packet of the client may be missing: a reader of the file cannot tell that
  // the end of it is incomplete.
  const tail = program.filter((p) => p.ms > to && p.ms <= tdLast && !inFile.has(packetKey(p)));
  t.same(listed(tail), [], `the file ends at the detach: none of the client's packets before its last one (${(tdLast - to).toFixed(1)} ms after the last traced call) is missing`);
});

// ---- 2. a server ----------------------------------------------------------------------------

t.test('attach to a threaded server with clients: the window, whole; it keeps serving after the detach', async (t) => {
  const dir = workDir(t, 'attach');
  const fx = writeFixture(dir);
  const srv = await startServer(t, fx);
  const unrelated = await startServer(t, fx); // an untraced pair beside it
  const oracle = await startOracle(t, {
    file: path.join(dir, 'oracle.pcap'),
    filter: portFilter([srv.tcp, srv.udp, unrelated.tcp, unrelated.udp]),
  });
  // clients connected before the attach (a long-lived connection each, accepted before it)
  const clients = [1, 2].map(() => startClient(t, fx, srv, { secs: 5, status: 0 }));
  const pair = startClient(t, fx, unrelated, { secs: 5, status: 0 });
  for (const c of [...clients, pair]) await c.waitFor(/^started/m);
  await sleep(800);
  const threadsBefore = tasks(srv.bg.pid).length;

  const out = path.join(dir, 'out.pcap');
  const td = tracedump(t, ['-w', out, '--events=json', '-p', String(srv.bg.pid), '--duration', '2']);
  const run = await td.done;
  checkRunsFree(t, srv.bg.pid, 'the server');
  checkRun(t, run);
  for (const c of [...clients, pair]) await checkFinished(t, c, 0, CLIENT_OUT, 'a client (served across the detach)');
  // a new client after the detach is served as well
  const late = startClient(t, fx, srv, { secs: 0.3, status: 0 });
  await checkFinished(t, late, 0, CLIENT_OUT, 'a client that came after the detach');
  checkRunsFree(t, srv.bg.pid, 'the server, after serving on');
  const stats = await oracle.stop();
  t.equal(stats.dropped, 0, 'the oracle dropped nothing');

  const attach = run.events.filter((e) => e.kind === 'attach');
  t.equal(attach.length, 1, 'one "attach" event');
  t.ok(
    (attach[0]?.threads as number) >= 4,
    `it attached every thread: ${attach[0]?.threads} (>= 4: main, UDP, 2 long-lived handlers; ${threadsBefore} just before)`,
  );
  const existing = run.events.filter((e) => e.kind === 'socket' && e.call === 'existing');
  const exPorts = existing.map((e) => `${e.proto} ${(e.local as { port: number }).port} ${(e.remotes as unknown[]).length}`);
  t.ok(exPorts.includes(`tcp ${srv.tcp} 0`), `"existing" for the listening socket (${exPorts.join(', ')})`);
  t.ok(exPorts.includes(`udp ${srv.udp} 0`), '"existing" for the UDP socket');
  t.ok(exPorts.filter((x) => x === `tcp ${srv.tcp} 1`).length >= 2, '"existing" for the accepted long-lived connections');

  checkReadable(t, out);
  const tdFile = readPcap(out);
  // every packet to or from the server's ports is the server's
  const mine = (p: Packet) => (p.proto === 'tcp' ? [srv.tcp] : [srv.udp]).some((x) => p.sport === x || p.dport === x);
  const all = readPcap(oracle.file).packets;
  const program = all.filter(mine);
  const other = all.filter((p) => !mine(p));
  const from = Math.max(...run.events.filter((e) => e.kind === 'attach' || e.call === 'existing').map((e) => e.time as number)) + ATTACH_MARGIN_MS;
  const { to } = checkWindow(t, { td: tdFile.packets, program, other, from, minSpanMs: 1700 });
  const inside = connectionsInside(program, from, to);
  t.ok(inside.length >= 20, `connections accepted and closed inside the window: ${inside.length}`);
  const longData = tdFile.packets.filter((p) => p.proto === 'tcp' && p.payloadLen > 0 && /^R ping/.test(p.ip.subarray(p.ip.length - p.payloadLen).toString()));
  t.ok(longData.length >= 4, `answers on the long-lived connections accepted before the attach are in the file (${longData.length})`);
  t.ok(other.length > 100, `the oracle saw the unrelated pair (${other.length} packets)`);
});

// ---- 3. threads and children ------------------------------------------------------------------

// main, 3 threads from before the attach, 2 new ones, 2 children and a grandchild
const ACTORS = 9;

t.test('attach to a process with threads that then forks: every thread, children and grandchildren', async (t) => {
  const dir = workDir(t, 'attach');
  const fx = writeFixture(dir);
  const srv = await startServer(t, fx);
  const oracle = await startOracle(t, { file: path.join(dir, 'oracle.pcap'), filter: portFilter([srv.tcp, srv.udp]) });
  const rec = path.join(dir, 'family.jsonl');
  const noiseRec = path.join(dir, 'noise.jsonl');
  const go = path.join(dir, 'go');
  const fam = startBg(t, [PY, fx, 'family', HOST, String(srv.tcp), String(srv.udp), go, '5'], { env: { AF_RECORD: rec } });
  const nThreads = Number((await fam.waitFor(/^started (\d+)$/m))[1]);
  const noise = startClient(t, fx, srv, { secs: 3, status: 0, record: noiseRec });
  await noise.waitFor(/^started/m);

  const out = path.join(dir, 'out.pcap');
  const td = tracedump(t, ['-w', out, '--events=json', '-p', String(fam.pid)]);
  await td.waitEvent((e) => e.kind === 'attach' && e.pid === fam.pid);
  fs.writeFileSync(go, ''); // the fixture starts its work (and forks) only now
  let famEnd = 0;
  void fam.exited.then(() => (famEnd = Date.now()));
  await checkFinished(t, fam, 5, /^started \d+\ndone 2 children\n$/, 'the process');
  const run = await td.done;
  const tdEnd = Date.now();
  checkRun(t, run);
  t.ok(
    tdEnd - famEnd < 8000,
    `tracedump ended by itself ${tdEnd - famEnd} ms after the process exited (its connections done, --linger 1 at most)`,
  );
  t.equal((await noise.exited).code, 0, 'the untraced noise client succeeded');
  const stats = await oracle.stop();

  const attach = run.events.filter((e) => e.kind === 'attach');
  t.ok(nThreads >= 4, `the process had ${nThreads} threads at the attach`);
  t.same(attach.map((e) => [e.pid, e.threads]), [[fam.pid, nThreads]], `attached with all ${nThreads} threads`);
  const traced = readRecords(rec, 'traced');
  const pids = [...new Set(traced.map((r) => r.pid))].filter((p) => p !== fam.pid);
  const forked = run.events.filter((e) => e.kind === 'spawn' && e.thread === false).map((e) => e.child as number);
  t.equal(pids.length, 3, 'two children and a grandchild recorded their sockets');
  t.same(pids.filter((p) => !forked.includes(p)), [], 'tracedump saw every child and grandchild being forked');
  const newThreads = run.events.filter((e) => e.kind === 'spawn' && e.thread === true && e.pid === fam.pid);
  t.ok(newThreads.length >= 2, `tracedump saw the new threads (${newThreads.length})`);
  t.equal(traced.length, ACTORS * 5, `each of the ${ACTORS} threads and processes made its 5 sockets`);

  // all of the process's traffic came after the attach: the whole of it is judged
  const r = checkCapture(t, {
    tdFile: out,
    oracleFile: oracle.file,
    oracleStats: stats,
    run,
    traced,
    others: readRecords(noiseRec, 'other'),
    tcpConnections: ACTORS * 3,
    udpSent: ACTORS * 2,
    udpReceived: ACTORS * 2,
  });
  const byPid = (pid: number) => r.td.packets.filter((p) => traced.some((x) => x.pid === pid && recMatches(x, p))).length;
  t.same(
    pids.filter((p) => byPid(p) === 0),
    [],
    `the file holds packets of every child and grandchild (${pids.map((p) => `${p}: ${byPid(p)}`).join(', ')})`,
  );
});

// ---- 4. --pname, -p A,B -------------------------------------------------------------------------

t.test('--pname attaches every process of that name and no other; -p A,B both', async (t) => {
  const dir = workDir(t, 'attach');
  const fx = writeFixture(dir);
  const srv = await startServer(t, fx);
  const name = `tdatt${process.pid % 100000}${Math.floor(Math.random() * 1000)}`.slice(0, 15);
  const recA = path.join(dir, 'named.jsonl');
  const recB = path.join(dir, 'other.jsonl');
  const named = [1, 2].map(() => startClient(t, fx, srv, { secs: 6, status: 3, record: recA, comm: name }));
  const otherName = startClient(t, fx, srv, { secs: 6, status: 3, record: recB, comm: `${name.slice(0, 13)}x` });
  for (const c of [...named, otherName]) await c.waitFor(/^started/m);

  const out = path.join(dir, 'out.pcap');
  const run = await tracedump(t, ['-w', out, '--events=json', '--pname', name, '--duration', '1.5']).done;
  checkRun(t, run);
  t.same(
    run.events.filter((e) => e.kind === 'attach').map((e) => e.pid).sort(),
    named.map((c) => c.pid).sort(),
    `attached to the two processes named ${name}, not to ${name.slice(0, 13)}x`,
  );
  for (const c of [...named, otherName]) checkRunsFree(t, c.pid, 'a client');

  // -p with two pids
  const out2 = path.join(dir, 'out2.pcap');
  const run2 = await tracedump(t, ['-w', out2, '--events=json', '-p', named.map((c) => c.pid).join(','), '--duration', '1']).done;
  checkRun(t, run2);
  t.same(
    run2.events.filter((e) => e.kind === 'attach').map((e) => e.pid).sort(),
    named.map((c) => c.pid).sort(),
    '-p A,B attached to both',
  );
  for (const c of named) checkRunsFree(t, c.pid, 'a client');
  for (const c of [...named, otherName]) await checkFinished(t, c, 3, CLIENT_OUT, 'a client');

  const recsA = readRecords(recA, 'traced');
  const recsB = readRecords(recB, 'other');
  for (const [file, label] of [
    [out, '--pname'],
    [out2, '-p A,B'],
  ]) {
    // packets to sockets by their ports and times (an ephemeral port may serve several)
    const { program, other } = classify(readPcap(file).packets, recsA, recsB);
    const of = (pid: number) => program.filter((p) => recsA.some((r) => r.pid === pid && recMatches(r, p))).length;
    t.ok(named.every((c) => of(c.pid) > 10), `${label}: packets of both processes (${named.map((c) => of(c.pid)).join(', ')})`);
    t.same(listed(other), [], `${label}: every packet is one of theirs (none of the third process)`);
  }
});

// ---- 5. stops -----------------------------------------------------------------------------------

t.test('stops: SIGINT, SIGTERM, SIGHUP, -c N detach; a stopped process stays stopped', async (t) => {
  const dir = workDir(t, 'attach');
  const fx = writeFixture(dir);
  const srv = await startServer(t, fx);

  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    await t.test(`${sig} to tracedump detaches`, async (t) => {
      const client = startClient(t, fx, srv, { secs: 4, status: 3 });
      await client.waitFor(/^started/m);
      const out = path.join(dir, `${sig}.pcap`);
      const td = tracedump(t, ['-w', out, '--events=json', '-p', String(client.pid)]);
      await td.waitEvent((e) => e.kind === 'attach');
      await sleep(700);
      const sent = Date.now();
      process.kill(td.pid, sig);
      const run = await td.done;
      checkRun(t, run);
      t.ok(Date.now() - sent < 3000, `tracedump ended ${Date.now() - sent} ms after ${sig}`);
      checkRunsFree(t, client.pid, 'the client');
      checkReadable(t, out);
      const n = readPcap(out).packets.length;
      t.ok(n > 20 && n === run.summary?.packets, `the file holds the ${run.summary?.packets} packets of the summary`);
      await checkFinished(t, client, 3, CLIENT_OUT, 'the client');
    });
  }

  await t.test('-c 10 stops after 10 packets', async (t) => {
    const client = startClient(t, fx, srv, { secs: 4, status: 3 });
    await client.waitFor(/^started/m);
    const out = path.join(dir, 'count.pcap');
    const run = await tracedump(t, ['-w', out, '-p', String(client.pid), '-c', '10']).done;
    checkRun(t, run);
    t.equal(client.child.exitCode, null, 'tracedump ended while the client was still running');
    checkRunsFree(t, client.pid, 'the client');
    checkReadable(t, out);
    t.equal(readPcap(out).packets.length, 10, 'the file holds exactly 10 packets');
    t.equal(run.summary?.packets, 10, 'the summary says 10');
    await checkFinished(t, client, 3, CLIENT_OUT, 'the client');
  });

  await t.test('a SIGSTOPped process stays stopped after the detach and goes on at SIGCONT', async (t) => {
    const client = startClient(t, fx, srv, { secs: 2, status: 3 });
    await client.waitFor(/^started/m);
    process.kill(client.pid, 'SIGSTOP');
    for (let i = 0; i < 100 && !tasks(client.pid).every((x) => x.state.startsWith('T')); i++) await sleep(10);
    t.ok(tasks(client.pid)[0]?.state.startsWith('T'), 'the client is stopped before the attach');
    const out = path.join(dir, 'stopped.pcap');
    const run = await tracedump(t, ['-w', out, '--events=json', '-p', String(client.pid), '--duration', '1']).done;
    checkRun(t, run);
    t.equal(run.events.filter((e) => e.kind === 'attach').length, 1, 'attached');
    checkReadable(t, out);
    await sleep(300);
    const ts = tasks(client.pid);
    t.same(ts.map((x) => [x.state[0], x.tracer]), [['T', 0]], 'after the detach: still stopped (T), TracerPid 0');
    process.kill(client.pid, 'SIGCONT');
    await checkFinished(t, client, 3, CLIENT_OUT, 'the client, continued');
  });

  await t.test('SIGCONT while attached: the process goes on and is captured', async (t) => {
    // its 6 s run on the wall clock outlasts tracedump's start (up to a second for the ring on
    // a VM whose fresh memory is slow to touch) and the 2 s of capture
    const client = startClient(t, fx, srv, { secs: 6, status: 3 });
    await client.waitFor(/^started/m);
    process.kill(client.pid, 'SIGSTOP');
    for (let i = 0; i < 100 && !tasks(client.pid).every((x) => x.state.startsWith('T')); i++) await sleep(10);
    const out = path.join(dir, 'cont.pcap');
    const td = tracedump(t, ['-w', out, '--events=json', '-p', String(client.pid), '--duration', '2']);
    await td.waitEvent((e) => e.kind === 'attach');
    await sleep(200);
    process.kill(client.pid, 'SIGCONT');
    const run = await td.done;
    checkRun(t, run);
    checkRunsFree(t, client.pid, 'the client');
    t.ok(readPcap(out).packets.length > 20, `its packets after SIGCONT are in the file (${readPcap(out).packets.length})`);
    await checkFinished(t, client, 3, CLIENT_OUT, 'the client');
  });
});

// ---- 6. failures ------------------------------------------------------------------------------

t.test('failures: exit 125, a message, the target untouched', async (t) => {
  const dir = workDir(t, 'attach');
  const fx = writeFixture(dir);
  const out = path.join(dir, 'out.pcap');
  const fail = async (args: string[], msg: RegExp, what: string) => {
    const run = await tracedump(t, ['-w', out, ...args], 20_000).done;
    t.equal(run.status, 125, `${what}: exit 125`);
    t.match(run.stderr, msg, `${what}: ${run.stderr.trim().split('\n')[0]}`);
    return run;
  };

  // a pid that was a process of ours and is gone (reaped)
  const gone = startBg(t, ['/usr/bin/true']);
  await gone.exited;
  t.notOk(fs.existsSync(`/proc/${gone.pid}`), `pid ${gone.pid} is free`);
  await fail(['-p', String(gone.pid)], new RegExp(`cannot attach to process ${gone.pid}: no such process`), 'a reaped pid');

  await fail(['-p', '2'], /cannot attach to process 2: it is a kernel thread/, 'kthreadd (pid 2)');

  // our own pid: sh execs tracedump with its own pid as argument
  const self = startBg(t, ['sh', '-c', `exec "${CLI}" -w "${out}" -p $$`]);
  const s = await self.exited;
  t.equal(s.code, 125, 'its own pid: exit 125');
  t.match(self.err(), new RegExp(`cannot attach to process ${self.pid}: that is tracedump itself`), `its own pid: ${self.err().trim()}`);

  // a process traced by strace: the error names the tracer; the process runs on under strace
  const victim = startBg(t, [PY, fx, 'sleeper', '3', '4']);
  await victim.waitFor(/^started/m);
  const strace = startBg(t, ['strace', '-o', '/dev/null', '-p', String(victim.pid)]);
  for (let i = 0; i < 500 && tasks(victim.pid)[0]?.tracer !== strace.pid; i++) await sleep(10);
  t.equal(tasks(victim.pid)[0]?.tracer, strace.pid, 'strace traces the process');
  await fail(
    ['-p', String(victim.pid)],
    new RegExp(`cannot attach to process ${victim.pid}: it is already traced by process ${strace.pid} \\(strace\\)`),
    'a process traced by strace',
  );
  const vt = tasks(victim.pid);
  t.same(vt.map((x) => [x.tracer, /^[tT]/.test(x.state)]), [[strace.pid, false]], 'still traced by strace only, not stopped');
  await checkFinished(t, victim, 4, /^started\ndone\n$/, 'the strace-d process');
  await strace.exited;

  // -p with a command, --pname matching nothing; pid 1 is not touched
  const pid1 = tasks(1).map((x) => x.tracer);
  await fail(['-p', '1', '--', 'true'], /give either a command or -p\/--pname, not both/, '-p 1 -- true');
  t.same(tasks(1).map((x) => x.tracer), pid1, 'pid 1 untouched');
  await fail(['--pname', 'no-such-name-xyz'], /no running process is named no-such-name-xyz/, '--pname no-such-name-xyz');

  // an attachable process next to a failing pid: nothing attached, the good one untouched
  const ok = startBg(t, [PY, fx, 'sleeper', '1.5', '6']);
  await ok.waitFor(/^started/m);
  await fail(['-p', `${ok.pid},${gone.pid}`], /no such process/, 'a good pid and a gone one');
  t.same(tasks(ok.pid).map((x) => [x.tracer, /^[tT]/.test(x.state)]), [[0, false]], 'the good one: TracerPid 0, not stopped');
  await checkFinished(t, ok, 6, /^started\ndone\n$/, 'the good one');
});

t.test('no tracedump left running', async (t) => {
  await sleep(200);
  const left = [...tdPids].filter((p) => {
    try {
      return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('cli.js');
    } catch {
      return false;
    }
  });
  t.same(left, [], `none of the ${tdPids.size} tracedump processes is still running`);
});

noLeftovers(t);
