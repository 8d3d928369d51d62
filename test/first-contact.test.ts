// What a new user meets first, through the shipped entry point (bin/tracedump): a run that fails
// before the command starts touches no file; tcpdump's habits (-s 0, -i any, -r, -D, -w -);
// strace's (-o for events); help; the man page and the bash completion; --pname never
// attaching to tracedump's own ancestors; a clear word when another tracer holds tracedump.
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { CLI, ROOT, runCli } from './helpers/tracedump';

const PY = '/usr/bin/python3';
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tracedump-first-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

const run = runCli;

const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');
const listing = (d: string) => fs.readdirSync(d).sort();

// one UDP datagram to a closed local port, and its ICMP answer
const ONE_DATAGRAM = `import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.sendto(b'x' * 100, ('127.0.0.1', 9))\n`;

t.test('a run that fails before the command starts leaves the output file as it was and makes none', async (t) => {
  const work = fs.mkdtempSync(path.join(dir, 'prestart-'));
  fs.chmodSync(dir, 0o711); // nobody (the no-privilege case) reaches the files
  fs.chmodSync(work, 0o777);
  const keep = path.join(work, 'keep.pcapng');
  // a real capture to protect
  const made = await run(['-q', '--linger', '0', '-w', keep, '--', PY, '-c', ONE_DATAGRAM]);
  t.equal(made.status, 0, made.stderr);
  const before = sha(keep);
  const noExec = path.join(work, 'not-executable');
  fs.writeFileSync(noExec, '#!/bin/sh\n');
  const cases: [string, string[], number, RegExp, string[]?][] = [
    ['command not found', ['--', 'no-such-command-7f3a'], 127, /command not found/],
    ['not executable', ['--', noExec], 126, /Permission denied/],
    ['no such process', ['-p', '4194303'], 125, /no such process/],
    ['bad filter', ['-f', 'tcp prot 80', '--', 'true'], 125, /syntax error/],
    ['no such user', ['-u', 'no-such-user-7f3a', '--', 'true'], 125, /no such user/],
    ['bad interface', ['-i', 'no-such-if0', '--', 'true'], 125, /no such interface/],
    [
      'no privilege',
      ['--', 'true'],
      125,
      /CAP_NET_RAW/,
      ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', '--inh-caps=-all'],
    ],
  ];
  for (const [what, args, status, message, argv0] of cases) {
    for (const out of [keep, path.join(work, `new-${status}.pcap`)]) {
      const files = listing(work);
      if (argv0) fs.chmodSync(keep, 0o666);
      const r = await run(['-w', out, ...args], { prefix: argv0 });
      t.equal(r.status, status, `${what}: exit ${status}`);
      t.match(r.stderr, message, `${what}: says why`);
      t.same(listing(work), files, `${what}: no file made or left behind (-w ${path.basename(out)})`);
    }
    t.equal(sha(keep), before, `${what}: the existing capture is byte for byte as it was`);
  }
  const tshark = spawnSync('tshark', ['-r', keep], { encoding: 'utf8' });
  t.equal(tshark.status, 0, 'and still reads');
});

t.test('an existing capture is replaced only once the command has started, by a whole file', async (t) => {
  const work = fs.mkdtempSync(path.join(dir, 'replace-'));
  const file = path.join(work, 'x.pcapng');
  fs.writeFileSync(file, 'old content');
  // the command looks at the path while it runs, once its first send has returned (the capture
  // is live by then: its ring may be made while the command starts): the new capture is there, whole
  const probe = `${ONE_DATAGRAM}import sys\nb = open(${JSON.stringify(file)}, 'rb').read(4)\nprint('magic', b.hex())\n`;
  const r = await run(['-q', '--linger', '0', '-w', file, '--', PY, '-c', probe]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout.toString(), /magic 0a0d0d0a/, 'while the command runs the path holds the new pcapng (section header first)');
  t.same(listing(work), ['x.pcapng'], 'no temporary file left');
  t.equal(spawnSync('tshark', ['-r', file]).status, 0, 'tshark reads it');
});

t.test('a fifo is written in place (Wireshark reading a named pipe)', async (t) => {
  const fifo = path.join(dir, 'cap.fifo');
  spawnSync('mkfifo', [fifo]);
  const reader = spawn('cat', [fifo], { stdio: ['ignore', 'pipe', 'inherit'] });
  const chunks: Buffer[] = [];
  reader.stdout.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise((r) => reader.on('close', r));
  const r = await run(['-q', '--linger', '0', '-w', fifo, '--', PY, '-c', ONE_DATAGRAM]);
  await done;
  t.equal(r.status, 0, r.stderr);
  t.ok(fs.statSync(fifo).isFIFO(), 'still a fifo');
  t.equal(Buffer.concat(chunks).readUInt32LE(0), 0xa1b23c4d, 'the reader got a pcap');
});

t.test('`tracedump help` shows the help and leaves no file behind; an unknown option points at --help', async (t) => {
  const work = fs.mkdtempSync(path.join(dir, 'help-'));
  const help = await run(['help'], { cwd: work });
  t.equal(help.status, 0);
  t.match(help.stdout.toString(), /Usage: tracedump/);
  t.same(listing(work), [], 'no tracedump.pcap');
  const unknown = await run(['--no-such-option'], { cwd: work });
  t.equal(unknown.status, 125);
  t.match(unknown.stderr, /unknown option '--no-such-option'/);
  t.match(unknown.stderr, /tracedump --help/);
  const none = await run([], { cwd: work });
  t.equal(none.status, 125);
  t.match(none.stderr, /no command given[\s\S]*--help/);
  t.same(listing(work), []);
  const version = await run(['-V']);
  t.equal(version.status, 0);
  t.equal(version.stdout.toString().trim(), JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version);
});

t.test('-s 0 is the largest snapshot length; -i any is every interface', async (t) => {
  const file = path.join(dir, 'snap0.pcap');
  const r = await run(['-q', '-s', '0', '-i', 'any', '--linger', '0', '-w', file, '--', PY, '-c', ONE_DATAGRAM]);
  t.equal(r.status, 0, r.stderr);
  const header = fs.readFileSync(file).subarray(0, 24);
  t.equal(header.readUInt32LE(16), 262144 + 20, 'snaplen 262144 (+ the SLL2 header) in the file header');
  const n = spawnSync('tshark', ['-r', file, '-Y', 'udp.dstport == 9 && !icmp'], { encoding: 'utf8' }).stdout.trim().split('\n').length;
  t.equal(n, 1, 'the datagram was captured');
  const bad = await run(['-s', '10', '--', 'true']);
  t.equal(bad.status, 125);
  t.match(bad.stderr, /0 \(the largest, 262144\)/, 'the range says what 0 means');
});

t.test('-D lists the interfaces as tcpdump does; -i takes a listed index', async (t) => {
  const r = await run(['-D']);
  t.equal(r.status, 0);
  const lines = r.stdout.toString().trim().split('\n');
  const lo = lines.find((l) => /^\d+\.lo \[/.test(l));
  t.ok(lo, `lo is listed: ${lines.join(' | ')}`);
  t.match(lo!, /Loopback/);
  t.match(lines[lines.length - 1], /^any /, 'any last');
  const index = lo!.split('.')[0];
  const file = path.join(dir, 'by-index.pcap');
  const byIndex = await run(['-q', '-i', index, '--linger', '0', '-w', file, '--', PY, '-c', ONE_DATAGRAM]);
  t.equal(byIndex.status, 0, byIndex.stderr);
});

t.test('-r FILE reads a file as `read FILE` does, with tcpdump spellings', async (t) => {
  const file = path.join(dir, 'r.pcapng');
  t.equal((await run(['-q', '--linger', '0', '-w', file, '--', PY, '-c', ONE_DATAGRAM])).status, 0);
  const viaRead = await run(['read', file]);
  const viaR = await run(['-r', file]);
  const viaNr = await run(['-nr', file]);
  t.equal(viaRead.status, 0, viaRead.stderr);
  t.ok(viaRead.stdout.length > 0);
  t.equal(viaR.stdout.toString(), viaRead.stdout.toString(), '-r FILE');
  t.equal(viaNr.stdout.toString(), viaRead.stdout.toString(), '-nr FILE');
  const count = await run(['-r', file, '-c', '1', '-tttt']);
  t.equal(count.stdout.toString().trim().split('\n').length, 1, '-c after -r');
  t.match(count.stdout.toString(), /^\s+1 \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{9} /, '-tttt: frame number, date and time');
});

t.test('-w - writes pcapng that `tracedump read -` shows with the process; never to a terminal', async (t) => {
  const r = await run(['-q', '--linger', '0', '-w', '-', '--', PY, '-c', ONE_DATAGRAM]);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout.readUInt32LE(0), 0x0a0d0d0a, 'pcapng section header');
  const shown = spawnSync(CLI, ['read', '-'], { input: r.stdout, encoding: 'utf8' });
  t.equal(shown.status, 0, shown.stderr);
  t.match(shown.stdout, /\d+ python3\s+out udp\s+127\.0\.0\.1:\d+ > 127\.0\.0\.1:9 len 100/, 'pid, comm, direction, payload length');
  const pcap = await run(['-q', '--linger', '0', '--format', 'pcap', '-w', '-', '--', 'true']);
  t.equal(pcap.stdout.readUInt32LE(0), 0xa1b23c4d, '--format pcap still gives pcap');
  // a terminal on stdout: script(1) gives the command one
  const tty = spawnSync('script', ['-qec', `${CLI} -w - -- true`, '/dev/null'], { encoding: 'utf8' });
  t.equal(tty.status, 125, 'refused');
  t.match(tty.stdout, /not writing a binary capture to a terminal/);
});

t.test('--events -o FILE: events go to the file, not among the command output; times as read --json has them', async (t) => {
  const file = path.join(dir, 'events.json');
  const r = await run(['--events', 'json', '-o', file, '--', 'sh', '-c', 'echo to-stderr >&2; exit 3']);
  t.equal(r.status, 3);
  t.equal(r.stderr, 'to-stderr\n', "stderr holds the command's own output only");
  const events = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.ok(events.some((e) => e.kind === 'exec'), 'the exec event');
  t.match(events[events.length - 1], { kind: 'exit', code: 3 });
  for (const e of events) t.match(e.time, /^\d{10}\.\d{6}$/, 'epoch seconds as a string, as read --json');
  const text = path.join(dir, 'events.txt');
  const r2 = await run(['--events', '-o', text, '--', 'true']);
  t.equal(r2.status, 0);
  t.match(fs.readFileSync(text, 'utf8'), /exec \S*\/true/);
  const lone = await run(['-o', text, '--', 'true']);
  t.equal(lone.status, 125, '-o without --events');
  t.match(lone.stderr, /-o FILE is where --events go/);
});

t.test('--pname lists what it attaches to and never attaches to its own ancestors', async (t) => {
  // a parent and a sibling with one unusual name: tracedump runs under the parent
  const name = `td-anc-${process.pid % 100000}`;
  const bin = path.join(dir, name);
  fs.copyFileSync(PY, bin);
  fs.chmodSync(bin, 0o755);
  const sibling = spawn(bin, ['-c', 'import time; time.sleep(30)'], { stdio: 'ignore' });
  t.teardown(() => sibling.kill('SIGKILL'));
  const parentScript = `import subprocess, sys\nr = subprocess.run([${JSON.stringify(CLI)}, '-w', ${JSON.stringify(path.join(dir, 'pname.pcap'))}, '--pname', ${JSON.stringify(name)}, '--duration', '1'], capture_output=True, text=True)\nsys.stdout.write(r.stderr)\nsys.exit(r.returncode)\n`;
  const parent = spawnSync(bin, ['-c', parentScript], { encoding: 'utf8', timeout: 60_000 });
  t.equal(parent.status, 0, parent.stdout);
  t.match(parent.stdout, new RegExp(`not attaching to process ${parent.pid} \\(${name}\\)`), 'the ancestor is named and left alone');
  t.match(parent.stdout, new RegExp(`attaching to 1 process named ${name}:\\n\\s+${sibling.pid} ${name}\\s+\\S+ -c import time`), 'the sibling is listed with its command line');
  t.match(parent.stdout, /--duration 1 reached/);
  // -p with the parent's pid: refused
  const self = spawnSync('sh', ['-c', `exec ${CLI} -w ${path.join(dir, 'anc.pcap')} -p $PPID`], { encoding: 'utf8' });
  t.equal(self.status, 125);
  t.match(self.stderr, /tracedump runs under it/);
});

t.test('under a tracer that follows children, the launch fails naming that tracer', async (t) => {
  const file = path.join(dir, 'under-strace.pcap');
  const r = spawnSync('strace', ['-f', '-o', '/dev/null', CLI, '-w', file, '--', 'true'], { encoding: 'utf8', timeout: 60_000 });
  t.equal(r.status, 125, r.stderr);
  t.match(r.stderr, /tracedump is itself traced by process \d+ \(strace\)/);
  t.match(r.stderr, /one tracer/);
  t.notOk(fs.existsSync(file), 'no capture file');
});

t.test('a status line on a terminal, refreshed each second; none with -q or without a terminal', async (t) => {
  const file = path.join(dir, 'status.pcap');
  const onTty = spawnSync('script', ['-qec', `${CLI} -w ${file} -- sleep 2.3`, '/dev/null'], { encoding: 'utf8', timeout: 60_000 });
  t.equal(onTty.status, 0, onTty.stdout);
  const updates = onTty.stdout.match(/\rtracedump: \d+ packets? \([^)]*\), \d+ sockets?, 1 process, 0 dropped, 0:0\d\x1b\[K/g) ?? [];
  t.ok(updates.length >= 2 && updates.length <= 3, `rewritten in place about once a second (${updates.length} times)`);
  t.match(onTty.stdout, /\r\x1b\[Ktracedump: 0 packets \(0 B\) written to/, 'cleared before the summary');
  const quiet = spawnSync('script', ['-qec', `${CLI} -q -w ${file} -- sleep 1.2`, '/dev/null'], { encoding: 'utf8', timeout: 60_000 });
  t.equal(quiet.stdout, '', '-q: nothing at all');
  const piped = await run(['-w', file, '--', 'sleep', '1.2']);
  t.notMatch(piped.stderr, /\r/, 'stderr not a terminal: no status line');
});

t.test('the man page renders; bash completion is there and parses', async (t) => {
  const man = path.join(ROOT, 'man', 'tracedump.1');
  const warn = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-z', man], { encoding: 'utf8' });
  t.equal(warn.stderr, '', 'groff: no warnings');
  const shown = spawnSync('man', ['-l', man], { encoding: 'utf8', env: { ...process.env, MANWIDTH: '80', MANPAGER: 'cat', PAGER: 'cat' } });
  t.equal(shown.status, 0, shown.stderr);
  for (const section of ['NAME', 'SYNOPSIS', 'OPTIONS', 'EXIT STATUS', 'EXAMPLES']) t.match(shown.stdout, new RegExp(`^${section}`, 'm'), section);
  const help = spawnSync(CLI, ['--help'], { encoding: 'utf8' }).stdout;
  const flags = [...help.matchAll(/^\s+(?:-\w, )?(--[\w-]+)/gm)].map((m) => m[1]);
  t.ok(flags.length > 20);
  for (const flag of flags) t.ok(shown.stdout.includes(flag), `the man page has ${flag}`);
  const completion = await run(['completion', 'bash']);
  t.equal(completion.status, 0);
  t.equal(completion.stdout.toString(), fs.readFileSync(path.join(ROOT, 'completion', 'tracedump.bash'), 'utf8'));
  const syntax = spawnSync('bash', ['-n'], { input: completion.stdout });
  t.equal(syntax.status, 0, 'bash -n accepts it');
});
