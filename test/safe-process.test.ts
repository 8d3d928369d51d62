// tracedump runs as root: nothing another user controls may reach it. SIGUSR1 prints figures
// and never opens Node's inspector; tracedump's Node takes no options from its environment
// while the command still gets them; durations of any length; a command line longer than a
// pcapng option; a file name with a newline.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { CLI } from './helpers/tracedump';

const PY = '/usr/bin/python3';
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tracedump-safe-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Started {
  pid: number;
  stdout: () => string;
  stderr: () => string;
  done: Promise<{ status: number | null; ms: number }>;
}

/**
 * bin/tracedump ARGS; `vars` are set through env(1) after tap has had its say (tap adds its
 * own loader to the NODE_OPTIONS of every process a test spawns).
 */
function start(args: string[], vars: Record<string, string> = {}, timeoutMs = 60_000): Started {
  const begin = Date.now();
  const assignments = Object.entries(vars).map(([k, v]) => `${k}=${v}`);
  const child = spawn('/usr/bin/env', ['-u', 'NODE_OPTIONS', ...assignments, CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c));
  child.stderr.on('data', (c: Buffer) => (err += c));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const done = new Promise<{ status: number | null; ms: number }>((resolve) =>
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, ms: Date.now() - begin });
    }),
  );
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  return { pid: child.pid!, stdout: () => out, stderr: () => err, done };
}

/** TCP ports some process of `pids` listens on (ss -ltnp). */
function listening(pids: number[]): string[] {
  const ss = spawnSync('ss', ['-ltnpH'], { encoding: 'utf8' }).stdout;
  return ss.split('\n').filter((l) => pids.some((p) => l.includes(`pid=${p},`)));
}

/** Waits until the file holds the pcapng header (the command has started). */
async function started(file: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (fs.existsSync(file) && fs.statSync(file).size > 0) return;
    await sleep(25);
  }
  throw new Error(`${file} never appeared`);
}

t.test('SIGUSR1 prints the figures so far and opens no debugger port', async (t) => {
  const file = path.join(dir, 'usr1.pcapng');
  const td = start(['-w', file, '--', PY, '-c', 'import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nfor i in range(30):\n    s.sendto(b"x", ("127.0.0.1", 9)); time.sleep(0.1)\n']);
  await started(file);
  await sleep(500);
  for (let i = 0; i < 3; i++) {
    process.kill(td.pid, 'SIGUSR1');
    await sleep(300);
  }
  t.same(listening([td.pid]), [], 'ss -ltnp: tracedump listens on no port after SIGUSR1');
  const r = await td.done;
  t.equal(r.status, 0, td.stderr());
  const reports = td.stderr().match(/^tracedump: \d+ packets \([^)]*\), 1 socket, 1 process, 0 dropped, 0:0\d$/gm) ?? [];
  t.equal(reports.length, 3, `one report per signal: ${td.stderr()}`);
  t.notMatch(td.stderr(), /Debugger|inspector|ws:\/\//i, 'no word of a debugger');
});

t.test('SIGUSR1 during start-up opens no debugger port either', async (t) => {
  // Node installs its inspector's SIGUSR1 handler before any of tracedump's code runs: a
  // signal in those first tens of milliseconds must find the inspector unable to listen
  const opened: string[] = [];
  for (let delay = 0; delay <= 60; delay += 4) {
    const td = start(['-q', '--linger', '0', '-w', path.join(dir, `early-${delay}.pcap`), '--', 'sleep', '0.2']);
    await sleep(delay);
    try {
      process.kill(td.pid, 'SIGUSR1');
    } catch {
      // already gone
    }
    await sleep(250);
    for (const l of listening([td.pid])) opened.push(`${delay} ms: ${l}`);
    await td.done;
  }
  t.same(opened, [], 'no listening socket after a SIGUSR1 at 0, 4, 8 ... 60 ms');
});

t.test("tracedump's Node takes no options from the environment; the command gets them as given", async (t) => {
  const file = path.join(dir, 'env.pcapng');
  const probe = `import os, sys, time\ntime.sleep(0.8)\nprint('NODE_OPTIONS=' + os.environ.get('NODE_OPTIONS', '<unset>'))\nprint('NODE_DEBUG=' + os.environ.get('NODE_DEBUG', '<unset>'))\nprint('UV_THREADPOOL_SIZE=' + os.environ.get('UV_THREADPOOL_SIZE', '<unset>'))\nprint('CALLER=' + ','.join(k for k in os.environ if k.startswith('TRACEDUMP_CALLER_')))\n`;
  const td = start(['--no-tls-keys', '-w', file, '--', PY, '-c', probe], { NODE_OPTIONS: '--inspect=127.0.0.1:0', NODE_DEBUG: 'net', UV_THREADPOOL_SIZE: '3' });
  await started(file);
  await sleep(300);
  t.same(listening([td.pid]), [], 'NODE_OPTIONS=--inspect opened no port in tracedump');
  const r = await td.done;
  t.equal(r.status, 0, td.stderr());
  t.match(td.stdout(), /^NODE_OPTIONS=--inspect=127\.0\.0\.1:0$/m, 'the command got NODE_OPTIONS as given');
  t.match(td.stdout(), /^NODE_DEBUG=net$/m, 'and NODE_DEBUG');
  t.match(td.stdout(), /^UV_THREADPOOL_SIZE=3$/m, 'and UV_THREADPOOL_SIZE');
  t.match(td.stdout(), /^CALLER=$/m, 'and nothing of how tracedump passed them');
  t.notMatch(td.stderr(), /Debugger|NET \d+:/, "tracedump's Node neither listened nor debug-logged");
  // with TLS keys on, the key log is added to the command's own NODE_OPTIONS
  const keyed = spawnSync('/usr/bin/env', ['-u', 'NODE_OPTIONS', 'NODE_OPTIONS=--max-old-space-size=100', CLI, '-q', '-w', path.join(dir, 'env2.pcapng'), '--', 'sh', '-c', 'echo "$NODE_OPTIONS"'], {
    encoding: 'utf8',
  });
  t.match(keyed.stdout, /^--max-old-space-size=100 --tls-keylog=\S+keys\.log$/m);
});

t.test('durations past what Node timers hold: --duration, --kill-after, --linger', async (t) => {
  // --duration 2147484 s (24.8 days + 1 s): the command runs to its own end
  const long = await start(['-q', '-w', path.join(dir, 'd1.pcap'), '--duration', '2147484', '--', 'sleep', '1.5']).done;
  t.equal(long.status, 0);
  t.ok(long.ms >= 1500, `not stopped at once (${long.ms} ms)`);
  // --kill-after 1e12: the command that ignores SIGTERM is not killed 1 ms after it
  const ignoring = 'import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(3)\n';
  const kill = start(['-w', path.join(dir, 'd2.pcap'), '--duration', '0.5', '--kill-after', '1e12', '--', PY, '-c', ignoring]);
  const k = await kill.done;
  t.ok(k.ms >= 3000, `the command ran its 3 s (${k.ms} ms)`);
  t.equal(k.status, 0, 'it exited 0 on its own after the planned stop');
  // --linger 1e12: still capturing after the command exited, while its connection to a server
  // that never closes is not done, until told to stop
  const held: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (c) => {
    held.push(c);
    c.resume();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const c of held) c.destroy();
    server.close();
  });
  const port = (server.address() as net.AddressInfo).port;
  const lingerFile = path.join(dir, 'd3.pcap');
  const leave = `import os, socket\nsocket.create_connection(('127.0.0.1', ${port}))\nos._exit(0)\n`;
  const linger = start(['-w', lingerFile, '--linger', '1e12', '--', PY, '-c', leave]);
  await sleep(1500);
  t.ok(fs.existsSync(lingerFile), 'the capture is under way');
  let ended = false;
  void linger.done.then(() => (ended = true));
  await sleep(10);
  t.notOk(ended, 'still lingering 1.5 s after the command exited');
  process.kill(linger.pid, 'SIGTERM');
  const l = await linger.done;
  t.equal(l.status, 0, "SIGTERM ends the linger: the command's status");
  t.match(linger.stderr(), /stopped by SIGTERM/);
  t.equal(spawnSync('tshark', ['-r', lingerFile]).status, 0, 'the file is whole');
  const bad = spawnSync(CLI, ['--duration', '1e400', '--', 'true'], { encoding: 'utf8' });
  t.equal(bad.status, 125, 'an infinite duration is refused');
  t.match(bad.stderr, /number of seconds/);
});

t.test('a command line longer than a pcapng option holds is cut in the file, and the command runs whole', async (t) => {
  const file = path.join(dir, 'long.pcapng');
  const word = 'a'.repeat(70_000);
  const r = spawnSync(CLI, ['-q', '--linger', '0', '-w', file, '--', PY, '-c', 'import sys; print(len(sys.argv[1]))', word], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout.trim(), '70000', 'the command got its whole argument');
  const capinfos = spawnSync('capinfos', [file], { encoding: 'utf8', maxBuffer: 1 << 24 });
  t.equal(capinfos.status, 0, 'capinfos reads it');
  const m = /Capture comment:\s+(.*)$/m.exec(capinfos.stdout);
  t.ok(m, 'the section comment is there');
  t.ok(Buffer.byteLength(m![1]) <= 65535, `cut to what an option holds (${Buffer.byteLength(m![1])} bytes)`);
  t.match(m![1], /^tracedump -- \/usr\/bin\/python3 -c .*a{1000,} \[\.\.\.\]$/, 'marked where it was cut');
});

t.test('a file name with a newline keeps the summary on one line', async (t) => {
  const file = path.join(dir, 'two\nlines.pcap');
  const r = spawnSync(CLI, ['--linger', '0', '-w', file, '--', 'true'], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  t.ok(fs.existsSync(file));
  const lines = r.stderr.trim().split('\n');
  t.equal(lines.length, 1, `one line: ${JSON.stringify(r.stderr)}`);
  t.match(lines[0], /written to \$'.*two\\nlines\.pcap'/, "quoted as a shell reads it back ($'...')");
});
