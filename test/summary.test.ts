// The end of a run as a user and a batch script see it: the summary line says why capture
// ended, with plurals right and what the files hold; --summary-json gives the same figures;
// a planned stop (-c, --duration, -G -W) exits 0 unless the command failed on its own.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { runCli } from './helpers/tracedump';

const PY = '/usr/bin/python3';
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tracedump-summary-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

function run(args: string[], opts: { signalAfterMs?: [NodeJS.Signals, number] } = {}) {
  return runCli(args, opts);
}

const summaryOf = (stderr: string) => stderr.split('\n').find((l) => l.startsWith('tracedump: ') && l.includes(' written to ')) ?? '';

function tsharkCount(...files: string[]): number {
  let n = 0;
  for (const f of files) {
    const r = spawnSync('tshark', ['-r', f], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`tshark -r ${f}: ${r.stderr}`);
    n += r.stdout.split('\n').filter((l) => l.trim()).length;
  }
  return n;
}

// n UDP datagrams to a port nobody listens on, gapMs apart (each also draws an ICMP error)
const sender = (n: number, gapMs: number, size = 100) =>
  `import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nfor i in range(${n}):\n    s.sendto(b'x' * ${size}, ('127.0.0.1', 9))\n    time.sleep(${gapMs / 1000})\n`;

t.test('one of everything: singular words; the command exit as the reason', async (t) => {
  const file = path.join(dir, 'one.pcap');
  // one datagram to a bound but silent port: one packet, one socket, one process
  const py = `import socket\nr = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nr.bind(('127.0.0.1', 0))\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.connect(r.getsockname())\ns.send(b'x')\n`;
  // the receiving socket is the program's too: count both, but one packet
  const r = await run(['-w', file, '--linger', '0', '-f', 'udp', '--', PY, '-c', py]);
  t.equal(r.status, 0, r.stderr);
  t.match(summaryOf(r.stderr), /^tracedump: 1 packet \(29 B\) written to \S+one\.pcap, 2 sockets, 1 process, 0 dropped by the kernel \(\w+ filter\); the command exited with status 0$/);
  const failing = await run(['-w', path.join(dir, 'fail.pcap'), '--linger', '0', '--', 'sh', '-c', 'exit 3']);
  t.equal(failing.status, 3);
  t.match(summaryOf(failing.stderr), /^tracedump: 0 packets \(0 B\) written to \S+, 0 sockets, 1 process, 0 dropped .*; the command exited with status 3$/);
  const killed = await run(['-w', path.join(dir, 'killed.pcap'), '--linger', '0', '--', 'sh', '-c', 'kill -SEGV $$']);
  t.equal(killed.status, 128 + 11);
  t.match(summaryOf(killed.stderr), /the command was killed by SIGSEGV$/);
});

t.test('-c and --duration: the reason, exit 0, the file finished', async (t) => {
  const count = path.join(dir, 'count.pcap');
  const c = await run(['-w', count, '-c', '5', '--', PY, '-c', sender(200, 20)]);
  t.equal(c.status, 0, 'a planned stop is a success (the command got SIGTERM)');
  t.ok(c.ms < 3000, `stopped early (${c.ms} ms)`);
  t.match(summaryOf(c.stderr), /^tracedump: 5 packets .*; -c 5 reached$/);
  t.equal(tsharkCount(count), 5);
  const duration = path.join(dir, 'duration.pcap');
  const d = await run(['-w', duration, '--duration', '0.5', '--', PY, '-c', sender(200, 20)]);
  t.equal(d.status, 0);
  t.match(summaryOf(d.stderr), /; --duration 0\.5 reached$/);
  // a command that fails on its own at the stop keeps its status
  const trap = await run(['-w', path.join(dir, 'trap.pcap'), '--duration', '0.5', '--', 'sh', '-c', "trap 'exit 7' TERM; while :; do sleep 0.1; done"]);
  t.equal(trap.status, 7, 'exit 7 at SIGTERM: a failure of its own');
  // and one that failed before the stop came
  const early = await run(['-w', path.join(dir, 'early.pcap'), '--duration', '5', '--', 'sh', '-c', 'exit 4']);
  t.equal(early.status, 4);
  t.match(summaryOf(early.stderr), /the command exited with status 4$/);
});

t.test('SIGTERM to tracedump: the command stops, its status is the exit status, the reason says so', async (t) => {
  const r = await run(['-w', path.join(dir, 'term.pcap'), '--', PY, '-c', sender(200, 20)], { signalAfterMs: ['SIGTERM', 1000] });
  t.equal(r.status, 143, 'the command was stopped by SIGTERM: 128+15');
  t.match(summaryOf(r.stderr), /; stopped by SIGTERM$/);
});

t.test('rotation: the summary counts what the files hold; --summary-json', async (t) => {
  const base = path.join(dir, 'ring.pcap');
  const json = path.join(dir, 'ring.json');
  // ~3.2 MB of 1,400-byte datagrams through a -C 1 -W 2 ring: the oldest file is overwritten
  const r = await run(['-w', base, '-C', '1', '-W', '2', '--linger', '0.2', '--summary-json', json, '--', PY, '-c', sender(2300, 0.2, 1400)]);
  t.equal(r.status, 0, r.stderr);
  const files = [`${base}0`, `${base}1`];
  const held = tsharkCount(...files);
  const doc = JSON.parse(fs.readFileSync(json, 'utf8'));
  t.ok(doc.packets_written > held, `more written (${doc.packets_written}) than the two files hold (${held})`);
  t.equal(doc.packets_in_files, held, 'packets_in_files is what tshark counts in the files kept');
  t.same(
    doc.files.map((f: { path: string }) => f.path),
    files,
    'the files kept',
  );
  for (const f of doc.files) t.equal(f.packets, tsharkCount(f.path), `${path.basename(f.path)}: its own count`);
  t.match(summaryOf(r.stderr), new RegExp(`^tracedump: ${doc.packets_written} packets \\([^)]*\\) written to 2 files \\(\\S+ring\\.pcap0 \\.\\.\\. \\S+ring\\.pcap1\\) \\(${held} in the files kept; the -W ring overwrote the rest\\)`));
  t.match(doc, {
    tracedump: String,
    command: [PY, '-c', String],
    attached: null,
    stop: { reason: 'exited', code: 0, signal: null, text: 'the command exited with status 0' },
    exit_status: 0,
    output: base,
    kernel_drops: 0,
    sockets: 1,
    processes: 1,
    packets_lost_after_write_failure: 0,
  });
  t.ok(Date.parse(doc.ended) >= Date.parse(doc.started));
});

t.test('-G -W: the last file full is a planned stop', async (t) => {
  const base = path.join(dir, 'g-%s.pcap');
  const r = await run(['-w', base, '-G', '1', '-W', '2', '--', PY, '-c', sender(400, 20)]);
  t.equal(r.status, 0, r.stderr);
  t.match(summaryOf(r.stderr), /; -W 2: the last file is full$/);
});

t.test('--summary-json for attached processes, and a path it cannot have fails before anything runs', async (t) => {
  const victim = spawn(PY, ['-c', 'import time; time.sleep(30)'], { stdio: 'ignore' });
  t.teardown(() => victim.kill('SIGKILL'));
  const json = path.join(dir, 'attach.json');
  const r = await run(['-w', path.join(dir, 'attach.pcap'), '-p', String(victim.pid), '--duration', '0.5', '--summary-json', json]);
  t.equal(r.status, 0, r.stderr);
  const doc = JSON.parse(fs.readFileSync(json, 'utf8'));
  t.match(doc, { command: null, attached: [victim.pid], stop: { reason: 'duration', seconds: 0.5 }, exit_status: 0, processes: 1 });
  const marker = path.join(dir, 'ran');
  const bad = await run(['--summary-json', '/nonexistent-dir/x.json', '-w', path.join(dir, 'b.pcap'), '--', 'touch', marker]);
  t.equal(bad.status, 125);
  t.match(bad.stderr, /cannot write \/nonexistent-dir\/x\.json/);
  t.notOk(fs.existsSync(marker), 'the command did not run');
});
