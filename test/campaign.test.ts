// `tracedump campaign` with real programs against local servers (HTTP, HTTPS, a DNS server, a
// UDP echo), all untraced:
//  - three labels x 3 repeats run unattended: every run's directory is complete (its files'
//    sha256 as meta.json says), its capture names its label and run id, its flows (in the file
//    and the catalogue) are its own program's; ls, show, export and stats read it;
//  - a crashing and a hanging program are recorded as such, and the campaign finishes;
//  - SIGKILL in the middle of a run, then the same command: the catalogue is that of a campaign
//    never stopped (every run once), nothing half-done is left, no process either;
//  - a disk that fills up (a small tmpfs): the campaign stops and says so; with room again, the
//    same command finishes it, nothing counted twice;
//  - bad plans fail before anything runs, naming the line and the field.
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import Database from 'better-sqlite3';
import { FLOWS, PY, noLeftovers, sleep, startBg, workDir } from './helpers/capture';
import { CLI } from './helpers/tracedump';

const HTTPS_SERVER = `
const https = require('https'); const http = require('http'); const fs = require('fs');
const [cert, key] = process.argv.slice(2);
const handler = (req, res) => { const body = 'hello ' + req.url + '\\n'; res.writeHead(200, { 'content-type': 'text/plain' }); res.end(body); };
const s = https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, handler);
const p = http.createServer(handler);
s.listen(0, '127.0.0.1', () => p.listen(0, '127.0.0.1', () => console.log('ready ' + s.address().port + ' ' + p.address().port)));
`;

const FAKE_DNS = `
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.153', 53))
print('ready', flush=True)
while True:
    q, peer = s.recvfrom(512)
    a = b'\\xc0\\x0c' + struct.pack('!HHIH', 1, 1, 60, 4) + bytes([127, 0, 0, 7])
    s.sendto(q[:2] + b'\\x81\\x80\\x00\\x01\\x00\\x01\\x00\\x00\\x00\\x00' + q[12:] + a, peer)
`;

// a DNS question, then UDP exchanges with the echo server
const DNS_UDP = `
import socket, sys
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(b'\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x03api\\x08campaign\\x04test\\x00\\x00\\x01\\x00\\x01', ('127.0.0.153', 53))
u.recvfrom(512)
for i in range(3):
    u.sendto(b'ping %d' % i, ('127.0.0.1', int(sys.argv[1])))
    u.recvfrom(512)
`;

interface Servers {
  https: number;
  http: number;
  udp: number;
  dir: string;
}

async function servers(t: Parameters<typeof workDir>[0], dir: string): Promise<Servers> {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  const gen = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-keyout', key, '-out', cert, '-subj', '/CN=campaign.test'], { encoding: 'utf8' });
  if (gen.status !== 0) throw new Error(`openssl: ${gen.stderr}`);
  fs.writeFileSync(path.join(dir, 'server.js'), HTTPS_SERVER);
  fs.writeFileSync(path.join(dir, 'dns.py'), FAKE_DNS);
  fs.writeFileSync(path.join(dir, 'dns-udp.py'), DNS_UDP);
  const web = startBg(t, [process.execPath, path.join(dir, 'server.js'), cert, key], { env: { NODE_OPTIONS: '' } });
  const dns = startBg(t, [PY, path.join(dir, 'dns.py')]);
  const udp = startBg(t, [PY, FLOWS, 'serve-udp', '127.0.0.1', '0', 'echo']);
  const [, https, http] = await web.waitFor(/^ready (\d+) (\d+)$/m);
  await dns.waitFor(/^ready/m);
  const [, port] = await udp.waitFor(/(\d+)/);
  return { https: Number(https), http: Number(http), udp: Number(port), dir };
}

function plan(s: Servers, extra = '', defaults = 'duration: 20s'): string {
  return `# three programs, three runs each
parallel: 1
defaults:
  ${defaults}
  repeat: 3
  grace: 1s
runs:
  - label: curl-https
    command: [curl, -sk, -o, /dev/null, "https://127.0.0.1:${s.https}/secure"]
  - label: curl-http
    command: curl -s -o /dev/null http://127.0.0.1:${s.http}/plain
  - label: python-dns-udp
    command: [${PY}, ${path.join(s.dir, 'dns-udp.py')}, "${s.udp}"]
${extra}`;
}

function campaign(args: string[], opts: { cwd?: string } = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(CLI, ['campaign', ...args], { encoding: 'utf8', timeout: 300_000, cwd: opts.cwd });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The catalogue's runs: label, repeat, end, and each run's flows. */
function catalogue(dir: string): { runs: Array<{ run_id: string; label: string; repeat: number; end_reason: string; packets: number }>; flows: Array<{ run_id: string; label: string; comm: string | null }> } {
  const db = new Database(path.join(dir, 'catalog.sqlite'), { readonly: true });
  try {
    return {
      runs: db.prepare('SELECT run_id, label, repeat, end_reason, packets FROM runs ORDER BY label, repeat').all() as never,
      flows: db.prepare('SELECT run_id, label, comm FROM flows').all() as never,
    };
  } finally {
    db.close();
  }
}

function sha256(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

t.test('three labels x 3 repeats, unattended: complete runs, labelled flows, the catalogue', async (t) => {
  const dir = workDir(t, 'campaign');
  const s = await servers(t, dir);
  const planFile = path.join(dir, 'apps.yaml');
  fs.writeFileSync(planFile, plan(s));
  const r = campaign(['run', planFile]);
  t.equal(r.status, 0, `campaign run exits 0 (${r.stderr.slice(-600)})`);
  t.match(r.stderr, /campaign: 9 runs done \(9 now, 0 before\)/, 'it says what it did');
  t.equal(r.stderr.split('\n').filter((l) => / started$/.test(l)).length, 9, 'a progress line as each run starts (no terminal)');
  const out = path.join(dir, 'apps.campaign');
  const cat = catalogue(out);
  t.same(
    cat.runs.map((x) => `${x.label} ${x.repeat} ${x.end_reason}`),
    ['curl-http 1 exited', 'curl-http 2 exited', 'curl-http 3 exited', 'curl-https 1 exited', 'curl-https 2 exited', 'curl-https 3 exited', 'python-dns-udp 1 exited', 'python-dns-udp 2 exited', 'python-dns-udp 3 exited'],
    'nine runs in the catalogue, each once, each ended by its program',
  );
  const comms: Record<string, string> = { 'curl-https': 'curl', 'curl-http': 'curl', 'python-dns-udp': 'python3' };
  for (const run of cat.runs) {
    const runDir = path.join(out, run.label, String(run.repeat).padStart(3, '0'));
    const meta = JSON.parse(fs.readFileSync(path.join(runDir, 'meta.json'), 'utf8'));
    const files = ['capture.pcapng', 'flows.jsonl', 'objects.jsonl', 'program.stdout', 'program.stderr'];
    t.same(files.filter((f) => !fs.existsSync(path.join(runDir, f))), [], `${run.label} #${run.repeat}: every file is there`);
    t.same(
      Object.entries(meta.files as Record<string, string>).filter(([f, h]) => sha256(path.join(runDir, f)) !== h).map(([f]) => f),
      [],
      `${run.label} #${run.repeat}: every file's sha256 as meta.json says`,
    );
    t.ok(run.packets > 0 && meta.capture.packets === run.packets && meta.capture.drops === 0, `${run.label} #${run.repeat}: ${run.packets} packets, no drops`);
    t.ok(meta.host.cpu.count > 0 && meta.host.interfaces.some((i: { name: string }) => i.name === 'lo') && meta.tracedump && meta.plan_hash === sha256(planFile), `${run.label} #${run.repeat}: the host, tracedump's version and the plan's hash`);
    const comments = spawnSync('capinfos', ['-k', path.join(runDir, 'capture.pcapng')], { encoding: 'utf8' }).stdout;
    t.ok(comments.includes(`label=${run.label}`) && comments.includes(`run_id=${run.run_id}`), `${run.label} #${run.repeat}: the capture's section comment names its label and run id`);
    const flows = cat.flows.filter((f) => f.run_id === run.run_id);
    t.ok(flows.length > 0 && flows.every((f) => f.label === run.label && f.comm === comms[run.label]), `${run.label} #${run.repeat}: its ${flows.length} flows carry its label and its program`);
  }
  const curl = JSON.parse(fs.readFileSync(path.join(out, 'curl-https', '001', 'meta.json'), 'utf8'));
  t.match(curl, { exe: /\/curl$/, package: 'curl', package_version: /\S/ }, "the program's file, package and version");

  const ls = campaign(['ls', out, '--json']);
  t.equal(ls.stdout.trim().split('\n').length, 9, 'campaign ls lists the nine runs');
  const show = campaign(['show', out, cat.runs[0].run_id.slice(0, 8)]);
  t.equal(JSON.parse(show.stdout).run_id, cat.runs[0].run_id, 'campaign show RUN (by a prefix of its id)');
  const exported = campaign(['export', out, '--flows', '--label', 'python-dns-udp', '--json']);
  const rows = exported.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  t.ok(rows.length >= 6 && rows.every((x) => x.label === 'python-dns-udp'), `campaign export --flows --label: its ${rows.length} flows only`);
  t.ok(rows.some((x) => x.service === 'dns') && rows.some((x) => x.proto === 'udp' && x['id.resp_p'] === s.udp), 'the DNS question and the UDP exchanges');
  const stats = spawnSync(CLI, ['stats', '--json', out], { encoding: 'utf8' });
  const apps = new Set(
    stats.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).app),
  );
  t.same([...apps].sort(), ['curl-http', 'curl-https', 'python-dns-udp'], 'tracedump stats on the campaign: one application per label');
});

t.test('a crashing and a hanging program are recorded; the campaign goes on', async (t) => {
  const dir = workDir(t, 'campaign');
  const planFile = path.join(dir, 'bad-apps.yaml');
  fs.writeFileSync(
    planFile,
    `runs:
  - label: crasher
    command: "sh -c 'kill -SEGV $$'"
  - label: hanger
    command: [sh, -c, "trap '' TERM; sleep 60"]
    duration: 1s
    grace: 1s
  - label: fine
    command: [sh, -c, 'echo "v=$CAMPAIGN_VAR"']
    env: { CAMPAIGN_VAR: "from the plan" }
`,
  );
  const r = campaign(['run', planFile]);
  t.equal(r.status, 0, `the campaign finishes (${r.stderr.slice(-400)})`);
  const cat = catalogue(path.join(dir, 'bad-apps.campaign'));
  t.same(
    cat.runs.map((x) => `${x.label} ${x.end_reason}`),
    ['crasher crashed', 'fine exited', 'hanger hung'],
    'the crash, the hang (killed after its grace) and the fine run',
  );
  t.equal(fs.readFileSync(path.join(dir, 'bad-apps.campaign', 'fine', '001', 'program.stdout'), 'utf8'), 'v=from the plan\n', "the plan's env reaches the program");
});

t.test('parallel: 3: runs at once keep their labels', async (t) => {
  const dir = workDir(t, 'campaign');
  const s = await servers(t, dir);
  const planFile = path.join(dir, 'parallel.yaml');
  // each program sleeps a little after its exchange: the three labels overlap in time
  fs.writeFileSync(planFile, plan(s).replace('parallel: 1', 'parallel: 3').replace(/repeat: 3/, 'repeat: 2').replace(/command: curl -s -o \/dev\/null (\S+)/, 'command: "curl -s -o /dev/null $1; sleep 1"'));
  const r = campaign(['run', planFile]);
  t.equal(r.status, 0, `the campaign runs (${r.stderr.slice(-300)})`);
  const out = path.join(dir, 'parallel.campaign');
  const cat = catalogue(out);
  t.equal(cat.runs.length, 6, 'six runs');
  const comms: Record<string, string> = { 'curl-https': 'curl', 'curl-http': 'curl', 'python-dns-udp': 'python3' };
  t.same(
    cat.flows.filter((f) => f.comm !== comms[f.label]).map((f) => `${f.label}: ${f.comm}`),
    [],
    "every flow carries its own run's label and program",
  );
  const metas = cat.runs.map((x) => JSON.parse(fs.readFileSync(path.join(out, x.label, String(x.repeat).padStart(3, '0'), 'meta.json'), 'utf8')));
  const spans = metas.map((m) => [Date.parse(m.started), Date.parse(m.ended)]);
  const overlapping = spans.some(([a0, a1], i) => spans.some(([b0, b1], j) => i !== j && a0 < b1 && b0 < a1));
  t.ok(overlapping, 'runs did overlap in time');
  for (const run of cat.runs) {
    const flows = spawnSync(CLI, ['flows', '--json', path.join(out, run.label, String(run.repeat).padStart(3, '0'), 'capture.pcapng')], { encoding: 'utf8' }).stdout.trim().split('\n').map((l) => JSON.parse(l));
    t.ok(flows.length > 0 && flows.every((f) => f.comm === comms[run.label]), `${run.label} #${run.repeat}: its capture holds its own program's flows only`);
  }
});

t.test('SIGKILL in the middle of a run, then the same command: as if never stopped', async (t) => {
  const dir = workDir(t, 'campaign');
  const s = await servers(t, dir);
  const planFile = path.join(dir, 'resume.yaml');
  // runs of about 1.5 s (the program sleeps after its request): time to be killed in one
  fs.writeFileSync(planFile, plan(s).replace(/command: curl -s -o \/dev\/null (\S+)/, "command: \"curl -s -o /dev/null $1; sleep 1.5\""));
  const out = path.join(dir, 'resume.campaign');
  const child = spawn(CLI, ['campaign', 'run', planFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  // kill it hard once curl-http's second run is under way
  for (let i = 0; i < 600 && !/run curl-http #2 started/.test(err); i++) await sleep(50);
  await sleep(500);
  const partial = fs.existsSync(path.join(out, 'curl-http')) ? fs.readdirSync(path.join(out, 'curl-http')).filter((n) => n.includes('.partial-')) : [];
  t.equal(partial.length, 1, `killed in the middle of a run (${partial.join(' ')})`);
  child.kill('SIGKILL');
  await new Promise((r) => child.on('close', r));
  const again = campaign(['run', planFile]);
  t.equal(again.status, 0, `the same command finishes it (${again.stderr.slice(-400)})`);
  t.match(again.stderr, /campaign: 4 of 9 runs already done: kept/, 'the finished runs are kept');
  const cat = catalogue(out);
  t.same(
    cat.runs.map((x) => `${x.label} ${x.repeat}`),
    ['curl-http 1', 'curl-http 2', 'curl-http 3', 'curl-https 1', 'curl-https 2', 'curl-https 3', 'python-dns-udp 1', 'python-dns-udp 2', 'python-dns-udp 3'],
    'every run once: the catalogue of a campaign never stopped',
  );
  t.equal(new Set(cat.flows.map((f) => f.run_id)).size, 9, 'flows of the nine runs only (none of the killed attempt)');
  const left = fs.readdirSync(path.join(out, 'curl-http')).filter((n) => n.includes('.partial-'));
  t.same(left, [], 'nothing half-done is left');
  t.notOk(fs.existsSync(path.join(out, '.campaign.lock')), 'the lock is gone');
});

t.test('a full disk stops the campaign; with room again, the same command finishes it', { skip: process.getuid?.() !== 0 ? 'mounting a tmpfs needs root' : false }, async (t) => {
  const dir = workDir(t, 'campaign');
  const s = await servers(t, dir);
  const mnt = path.join(dir, 'small');
  fs.mkdirSync(mnt);
  t.equal(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=600k', 'tmpfs', mnt]).status, 0, 'a 600 KiB tmpfs');
  t.teardown(() => {
    spawnSync('umount', ['-l', mnt]);
  });
  const planFile = path.join(dir, 'full.yaml');
  // each run sends 200 kB: its capture fills the tmpfs after a few
  fs.writeFileSync(planFile, `output: ${mnt}/out\nruns:\n  - label: big\n    repeat: 6\n    duration: 20s\n    command: "head -c 200000 /dev/zero | curl -s -o /dev/null --data-binary @- http://127.0.0.1:${s.http}/upload"\n`);
  const first = campaign(['run', planFile]);
  t.equal(first.status, 1, `the campaign stops (exit 1) (${first.stderr.slice(-300)})`);
  t.match(first.stderr, /campaign stopped: .*(disk is full|catalogue)/, 'and says the disk is full');
  t.match(first.stderr, /run the same command again/, 'and what to do');
  const before = catalogue(path.join(mnt, 'out'));
  t.ok(before.runs.length < 6, `${before.runs.length} runs stored before it filled up`);
  t.equal(spawnSync('mount', ['-o', 'remount,size=8m', mnt]).status, 0, 'room again');
  const again = campaign(['run', planFile]);
  t.equal(again.status, 0, `the same command finishes it (${again.stderr.slice(-300)})`);
  const cat = catalogue(path.join(mnt, 'out'));
  t.same(
    cat.runs.map((x) => `${x.label} ${x.repeat} ${x.end_reason}`),
    [1, 2, 3, 4, 5, 6].map((i) => `big ${i} exited`),
    'six runs, each once',
  );
  t.same(
    before.runs.map((x) => x.run_id).filter((id) => !cat.runs.some((y) => y.run_id === id)),
    [],
    'the runs done before are the same runs (kept, not redone)',
  );
});

// A page whose link fills the window: a click anywhere on it follows the link.
const PAGE_SERVER = `
const http = require('http');
const page = '<!doctype html><title>campaign</title><a id="go" href="/clicked" style="display:block;position:fixed;inset:0;font-size:40px">click</a>';
const s = http.createServer((req, res) => {
  console.log('GET ' + req.url);
  res.writeHead(200, { 'content-type': req.url === '/' ? 'text/html' : 'text/plain' });
  res.end(req.url === '/' ? page : 'clicked\\n');
});
s.listen(0, '127.0.0.1', () => console.log('ready ' + s.address().port));
`;

// the driver: waits for Chromium's window, clicks in its middle, lets the request go, exits
const DRIVER = `#!/bin/sh
set -e
win=$(xdotool search --sync --onlyvisible --name '^campaign' | head -n 1)
sleep 2
eval $(xdotool getwindowgeometry --shell "$win")
xdotool mousemove --window "$win" $((WIDTH / 2)) $((HEIGHT / 2)) click 1
sleep 3
`;

t.test('a GUI program under a virtual display, driven by xdotool: the click is in its capture', async (t) => {
  const dir = workDir(t, 'campaign');
  fs.writeFileSync(path.join(dir, 'page.js'), PAGE_SERVER);
  fs.writeFileSync(path.join(dir, 'drive.sh'), DRIVER, { mode: 0o755 });
  const web = startBg(t, [process.execPath, path.join(dir, 'page.js')], { env: { NODE_OPTIONS: '' } });
  const [, port] = await web.waitFor(/^ready (\d+)$/m);
  const planFile = path.join(dir, 'gui.yaml');
  fs.writeFileSync(
    planFile,
    `runs:
  - label: chromium-click
    command: [chromium, --no-sandbox, --disable-gpu, --no-first-run, --disable-background-networking, --disable-component-update, --user-data-dir=${dir}/profile, "--window-size=800,600", "http://127.0.0.1:${port}/"]
    display: { width: 1024, height: 768 }
    driver: [${dir}/drive.sh]
    duration: 60s
    grace: 3s
`,
  );
  const r = campaign(['run', planFile]);
  t.equal(r.status, 0, `the campaign ran (${r.stderr.slice(-400)})`);
  t.ok(await web.waitFor(/GET \/clicked/, 5000).catch(() => undefined), "the server got the click's request");
  const runDir = path.join(dir, 'gui.campaign', 'chromium-click', '001');
  const meta = JSON.parse(fs.readFileSync(path.join(runDir, 'meta.json'), 'utf8'));
  t.same([meta.end_reason, meta.driver_status, meta.display], ['driver-ended', 0, { width: 1024, height: 768 }], 'the driver ended the run, having done its part, on a display of the size asked');
  const objects = fs
    .readFileSync(path.join(runDir, 'objects.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l)
    .map((l) => JSON.parse(l));
  const click = objects.find((o) => o.path === '/clicked');
  t.ok(click, 'the click\'s request is in the run\'s capture');
  // (Chromium's network service is a process it starts through /proc/self/exe: its comm is "exe")
  t.ok(click && /chromium/.test(String(click.exe)) && click.status === 200, `made by Chromium (${click?.exe}, ${click?.comm}), answered 200`);
  t.ok(objects.some((o) => o.path === '/'), 'after the page itself');
});

t.test('bad plans fail before anything runs, naming the line and the field', async (t) => {
  const dir = workDir(t, 'campaign');
  const cases: Array<[string, string, RegExp]> = [
    ['unknown field', 'runs:\n  - label: a\n    command: [true]\n    repeats: 3\n', /bad\.yaml:4: runs\[0\]\.repeats: unknown field/],
    ['wrong type', 'runs:\n  - label: a\n    command: [true]\n    repeat: three\n', /bad\.yaml:4: runs\[0\]\.repeat: must be a whole number from 1 to 100000 \(got "three"\)/],
    ['a command that does not exist', 'runs:\n  - label: a\n    command: [no-such-program-here, x]\n', /bad\.yaml:3: runs\[0\]\.command: .*no-such-program-here.*not found/i],
    ['a label twice, two commands', 'runs:\n  - label: a\n    command: [true]\n  - label: a\n    command: [false]\n', /bad\.yaml:4: runs\[1\]\.label: "a" is used twice with different commands/],
    ['a duration that is none', 'defaults:\n  duration: soon\nruns:\n  - label: a\n    command: [true]\n', /bad\.yaml:2: defaults\.duration: must be a duration/],
    ['not YAML', 'runs: [\n', /bad\.yaml:\d+: /],
  ];
  for (const [what, text, expected] of cases) {
    const planFile = path.join(dir, 'bad.yaml');
    fs.writeFileSync(planFile, text);
    const r = campaign(['run', planFile]);
    t.equal(r.status, 2, `${what}: exit 2`);
    t.match(r.stderr, expected, `${what}: ${r.stderr.split('\n')[0]}`);
    t.notOk(fs.existsSync(path.join(dir, 'bad.campaign')), `${what}: nothing ran (no campaign directory)`);
  }
});

noLeftovers(t);
