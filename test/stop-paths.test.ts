// Every way a launched run (`tracedump -w FILE -- COMMAND`) can stop: the command exits, Ctrl-C
// at a real terminal (once, twice), SIGINT/SIGTERM/SIGHUP to tracedump alone, `timeout`, -c,
// --duration, SIGKILL of tracedump itself, SIGSTOP/SIGCONT of the command, an unwritable output,
// a command that cannot run, a full disk. After each: the exit status the spec promises, a
// capture file tshark reads without error, and no process of the run left stopped, traced or
// orphaned. Real processes and real loopback packets to an untraced server; no mocks.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { FLOWS, PY, noLeftovers, sh, sleep, startServer, workDir } from './helpers/capture';
import { CLI } from './helpers/tracedump';

const dir = workDir(t, 'stop');

// The command runs as tracedump's user: under `sudo npm test` tracedump would drop to
// SUDO_UID, which is not what these tests are about.
const ENV: NodeJS.ProcessEnv = { ...process.env };
for (const k of ['SUDO_UID', 'SUDO_GID', 'SUDO_USER', 'SUDO_COMMAND']) delete ENV[k];

// ---- the traced commands (python, bounded by alarm) -----------------------------------------

const COMMON = String.raw`
import os, signal, socket, sys, time
signal.alarm(60)
PORT = int(sys.argv[1])
def say(*a):
    print(*a, flush=True)
def get(tag):
    # one HTTP-like request to the untraced flows.py server (it closes first)
    s = socket.create_connection(('127.0.0.1', PORT), timeout=10)
    s.sendall(('GET /%s HTTP/1.0\r\n\r\n' % tag).encode())
    d = b''
    while True:
        c = s.recv(65536)
        if not c:
            break
        d += c
    s.close()
    if not d.startswith(b'HTTP/1.0 200'):
        raise SystemExit('bad answer %r' % d[:40])
def pause(sec, until=lambda: False):
    end = time.time() + sec
    while time.time() < end and not until():
        time.sleep(0.02)
`;

const SCRIPTS: Record<string, string> = {
  // PORT CODE: two requests, then exit CODE
  'exit.py': String.raw`
get('a')
get('b')
say('done', int(time.time() * 1000))
sys.exit(int(sys.argv[2]))
`,
  // PORT: one request, then killed by its own SIGUSR1
  'selfkill.py': String.raw`
get('a')
say('dying', int(time.time() * 1000))
os.kill(os.getpid(), signal.SIGUSR1)
pause(10)
`,
  // PORT: reports every SIGINT; after the first one makes one more request and exits 42
  'sigint.py': String.raw`
n = 0
def on_int(s, f):
    global n
    n += 1
    say('got SIGINT')
signal.signal(signal.SIGINT, on_int)
try:
    fg = os.tcgetpgrp(0)
except OSError:
    fg = -1
say('pid %d pgrp %d fg %d' % (os.getpid(), os.getpgrp(), fg))
get('before')
say('ready')
pause(30, lambda: n > 0)
if n == 0:
    sys.exit(3)
get('after')
pause(0.5)  # a second SIGINT (tracedump passing on what the terminal already sent) would show
say('exiting after %d' % n)
sys.exit(42)
`,
  // PORT: ignores SIGINT, one request, then waits
  'ignint.py': String.raw`
signal.signal(signal.SIGINT, signal.SIG_IGN)
get('before')
say('ready pid %d' % os.getpid())
pause(30)
`,
  // PORT [ignore]: one request, then waits; with "ignore" it and a child it forks ignore SIGTERM
  'term.py': String.raw`
ignore = len(sys.argv) > 2 and sys.argv[2] == 'ignore'
child = 0
if ignore:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = os.fork()
    if child == 0:
        pause(30)
        os._exit(0)
get('before')
say('ready pid %d child %d' % (os.getpid(), child))
pause(30)
`,
  // PORT N: N requests 50 ms apart, then waits
  'count.py': String.raw`
say('pid %d' % os.getpid())
for i in range(int(sys.argv[2])):
    get('n%d' % i)
    time.sleep(0.05)
say('all sent')
pause(30)
`,
  // PORT [ignore]: a request every 100 ms (SIGTERM ignored with "ignore")
  'steady.py': String.raw`
if len(sys.argv) > 2 and sys.argv[2] == 'ignore':
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
say('pid %d' % os.getpid())
for i in range(300):
    get('s%d' % i)
    time.sleep(0.1)
`,
  // PORT: ticks (the test stops and continues it meanwhile), then three requests, exit 5
  'stopcont.py': String.raw`
say('pid %d' % os.getpid())
for i in range(60):
    say('tick %d' % i)
    time.sleep(0.05)
for i in range(3):
    get('c%d' % i)
say('done')
sys.exit(5)
`,
  // PORT: a UDP datagram to PORT every 5 ms for up to 15 s; reports on stderr
  'flood.py': String.raw`
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sys.stderr.write('pid %d\n' % os.getpid())
sys.stderr.flush()
for i in range(3000):
    u.sendto(b'x' * 500, ('127.0.0.1', PORT))
    time.sleep(0.005)
sys.stderr.write('finished\n')
`,
  // PORT BYTES: sends BYTES to a sink server in 64 KiB writes (a short pause every MiB), waits
  'bulk.py': String.raw`
n = int(sys.argv[2])
s = socket.create_connection(('127.0.0.1', PORT), timeout=20)
say('pid %d' % os.getpid())
chunk = bytes(range(256)) * 256
sent = 0
while sent < n:
    s.sendall(chunk)
    sent += len(chunk)
    if sent % (1 << 20) == 0:
        time.sleep(0.05)
s.shutdown(socket.SHUT_WR)
d = s.recv(100)
s.close()
say('sent %d, answer %r' % (sent, d))
pause(30)
`,
};

const SCRIPT_DIR = path.join(dir, 'scripts');
fs.mkdirSync(SCRIPT_DIR);
for (const [name, body] of Object.entries(SCRIPTS)) fs.writeFileSync(path.join(SCRIPT_DIR, name), COMMON + body);
const script = (name: string) => path.join(SCRIPT_DIR, name);

// A pseudo-terminal: tracedump is the session leader of a new session whose controlling
// terminal is the pty (pty.fork), so it is in the terminal's foreground process group as when
// typed at a shell. The driver copies the terminal's output to its stdout, writes Ctrl-C (\x03)
// to the master for each "INT" line on its stdin, and reports tracedump's exit status.
const DRIVER = String.raw`
import os, pty, select, signal, sys, time
signal.alarm(90)
argv = sys.argv[1:]
pid, fd = pty.fork()
if pid == 0:
    if os.environ.get('TD_STDERR'):  # tracedump's stderr to a file instead of the terminal
        os.dup2(os.open(os.environ['TD_STDERR'], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 2)
    os.execv(argv[0], argv)
os.write(1, b'DRIVER child %d\n' % pid)
status = None
ended = None
stdin_open = True
closed = False
while True:
    if status is None:
        p, st = os.waitpid(pid, os.WNOHANG)
        if p == pid:
            status = os.waitstatus_to_exitcode(st)
            ended = time.time()
    if ended is not None and (closed or time.time() - ended > 0.3):
        break  # tracedump is gone; what is left of the output has been read
    r, _, _ = select.select(([] if closed else [fd]) + ([0] if stdin_open else []), [], [], 0.05)
    if fd in r:
        try:
            d = os.read(fd, 65536)
        except OSError:
            d = b''
        if not d:
            if status is None:
                _, st = os.waitpid(pid, 0)
                status = os.waitstatus_to_exitcode(st)
            break
        os.write(1, d)
    if 0 in r:
        line = sys.stdin.readline()
        if not line:
            stdin_open = False
        elif line.strip() == 'INT':  # Ctrl-C typed at the terminal
            os.write(fd, b'\x03')
            os.write(1, b'\nDRIVER sent INT %d\n' % int(time.time() * 1000))
        elif line.strip() == 'CLOSE':  # the terminal goes away (its window is closed)
            os.close(fd)
            closed = True
            os.write(1, b'\nDRIVER closed the terminal\n')
os.write(1, b'\nDRIVER exit %d\n' % status)
`;
const DRIVER_FILE = path.join(SCRIPT_DIR, 'pty-driver.py');
fs.writeFileSync(DRIVER_FILE, DRIVER);

// ---- processes --------------------------------------------------------------------------------

interface Proc {
  pid: number;
  child: ChildProcess;
  out(): string;
  err(): string;
  /** Resolves with the first match of re on stdout (or stderr) and when it was seen. */
  waitFor(re: RegExp, ms?: number, stream?: 'out' | 'err'): Promise<{ m: RegExpExecArray; at: number }>;
  write(s: string): void;
  alive(): boolean;
  done: Promise<{ status: number | null; signal: NodeJS.Signals | null; at: number; ms: number; timedOut: boolean }>;
}

const tracked = new Map<number, string>(); // pid -> cmdline when first seen

function cmdline(pid: number): string | null {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return null;
  }
}

/** Kills pid at teardown (SIGKILL by pid) if it is still the same process. */
function track(tt: { teardown(fn: () => void): void }, pid: number): void {
  if (tracked.has(pid)) return;
  const c = cmdline(pid);
  if (c === null) return;
  tracked.set(pid, c);
  tt.teardown(() => {
    if (cmdline(pid) === c) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  });
}

/**
 * Starts argv in a new session (no controlling terminal: setsid), stdout and stderr piped;
 * SIGKILLed after limitMs and, by pid, at teardown.
 */
function start(
  tt: Test,
  argv: string[],
  opts: { limitMs?: number; stdin?: 'pipe' | 'ignore'; env?: NodeJS.ProcessEnv } = {},
): Proc {
  const begin = Date.now();
  const child = spawn(argv[0], argv.slice(1), { env: { ...ENV, ...(opts.env ?? {}) }, cwd: dir, detached: true, stdio: [opts.stdin ?? 'ignore', 'pipe', 'pipe'] });
  const pid = child.pid as number;
  let out = '';
  let err = '';
  let finished = false;
  let timedOut = false;
  const waiters = new Set<() => void>();
  const poke = () => {
    for (const w of waiters) w();
  };
  child.stdout?.on('data', (c: Buffer) => {
    out += c.toString();
    poke();
  });
  child.stderr?.on('data', (c: Buffer) => {
    err += c.toString();
    poke();
  });
  const limit = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, opts.limitMs ?? 60_000);
  const done = new Promise<{ status: number | null; signal: NodeJS.Signals | null; at: number; ms: number; timedOut: boolean }>((resolve) => {
    child.on('close', (status, signal) => {
      clearTimeout(limit);
      finished = true;
      poke();
      const at = Date.now();
      resolve({ status, signal, at, ms: at - begin, timedOut });
    });
  });
  tt.teardown(async () => {
    clearTimeout(limit);
    if (!finished && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await done;
  });
  const waitFor = (re: RegExp, ms = 20_000, stream: 'out' | 'err' = 'out') =>
    new Promise<{ m: RegExpExecArray; at: number }>((resolve, reject) => {
      const check = () => {
        const m = re.exec(stream === 'out' ? out : err);
        if (m) {
          cleanup();
          resolve({ m, at: Date.now() });
        } else if (finished) {
          cleanup();
          reject(new Error(`${argv.join(' ')} ended before ${re}: stdout ${out} stderr ${err}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${argv.join(' ')}: no ${re} within ${ms} ms: stdout ${out} stderr ${err}`));
      }, ms);
      const cleanup = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });
  return {
    pid,
    child,
    out: () => out,
    err: () => err,
    waitFor,
    write: (s) => child.stdin?.write(s),
    alive: () => !finished,
    done,
  };
}

/** bin/tracedump ARGS -- COMMAND (no controlling terminal). */
function tracedump(tt: Test, args: string[], command: string[], limitMs = 60_000): Proc {
  return start(tt, [CLI, ...args, '--', ...command], { limitMs });
}

function status(pid: number): { state: string; tracer: number; ppid: number } | null {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    return {
      state: /^State:\s+(\S)/m.exec(s)?.[1] ?? '?',
      tracer: Number(/^TracerPid:\s+(\d+)/m.exec(s)?.[1] ?? -1),
      ppid: Number(/^PPid:\s+(\d+)/m.exec(s)?.[1] ?? -1),
    };
  } catch {
    return null;
  }
}

/** pid and all its descendants (now). */
/** The capture file's guardian (a child of tracedump that outlives it only to cut the file). */
function isGuard(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'tracedump-guard';
  } catch {
    return false;
  }
}

/** pid and its descendants, tracedump's file guardian left out. */
function guardsOf(pid: number): number[] {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).map(Number).filter(isGuard);
  } catch {
    return [];
  }
}

/** The private key log directories named in a process's SSLKEYLOGFILE. */
function keyLogDirsOf(pid: number): string[] {
  try {
    const env = fs.readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0');
    return env.filter((kv) => kv.startsWith('SSLKEYLOGFILE=')).map((kv) => path.dirname(kv.slice('SSLKEYLOGFILE='.length)));
  } catch {
    return [];
  }
}

function tree(pid: number): number[] {
  const all = [pid];
  for (let i = 0; i < all.length; i++) {
    let tasks: string[] = [];
    try {
      tasks = fs.readdirSync(`/proc/${all[i]}/task`);
    } catch {
      continue;
    }
    for (const task of tasks) {
      try {
        for (const c of fs.readFileSync(`/proc/${all[i]}/task/${task}/children`, 'utf8').trim().split(/\s+/))
          if (c && !all.includes(Number(c)) && !isGuard(Number(c))) all.push(Number(c));
      } catch {
        /* gone */
      }
    }
  }
  return all;
}

/** The pids among `pids` still running (zombies waiting for a reaper count as gone). */
function running(pids: number[]): string[] {
  const left: string[] = [];
  for (const p of pids) {
    const s = status(p);
    if (s && s.state !== 'Z' && s.state !== 'X') left.push(`pid ${p} state ${s.state} tracer ${s.tracer}: ${cmdline(p)?.slice(0, 100)}`);
  }
  return left;
}

/** Waits up to ms for every pid to be gone; returns the ones left. */
async function gone(pids: number[], ms = 2000): Promise<string[]> {
  const end = Date.now() + ms;
  for (;;) {
    const left = running(pids);
    if (left.length === 0 || Date.now() > end) return left;
    await sleep(50);
  }
}

/** Checks what must hold after every run: none of its processes stopped, traced or left over. */
async function noneLeft(tt: Test, pids: number[], ms = 2000): Promise<void> {
  const left = await gone(pids, ms);
  tt.same(left, [], `none of the run's ${pids.length} processes (${pids.join(' ')}) is left (stopped, traced or running)`);
  for (const p of pids) {
    const s = status(p);
    if (s) tt.ok(s.tracer === 0 && s.state !== 'T' && s.state !== 't', `pid ${p} is neither traced nor stopped (${JSON.stringify(s)})`);
  }
}

// ---- the file ---------------------------------------------------------------------------------

/** tshark -r FILE [-Y filter]: asserts it reads without any error; returns the packet count. */
function tshark(tt: Test, file: string, filter?: string): number {
  const r = spawnSync('tshark', ['-r', file, '-n', ...(filter ? ['-Y', filter] : [])], {
    encoding: 'utf8',
    timeout: 120_000,
    maxBuffer: 1 << 28,
  });
  const problems = (r.stderr ?? '')
    .split('\n')
    .filter((l) => l.trim() && !/^Running as user/.test(l));
  if (!filter) {
    tt.equal(r.status, 0, `tshark -r ${path.basename(file)} exits 0`);
    tt.same(problems, [], `tshark -r ${path.basename(file)}: no error`);
  } else if (r.status !== 0 || problems.length) tt.fail(`tshark -Y ${filter}: ${r.status} ${problems.join(' | ')}`);
  return (r.stdout ?? '').split('\n').filter((l) => l.trim()).length;
}

/** capinfos' packet count. */
function capinfosCount(file: string): number {
  const r = spawnSync('capinfos', ['-c', '-M', file], { encoding: 'utf8' });
  const m = /Number of packets:\s+(\d+)/.exec(r.stdout ?? '');
  if (r.status !== 0 || !m) throw new Error(`capinfos ${file}: ${r.status} ${r.stdout} ${r.stderr}`);
  return Number(m[1]);
}

/** Connections to port in the file: SYNs from the client and FINs (both directions). */
function conns(tt: Test, file: string, port: number): { syn: number; fin: number } {
  return {
    syn: tshark(tt, file, `tcp.dstport == ${port} && tcp.flags.syn == 1 && tcp.flags.ack == 0`),
    fin: tshark(tt, file, `tcp.port == ${port} && tcp.flags.fin == 1`),
  };
}

async function httpServer(tt: Test): Promise<number> {
  const s = await startServer(tt, ['serve-tcp', '127.0.0.1', 0]);
  return s.port;
}

const pcap = (name: string) => path.join(dir, name);

// ---- the command exits --------------------------------------------------------------------------

t.test('the command exits: tracedump lingers until its connections are done, closes the file and exits with its status', async (t) => {
  const port = await httpServer(t);
  const file = pcap('exit7.pcap');
  // a shell that runs the client and then exits 7: the status is the shell's
  const td = tracedump(t, ['-w', file], ['sh', '-c', `${PY} "$0" "$1" 0 && exit 7`, script('exit.py'), String(port)]);
  const seen = await td.waitFor(/^done (\d+)$/m);
  const r = await td.done;
  t.equal(r.status, 7, 'exit status 7 (the command’s)');
  const lingered = r.at - seen.at;
  // the connections close before the command exits: nothing is left to wait for
  t.ok(lingered < 6000, `ended ${lingered} ms after the command exited`);
  t.match(td.err(), /tracedump: \d+ packets .* written to /, 'summary line');
  t.equal(tshark(t, file) > 0, true, 'packets in the file');
  // the linger keeps the last FIN/ACKs: both connections whole
  t.same(conns(t, file, port), { syn: 2, fin: 4 }, 'both connections from SYN to both FINs');
  await noneLeft(t, [td.pid]);
});

t.test('--linger S bounds the wait for a connection that is not done (a server that never closes)', async (t) => {
  const port = await httpServer(t);
  const hold = (await startServer(t, ['serve-tcp', '127.0.0.1', 0, 0, 'hold'])).port;
  const file = pcap('linger.pcap');
  const td = tracedump(t, ['-w', file, '--linger', '2.5'], ['sh', '-c', `${PY} "$0" "$1" 0 && exec ${PY} ${FLOWS} tcp-leave 127.0.0.1 "$2"`, script('exit.py'), String(port), String(hold)]);
  const seen = await td.waitFor(/^done leave$/m);
  const r = await td.done;
  t.equal(r.status, 0);
  const lingered = r.at - seen.at;
  t.ok(lingered >= 2400 && lingered < 7000, `lingered 2.5 s (${lingered} ms)`);
  tshark(t, file);
  t.same(conns(t, file, port), { syn: 2, fin: 4 }, 'the finished connections whole');
  t.same(conns(t, file, hold), { syn: 1, fin: 1 }, "the held one's SYN and the program's FIN");
  await noneLeft(t, [td.pid]);
});

t.test('--linger S is not waited out when the connections are done', async (t) => {
  const port = await httpServer(t);
  const file = pcap('linger-done.pcap');
  const td = tracedump(t, ['-w', file, '--linger', '30'], [PY, script('exit.py'), String(port), '0']);
  const seen = await td.waitFor(/^done (\d+)$/m);
  const r = await td.done;
  t.equal(r.status, 0);
  const lingered = r.at - seen.at;
  // far from 30 s: what is checked is that it ends when done, not how fast
  t.ok(lingered < 10_000, `ended ${lingered} ms after the command exited, not 30 s`);
  t.same(conns(t, file, port), { syn: 2, fin: 4 }, 'both connections from SYN to both FINs');
  await noneLeft(t, [td.pid]);
});

t.test('the command killed by signal N: tracedump exits 128+N', async (t) => {
  const port = await httpServer(t);
  const file = pcap('selfkill.pcap');
  const td = tracedump(t, ['-w', file], [PY, script('selfkill.py'), String(port)]);
  const r = await td.done;
  t.equal(r.status, 128 + 10, 'SIGUSR1 (10) -> 138');
  t.equal(r.signal, null, 'tracedump itself exits normally');
  tshark(t, file);
  t.same(conns(t, file, port), { syn: 1, fin: 2 });
  await noneLeft(t, [td.pid]);
});

// ---- Ctrl-C at a terminal ------------------------------------------------------------------------

/** tracedump ARGS -- COMMAND on a pseudo-terminal (see DRIVER). */
function onTerminal(tt: Test, args: string[], command: string[], stderrFile?: string): Proc & { tdPid: Promise<number> } {
  const p = start(tt, [PY, DRIVER_FILE, CLI, ...args, '--', ...command], {
    stdin: 'pipe',
    limitMs: 60_000,
    env: stderrFile ? { TD_STDERR: stderrFile } : {},
  });
  const tdPid = p.waitFor(/^DRIVER child (\d+)/m).then(({ m }) => {
    const pid = Number(m[1]);
    track(tt, pid);
    return pid;
  });
  return { ...p, tdPid };
}

const driverExit = (out: string) => Number(/DRIVER exit (-?\d+)/.exec(out)?.[1] ?? NaN);

t.test('Ctrl-C at a terminal reaches the command once; tracedump ends when it does, with its status', async (t) => {
  const port = await httpServer(t);
  const file = pcap('ctrl-c.pcap');
  const term = onTerminal(t, ['-w', file], [PY, script('sigint.py'), String(port)]);
  const tdPid = await term.tdPid;
  const { m } = await term.waitFor(/pid (\d+) pgrp (-?\d+) fg (-?\d+)/);
  const cmdPid = Number(m[1]);
  track(t, cmdPid);
  // the command is in tracedump's process group, the terminal's foreground group
  t.equal(Number(m[2]), tdPid, 'the command is in tracedump’s process group');
  t.equal(Number(m[3]), tdPid, 'which is the terminal’s foreground group');
  await term.waitFor(/^ready/m);
  term.write('INT\n');
  await term.waitFor(/exiting after/);
  const r = await term.done;
  t.equal(r.status, 0, 'the driver itself ends');
  const out = term.out();
  t.equal(driverExit(out), 42, 'tracedump exits with the command’s status 42');
  t.equal(out.match(/got SIGINT/g)?.length, 1, 'the command got SIGINT exactly once (from the terminal, not again from tracedump)');
  t.match(out, /exiting after 1/, 'the command saw one SIGINT');
  t.match(out, /tracedump: \d+ packets .* written to /, 'summary line');
  t.notMatch(out, /interrupted twice/, 'one Ctrl-C is not a forced stop');
  tshark(t, file);
  // the request made after Ctrl-C was captured too: tracedump kept going until the command ended
  t.same(conns(t, file, port), { syn: 2, fin: 4 }, 'the requests before and after Ctrl-C, whole');
  await noneLeft(t, [tdPid, cmdPid]);
});

t.test('a second Ctrl-C stops tracedump at once (130), kills a command that ignores SIGINT, file whole', async (t) => {
  const port = await httpServer(t);
  const file = pcap('ctrl-c-twice.pcap');
  const term = onTerminal(t, ['-w', file], [PY, script('ignint.py'), String(port)]);
  const tdPid = await term.tdPid;
  const { m } = await term.waitFor(/ready pid (\d+)/);
  const cmdPid = Number(m[1]);
  track(t, cmdPid);
  await sleep(300);
  term.write('INT\n');
  await term.waitFor(/DRIVER sent INT/);
  await sleep(1200);
  // the command ignores SIGINT: the first Ctrl-C changes nothing
  t.ok(status(tdPid) !== null && status(cmdPid)?.state !== 'Z', 'after one Ctrl-C tracedump and the command still run');
  const treeBefore = tree(tdPid);
  term.write('INT\n');
  const sent = Date.now();
  const r = await term.done;
  const out = term.out();
  const exitAt = /DRIVER exit/.test(out) ? r.at : NaN;
  t.equal(driverExit(out), 130, 'tracedump exits 130');
  t.ok(exitAt - sent < 2500, `promptly after the second Ctrl-C (${exitAt - sent} ms, driver included)`);
  t.match(out, /interrupted twice/, 'says why');
  tshark(t, file);
  t.same(conns(t, file, port), { syn: 1, fin: 2 }, 'the request made before the Ctrl-Cs is in the file, whole');
  // EXITKILL: tracedump's exit killed the traced command
  await noneLeft(t, [...new Set([tdPid, cmdPid, ...treeBefore])]);
});

t.test(
  'the terminal closes (SIGHUP): the command is stopped, the file finished, the command’s status',
  async (t) => {
    const port = await httpServer(t);
    const file = pcap('hangup.pcap');
    const errFile = path.join(dir, 'hangup.stderr');
    const term = onTerminal(t, ['-w', file, '--kill-after', '1'], [PY, script('term.py'), String(port)], errFile);
    const tdPid = await term.tdPid;
    const { m } = await term.waitFor(/ready pid (\d+)/);
    const cmdPid = Number(m[1]);
    track(t, cmdPid);
    term.write('CLOSE\n');
    const r = await term.done;
    t.equal(r.status, 0, 'the driver itself ends');
    const err = fs.readFileSync(errFile, 'utf8');
    t.match(err, /tracedump: \d+ packets .* written to /, 'summary line: the file was finished');
    t.notMatch(err, /Assertion failed/, 'no crash on the way out');
    // The hangup reaches the command too (same session), and its writes to the terminal fail:
    // tracedump's SIGTERM (143), the kernel's SIGHUP (129) or an EIO (1), whichever comes first,
    // ends it; tracedump passes that status on.
    t.ok([143, 129, 1].includes(driverExit(term.out()) ?? -1), `the command's status is passed on (${driverExit(term.out())})`);
    tshark(t, file);
    t.same(conns(t, file, port), { syn: 1, fin: 2 });
    await noneLeft(t, [tdPid, cmdPid]);
  },
);

// ---- signals to tracedump alone -----------------------------------------------------------------

t.test('SIGINT to tracedump without a terminal is passed on to the command', async (t) => {
  const port = await httpServer(t);
  const file = pcap('sigint.pcap');
  const td = tracedump(t, ['-w', file], [PY, script('sigint.py'), String(port)]);
  const { m } = await td.waitFor(/pid (\d+) pgrp (-?\d+) fg (-?\d+)/);
  const cmdPid = Number(m[1]);
  track(t, cmdPid);
  t.equal(Number(m[3]), -1, 'precondition: no controlling terminal');
  await td.waitFor(/^ready/m);
  process.kill(td.pid, 'SIGINT');
  const r = await td.done;
  t.equal(r.status, 42, 'the command handled SIGINT and exited 42; so does tracedump');
  t.equal(td.out().match(/got SIGINT/g)?.length, 1, 'the command got SIGINT once');
  tshark(t, file);
  t.same(conns(t, file, port), { syn: 2, fin: 4 }, 'requests before and after SIGINT, whole');
  await noneLeft(t, [td.pid, cmdPid]);
});

t.test('SIGINT twice to tracedump without a terminal: it stops at once (130), the command is killed', async (t) => {
  const port = await httpServer(t);
  const file = pcap('sigint-twice.pcap');
  const td = tracedump(t, ['-w', file], [PY, script('ignint.py'), String(port)]);
  const { m } = await td.waitFor(/ready pid (\d+)/);
  const cmdPid = Number(m[1]);
  track(t, cmdPid);
  const pids = tree(td.pid);
  process.kill(td.pid, 'SIGINT');
  await sleep(800);
  t.ok(td.alive(), 'the command ignores the SIGINT passed on: tracedump goes on');
  process.kill(td.pid, 'SIGINT');
  const sent = Date.now();
  const r = await td.done;
  t.equal(r.status, 130);
  t.ok(r.at - sent < 2000, `at once (${r.at - sent} ms)`);
  tshark(t, file);
  t.same(conns(t, file, port), { syn: 1, fin: 2 });
  await noneLeft(t, pids);
});

for (const sig of ['SIGTERM', 'SIGHUP'] as const) {
  t.test(`${sig} to tracedump: SIGTERM to the command, file finished, status 143`, async (t) => {
    const port = await httpServer(t);
    const file = pcap(`${sig}.pcap`);
    const td = tracedump(t, ['-w', file, '--kill-after', '1'], [PY, script('term.py'), String(port)]);
    const { m } = await td.waitFor(/ready pid (\d+)/);
    const cmdPid = Number(m[1]);
    track(t, cmdPid);
    const sent = Date.now();
    process.kill(td.pid, sig);
    const r = await td.done;
    t.equal(r.status, 143, 'the command died of SIGTERM: 143');
    t.ok(r.at - sent < 5000, `ended promptly (${r.at - sent} ms, linger 1 s included)`);
    t.match(td.err(), /tracedump: \d+ packets .* written to /, 'summary line');
    tshark(t, file);
    t.same(conns(t, file, port), { syn: 1, fin: 2 });
    await noneLeft(t, [td.pid, cmdPid]);
  });
}

t.test('SIGTERM to tracedump, the command ignores it: SIGKILL after --kill-after, its child too, 137', async (t) => {
  const port = await httpServer(t);
  const file = pcap('term-ignored.pcap');
  const td = tracedump(t, ['-w', file, '--kill-after', '1'], [PY, script('term.py'), String(port), 'ignore']);
  const { m } = await td.waitFor(/ready pid (\d+) child (\d+)/);
  const pids = [td.pid, Number(m[1]), Number(m[2])];
  for (const p of pids.slice(1)) track(t, p);
  const sent = Date.now();
  process.kill(td.pid, 'SIGTERM');
  await sleep(600);
  t.ok(running([Number(m[1]), Number(m[2])]).length === 2, 'both still run before --kill-after');
  const r = await td.done;
  const ms = r.at - sent;
  t.equal(r.status, 137, 'the command died of SIGKILL: 137');
  t.ok(ms >= 950 && ms < 5000, `SIGKILL came after --kill-after 1 s (ended ${ms} ms after SIGTERM)`);
  tshark(t, file);
  t.same(conns(t, file, port), { syn: 1, fin: 2 });
  await noneLeft(t, pids);
});

for (const preserve of [false, true]) {
  t.test(`timeout -s TERM 2${preserve ? ' --preserve-status' : ''} tracedump ...: a batch runner's stop`, async (t) => {
    const port = await httpServer(t);
    const file = pcap(`timeout-${preserve}.pcap`);
    const argv = ['timeout', ...(preserve ? ['--preserve-status'] : []), '-s', 'TERM', '2', CLI, '-w', file, '--', PY, script('term.py'), String(port)];
    const p = start(t, argv);
    const { m } = await p.waitFor(/ready pid (\d+)/);
    const cmdPid = Number(m[1]);
    const pids = tree(p.pid);
    for (const x of pids) track(t, x);
    t.ok(pids.includes(cmdPid), 'the command runs under timeout and tracedump');
    const r = await p.done;
    // timeout reports 124 when it had to stop its command, or the command's (tracedump's) status
    t.equal(r.status, preserve ? 143 : 124, preserve ? 'tracedump exited 143' : 'timeout says it timed out');
    t.ok(r.ms >= 1900 && r.ms < 8000, `ended after ~2 s (${r.ms} ms)`);
    t.match(p.err(), /tracedump: \d+ packets .* written to /, 'tracedump finished the file and said so');
    tshark(t, file);
    t.same(conns(t, file, port), { syn: 1, fin: 2 });
    await noneLeft(t, pids);
  });
}

// ---- -c and --duration ----------------------------------------------------------------------------

t.test('-c N: exactly N packets, then the command is stopped like SIGTERM; a planned stop exits 0', async (t) => {
  const port = await httpServer(t);
  const file = pcap('count.pcap');
  const td = tracedump(t, ['-w', file, '-c', '10', '--kill-after', '1'], [PY, script('count.py'), String(port), '20']);
  const { m } = await td.waitFor(/^pid (\d+)/m);
  const cmdPid = Number(m[1]);
  track(t, cmdPid);
  const r = await td.done;
  t.equal(r.status, 0);
  t.notMatch(td.out(), /all sent/, 'the command was stopped before its 20 requests were done');
  tshark(t, file);
  t.equal(capinfosCount(file), 10, 'the file holds exactly 10 packets');
  t.match(td.err(), /tracedump: 10 packets/, 'and says so');
  await noneLeft(t, [td.pid, cmdPid]);
});

t.test('--duration S: SIGTERM at S seconds, file finished, 0', async (t) => {
  const port = await httpServer(t);
  const file = pcap('duration.pcap');
  const td = tracedump(t, ['-w', file, '--duration', '1.5', '--kill-after', '1'], [PY, script('steady.py'), String(port)]);
  const { m } = await td.waitFor(/^pid (\d+)/m);
  track(t, Number(m[1]));
  const r = await td.done;
  t.equal(r.status, 0);
  t.ok(r.ms >= 1400 && r.ms < 6000, `ended after the duration (${r.ms} ms)`);
  tshark(t, file);
  const c = conns(t, file, port);
  t.ok(c.syn >= 3 && c.syn <= 20, `the requests of ~1.5 s (${c.syn})`);
  await noneLeft(t, [td.pid, Number(m[1])]);
});

t.test('--duration S with a command that ignores SIGTERM: SIGKILL after --kill-after, still a planned stop (0)', async (t) => {
  const port = await httpServer(t);
  const file = pcap('duration-kill.pcap');
  const td = tracedump(t, ['-w', file, '--duration', '1', '--kill-after', '1'], [PY, script('steady.py'), String(port), 'ignore']);
  const { m } = await td.waitFor(/^pid (\d+)/m);
  track(t, Number(m[1]));
  const r = await td.done;
  t.equal(r.status, 0);
  t.match(td.err(), /; --duration 1 reached$/m);
  t.ok(r.ms >= 1900 && r.ms < 7000, `duration + kill-after (${r.ms} ms)`);
  tshark(t, file);
  t.ok(conns(t, file, port).syn >= 3, 'requests in the file');
  await noneLeft(t, [td.pid, Number(m[1])]);
});

// ---- SIGKILL of tracedump --------------------------------------------------------------------------

for (const buffered of [false, true]) {
  t.test(`tracedump killed with SIGKILL${buffered ? ' (-U)' : ''}: no tracee left, the flushed file readable`, async (t) => {
    const port = await httpServer(t);
    const file = pcap(`sigkill-${buffered}.pcap`);
    const td = tracedump(
      t,
      ['-w', file, ...(buffered ? ['-U'] : [])],
      ['sh', '-c', `${PY} "$0" "$1" 0 || exit 1; sleep 100 & echo "bg $!"; sleep 100`, script('exit.py'), String(port)],
    );
    await td.waitFor(/^bg (\d+)/m);
    // every batch flushed with -U; at least once a second without
    await sleep(buffered ? 600 : 2500);
    const pids = tree(td.pid);
    for (const p of pids.slice(1)) track(t, p);
    const traced = pids.slice(1).filter((p) => (status(p)?.tracer ?? 0) > 0);
    t.equal(pids.length, 4, `tracedump, sh and two sleeps (${pids.join(' ')})`);
    t.same(traced, pids.slice(1), 'precondition: sh and both sleeps are traced');
    const guards = guardsOf(td.pid);
    // one for the capture file, one for the private TLS key log (removed if tracedump dies)
    t.equal(guards.length, 2, 'the capture file and the TLS key log have their guardians');
    const keyDirs = keyLogDirsOf(pids[1]);
    t.equal(keyDirs.length, 1, 'the command was given a private key log');
    process.kill(td.pid, 'SIGKILL');
    const r = await td.done;
    t.equal(r.signal, 'SIGKILL');
    // EXITKILL: the tracer's death kills every tracee, none lingers stopped or orphaned; the
    // guardian cuts the file to whole records and ends too
    await noneLeft(t, [...pids, ...guards], 2000);
    tshark(t, file);
    t.same(conns(t, file, port), { syn: 2, fin: 4 }, 'the traffic before the kill is in the file');
    t.same(keyDirs.filter((d) => fs.existsSync(d)), [], 'the private key log is gone with tracedump');
  });
}

t.test(
  'tracedump killed with SIGKILL during a full-speed transfer: the file is readable',
  async (t) => {
    const sink = await startServer(t, ['serve-tcp', '127.0.0.1', 0, 0, 'sink']);
    for (let i = 0; i < 6; i++) {
      const buffered = i % 2 === 1;
      const file = pcap(`sigkill-bulk-${i}.pcap`);
      const td = tracedump(t, ['-w', file, ...(buffered ? ['-U'] : [])], [PY, FLOWS, 'tcp-bulk', '127.0.0.1', String(sink.port), '30000000000']);
      // kill while the file grows fast: flushes of up to 1 MiB follow each other
      for (let k = 0; k < 200 && (fs.existsSync(file) ? fs.statSync(file).size : 0) < 50 << 20; k++) await sleep(20);
      await sleep(37 * i);
      const pids = tree(td.pid);
      for (const p of pids.slice(1)) track(t, p);
      t.equal(pids.length, 2, 'tracedump and the client');
      const guards = guardsOf(td.pid);
      process.kill(td.pid, 'SIGKILL');
      await td.done;
      await noneLeft(t, [...pids, ...guards], 2000);
      t.comment(`${buffered ? '-U, ' : ''}${fs.statSync(file).size} bytes`);
      tshark(t, file);
      fs.rmSync(file, { force: true }); // hundreds of MiB each
    }
  },
);

// ---- SIGSTOP / SIGCONT --------------------------------------------------------------------------

t.test('SIGSTOP then SIGCONT from outside: the command stops, resumes, finishes; capture and status intact', async (t) => {
  const port = await httpServer(t);
  const file = pcap('stopcont.pcap');
  const td = tracedump(t, ['-w', file], [PY, script('stopcont.py'), String(port)]);
  const { m } = await td.waitFor(/^pid (\d+)/m);
  const cmdPid = Number(m[1]);
  track(t, cmdPid);
  await td.waitFor(/^tick 3$/m);
  process.kill(cmdPid, 'SIGSTOP');
  // stopped: a group-stop under ptrace shows as "t" (tracing stop), without ptrace as "T"
  let st = status(cmdPid);
  for (let i = 0; i < 40 && st && st.state !== 'T' && st.state !== 't'; i++) {
    await sleep(25);
    st = status(cmdPid);
  }
  t.match(st?.state, /^[Tt]$/, `the command is stopped (State ${st?.state})`);
  await sleep(100);
  const ticks = td.out().match(/tick/g)?.length ?? 0;
  await sleep(800);
  t.equal(td.out().match(/tick/g)?.length ?? 0, ticks, 'no progress while stopped');
  t.match(status(cmdPid)?.state, /^[Tt]$/, 'still stopped (not resumed by the tracer)');
  t.ok(td.alive(), 'tracedump waits');
  process.kill(cmdPid, 'SIGCONT');
  const r = await td.done;
  t.match(td.out(), /tick 59\ndone/, 'resumed and ran to its end');
  t.equal(r.status, 5, 'its exit status 5 passed through');
  tshark(t, file);
  t.same(conns(t, file, port), { syn: 3, fin: 6 }, 'the requests after SIGCONT were captured');
  await noneLeft(t, [td.pid, cmdPid]);
});

// ---- failures before the command runs --------------------------------------------------------

t.test('an unwritable output path: 125 and a clear message before the command runs', async (t) => {
  const marker = path.join(dir, 'ran');
  for (const out of ['/nonexistent-dir-td/x.pcap', '/proc/x.pcap', dir]) {
    const td = tracedump(t, ['-w', out], ['touch', marker]);
    const r = await td.done;
    t.equal(r.status, 125, `-w ${out}: 125`);
    t.match(td.err(), new RegExp(`cannot write ${out.replace(/[/.]/g, '\\$&')}`), 'the message names the path');
    t.notOk(fs.existsSync(marker), 'the command did not run');
    await noneLeft(t, [td.pid]);
  }
});

t.test('a command that does not exist: 127; one that cannot be executed: 126', async (t) => {
  const notExec = path.join(dir, 'not-executable.sh');
  fs.writeFileSync(notExec, `#!/bin/sh\ntouch ${path.join(dir, 'ran-126')}\n`, { mode: 0o644 });
  const cases: [string, number, RegExp][] = [
    ['tracedump-no-such-command-5e1d', 127, /tracedump-no-such-command-5e1d: command not found/],
    [path.join(dir, 'no', 'such', 'file'), 127, /No such file or directory/],
    [notExec, 126, /Permission denied/],
    [dir, 126, /Is a directory/],
  ];
  for (const [i, [cmd, want, msg]] of cases.entries()) {
    const file = pcap(`norun-${i}.pcap`);
    const td = tracedump(t, ['-w', file], [cmd, 'arg']);
    const r = await td.done;
    t.equal(r.status, want, `${path.basename(cmd)}: ${want}`);
    t.match(td.err(), msg, 'a shell’s message');
    // the file was opened first: it is there, an empty capture
    if (fs.existsSync(file)) t.equal(tshark(t, file), 0, 'the capture file is a valid empty capture');
    await noneLeft(t, [td.pid]);
  }
  t.notOk(fs.existsSync(path.join(dir, 'ran-126')), 'the non-executable file did not run');
});

// ---- disk full ----------------------------------------------------------------------------------

function mountSmall(t: Test, name: string, size: string): string {
  const mnt = path.join(dir, name);
  fs.mkdirSync(mnt);
  const r = sh(`mount -t tmpfs -o size=${size} tmpfs ${mnt}`);
  if (r.status !== 0) throw new Error(`mount -t tmpfs ${mnt}: ${r.out}`);
  // tap runs this before the top-level teardown that removes dir
  t.teardown(() => {
    sh(`umount ${mnt} || umount -l ${mnt}`);
  });
  return mnt;
}

for (const variant of ['-U, the command waits', 'the command ends by itself'] as const) {
  t.test(`disk full (${variant}): writing stops, the command is stopped, 125, the file valid and counted`, async (t) => {
    const mnt = mountSmall(t, `small-${variant.startsWith('-U') ? 'u' : 'plain'}`, '1m');
    const sink = await startServer(t, ['serve-tcp', '127.0.0.1', 0, 0, 'sink']);
    const file = path.join(mnt, 'full.pcap');
    const waits = variant.startsWith('-U');
    // bulk.py waits 30 s after sending 5 MiB: only tracedump can stop it that early; the flows.py
    // client ends by itself, and the failure is found when the file is drained and closed.
    const td = waits
      ? tracedump(t, ['-w', file, '-U', '--kill-after', '1'], [PY, script('bulk.py'), String(sink.port), String(5 << 20)])
      : tracedump(t, ['-w', file, '--kill-after', '1'], [PY, FLOWS, 'tcp-bulk', '127.0.0.1', String(sink.port), String(5 << 20)]);
    const pids = [td.pid];
    if (waits) {
      const { m } = await td.waitFor(/^pid (\d+)/m);
      pids.push(Number(m[1]));
      track(t, Number(m[1]));
    }
    const r = await td.done;
    t.equal(r.status, 125, 'tracedump failed: 125');
    if (waits) t.ok(r.ms < 15_000, `the command (which waits 30 s after sending) was stopped (${r.ms} ms)`);
    t.match(td.err(), /no space left/i, 'the message says the disk is full');
    const sm = /^tracedump: (\d+) packets in (.+?) \((\d+) captured after writing failed are lost\)/m.exec(td.err());
    t.ok(sm, `summary: ${/^tracedump: .*packets.*$/m.exec(td.err())?.[0]}`);
    tshark(t, file);
    const n = capinfosCount(file);
    t.equal(n, Number(sm?.[1]), `capinfos counts what the summary says the file holds (${n})`);
    t.ok(n > 0, 'the file holds the packets written before the disk was full');
    t.ok(Number(sm?.[3]) > 0, 'packets captured afterwards are counted as lost');
    t.ok(fs.statSync(file).size <= 1 << 20, 'the file fits the filesystem');
    await noneLeft(t, pids);
  });
}

t.test(
  'a disk already full: 125 before the command runs',
  async (t) => {
    const mnt = mountSmall(t, 'full', '64k');
    sh(`dd if=/dev/zero of=${mnt}/filler bs=4k count=64 2>/dev/null`);
    const marker = path.join(dir, 'ran-on-full-disk');
    const file = path.join(mnt, 'x.pcap');
    const td = tracedump(t, ['-w', file, '--kill-after', '1'], ['sh', '-c', `touch ${marker}; sleep 2`]);
    const r = await td.done;
    t.equal(r.status, 125);
    t.match(td.err(), /no space left/i);
    t.notOk(fs.existsSync(marker), 'the command did not run');
    t.notOk(fs.existsSync(file), 'no empty file left behind');
    await noneLeft(t, [td.pid]);
  },
);

t.test('the reader of -w - goes away: 125, the command is stopped', async (t) => {
  const td = tracedump(t, ['-w', '-', '--kill-after', '1'], [PY, script('flood.py'), '9']);
  const { m } = await td.waitFor(/^pid (\d+)/m, 20_000, 'err');
  const cmdPid = Number(m[1]);
  track(t, cmdPid);
  // read a few KiB of the stream, then close the pipe
  await new Promise<void>((resolve) => {
    let got = 0;
    const check = (c: Buffer) => {
      got += c.length;
      if (got >= 4096) {
        td.child.stdout?.off('data', check);
        td.child.stdout?.destroy();
        resolve();
      }
    };
    td.child.stdout?.on('data', check);
  });
  const r = await td.done;
  t.equal(r.status, 125);
  t.match(td.err(), /broken pipe/, 'says the reader went away');
  t.notMatch(td.err(), /finished/, 'the command was stopped before its end');
  t.ok(r.ms < 10_000, `promptly (${r.ms} ms)`);
  await noneLeft(t, [td.pid, cmdPid]);
});

noLeftovers(t);
