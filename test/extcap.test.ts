// tracedump inside Wireshark (extcap(4)), with Debian's tshark:
//  1. the protocol as Wireshark 4.0 reads it: --extcap-interfaces (with --extcap-version),
//     --extcap-dlts, --extcap-config (every arg line numbered in order, of a type extcap(4)
//     knows, the running processes offered for attaching, a test process among them),
//     --extcap-reload-option, --extcap-capture-filter (nothing on stdout for a valid filter,
//     the reason for an invalid one, exit 0 both: Wireshark's reading), errors that exit non-zero;
//  2. `tracedump extcap install` into the personal extcap folder of a HOME of the test's own:
//     `tshark -D` lists the interface; uninstall: it no longer does;
//  3. `tshark -i tracedump -o extcap.tracedump.command:...` captures the command's packets and
//     only those (an untraced client of the same server runs beside it), against a tcpdump
//     oracle as in the capture tests, each packet with its process comment;
//  4. an HTTPS fetch captured this way is decrypted by tshark from the file alone;
//  5. `tshark -i tracedump -a duration:3` with a process to attach to: capture ends, the process
//     is detached and keeps running, its packets are in the file.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { FLOWS, PY, type TdRun, captureScenario, checkCapture, noLeftovers, runFlows, startBg, startServer, workDir } from './helpers/capture';
import { CLI } from './helpers/tracedump';

const EXTCAP_TYPES = new Set(['integer', 'unsigned', 'long', 'double', 'string', 'selector', 'boolean', 'boolflag', 'radio', 'fileselect', 'multicheck', 'password', 'timestamp']);

function td(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(CLI, args, { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 30_000 });
}

/** The {key=value} fields of an extcap line. */
function fields(line: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of line.matchAll(/\{([a-z]+)=([^}]*)\}/g)) out[m[1]] = m[2];
  return out;
}

/** tshark as the capture: its run, in the shape the capture checks read. */
function tsharkRun(t: Test, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<TdRun> {
  const begin = Date.now();
  return new Promise((resolve) => {
    const child = spawn('tshark', args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    t.teardown(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, timedOut, elapsedMs: Date.now() - begin, stdout, stderr, summary: null, events: [] });
    });
  });
}

/** The pcapng tshark wrote, as nanosecond pcap for the capture checks. */
function toPcap(pcapng: string, pcap: string): void {
  const r = spawnSync('editcap', ['-F', 'nsecpcap', pcapng, pcap], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`editcap: ${r.stderr}`);
}

const shellWord = (w: string) => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`);

t.test('the extcap protocol', async (t) => {
  const sleeper = startBg(t, ['sleep', '60']);
  const ifs = td(['--extcap-interfaces', '--extcap-version=4.0']);
  t.equal(ifs.status, 0, '--extcap-interfaces exits 0');
  const lines = ifs.stdout.trim().split('\n');
  t.match(lines[0], /^extcap \{version=\d+\.\d+\.\d+\}\{help=file:\/\/\S+README\.md\}$/, 'the extcap line: version and help');
  t.same(fields(lines[1]), { value: 'tracedump', display: 'Packets of one program' }, 'one interface, tracedump');
  t.equal(lines.length, 2, 'nothing else');

  const dlts = td(['--extcap-interface', 'tracedump', '--extcap-dlts']);
  t.equal(dlts.status, 0);
  t.match(fields(dlts.stdout.trim()), { number: '276', name: 'LINUX_SLL2' }, 'the link type: LINUX_SLL2');

  const config = td(['--extcap-interface', 'tracedump', '--extcap-config']);
  t.equal(config.status, 0, '--extcap-config exits 0');
  const args = config.stdout.trim().split('\n').filter((l) => l.startsWith('arg '));
  const values = config.stdout.trim().split('\n').filter((l) => l.startsWith('value '));
  t.same(args.map((a) => Number(fields(a).number)), args.map((_, i) => i), 'args numbered 0.. in order');
  t.same(args.filter((a) => !EXTCAP_TYPES.has(fields(a).type)), [], 'every type one extcap(4) knows');
  t.same(args.filter((a) => !fields(a).call?.startsWith('--') || !fields(a).display), [], 'every arg has its --call and a display name');
  const calls = args.map((a) => fields(a).call);
  t.same(calls, ['--command', '--user', '--cwd', '--pid', '--pname', '--snaplen', '--no-tls-keys'], 'launch (command, user, directory), attach (process, name), snaplen, TLS keys');
  // a {validation=} is a regular expression Wireshark matches the field against as it is typed
  const validations = args.map((a) => fields(a)).filter((f) => f.validation !== undefined);
  t.same(validations.map((f) => f.call), ['--user'], 'the user field is validated');
  const userRe = new RegExp(validations[0].validation);
  t.same(['alice', 'www-data', '_apt', '1000', 'svc$'].filter((u) => !userRe.test(u)), [], 'user names and uids pass');
  t.same(['Alice', 'a b', '-x', ''].filter((u) => userRe.test(u)), [], 'others do not');
  const pidArg = fields(args[calls.indexOf('--pid')]);
  t.equal(pidArg.type, 'selector');
  t.equal(pidArg.reload, 'true', 'the process list can be reloaded');
  t.ok(values.every((v) => fields(v).arg === pidArg.number), 'the values are the processes');
  t.same(fields(values[0]), { arg: pidArg.number, value: '', display: 'none: launch the command', default: 'true' }, 'the first, chosen by default: none');
  t.ok(
    values.some((v) => fields(v).value === String(sleeper.pid) && /sleep 60/.test(fields(v).display)),
    `the running test process is offered (pid ${sleeper.pid}, "sleep 60")`,
  );
  t.notOk(values.some((v) => /\n/.test(v)), 'one line each');
  const reload = td(['--extcap-interface', 'tracedump', '--extcap-reload-option', '--pid']);
  t.equal(reload.status, 0);
  t.ok(reload.stdout.split('\n').some((l) => fields(l).value === String(sleeper.pid)), '--extcap-reload-option --pid lists the processes again');

  const ok = td(['--extcap-interface', 'tracedump', '--extcap-capture-filter', 'tcp port 80 or udp']);
  t.equal(ok.status, 0);
  t.equal(ok.stdout, '', 'a valid capture filter: nothing on stdout');
  const bad = td(['--extcap-interface', 'tracedump', '--extcap-capture-filter', 'tcp port eighty']);
  t.equal(bad.status, 0, 'an invalid one: exit 0 too (Wireshark reads stdout)');
  t.match(bad.stdout, /eighty/, `its reason on stdout (${bad.stdout.trim()})`);

  const other = td(['--extcap-interface', 'eth0', '--extcap-dlts']);
  t.not(other.status, 0, 'another interface: an error');
  t.match(other.stderr, /no extcap interface "eth0"/);
  const noFifo = td(['--capture', '--extcap-interface', 'tracedump', '--command', 'true']);
  t.not(noFifo.status, 0);
  t.match(noFifo.stderr, /--fifo/, 'a capture without --fifo: an error naming it');
  const nothing = td(['--capture', '--extcap-interface', 'tracedump', '--fifo', '/nonexistent/fifo']);
  t.not(nothing.status, 0);
  t.match(nothing.stderr, /give a command to run, or a running process/, 'a capture with neither a command nor a process: an error saying what to give');
  t.notOk(fs.existsSync('/nonexistent/fifo'));
});

t.test('tracedump extcap install: tshark -D lists the interface', async (t) => {
  const home = workDir(t, 'extcap-home');
  const env = { HOME: home, XDG_CONFIG_HOME: '' };
  const before = spawnSync('tshark', ['-D'], { encoding: 'utf8', env: { ...process.env, ...env } });
  t.notMatch(before.stdout, /tracedump/, 'not listed before');
  const inst = td(['extcap', 'install'], env);
  t.equal(inst.status, 0, `install exits 0 (${inst.stderr})`);
  const entry = path.join(home, '.config', 'wireshark', 'extcap', 'tracedump');
  t.match(inst.stdout, `installed ${entry} -> `, 'into the personal extcap folder of Wireshark 4.0');
  t.match(inst.stdout, /needs root/, 'the privileges explained');
  t.equal(fs.realpathSync(entry), fs.realpathSync(CLI), 'a link to this tracedump');
  const listed = spawnSync('tshark', ['-D'], { encoding: 'utf8', env: { ...process.env, ...env } });
  t.match(listed.stdout, /\d+\. tracedump \(Packets of one program\)/, 'tshark -D lists it');
  const again = td(['extcap', 'install'], env);
  t.equal(again.status, 0, 'installing again replaces the link');
  const un = td(['extcap', 'uninstall'], env);
  t.equal(un.status, 0);
  t.notOk(fs.existsSync(entry), 'uninstall removes it');
  t.notMatch(spawnSync('tshark', ['-D'], { encoding: 'utf8', env: { ...process.env, ...env } }).stdout, /tracedump/, 'no longer listed');
});

/** A HOME with tracedump installed as its extcap, for tshark -i tracedump. */
function extcapHome(t: Test): NodeJS.ProcessEnv {
  const home = workDir(t, 'extcap-home');
  const env = { HOME: home, XDG_CONFIG_HOME: '' };
  const r = td(['extcap', 'install'], env);
  if (r.status !== 0) throw new Error(`extcap install: ${r.stderr}`);
  return env;
}

t.test("tshark -i tracedump: the command's packets and only those, each with its process", async (t) => {
  const env = extcapHome(t);
  let pcapng = '';
  const sc = await captureScenario(t, {
    servers: [['serve-tcp', '127.0.0.1', 0]],
    // an untraced client of the same server all along
    others: { start: ([port], record) => [runFlows(t, ['tcp-get', '127.0.0.1', port, 20], { record, gapMs: 50 })] },
    run: async ({ out, record, ports: [port] }) => {
      pcapng = `${out}.pcapng`;
      const command = [PY, FLOWS, 'tcp-get', '127.0.0.1', String(port), '10'].map(shellWord).join(' ');
      const r = await tsharkRun(t, ['-i', 'tracedump', '-o', `extcap.tracedump.command:${command}`, '-w', pcapng], { ...env, FLOWS_RECORD: record, FLOWS_GAP_MS: '50' });
      toPcap(pcapng, out);
      return r;
    },
  });
  const { run, traced, others } = sc;
  t.equal(run.status, 0, `tshark exits 0 (${run.stderr.slice(-400)})`);
  t.equal(traced.length, 10, 'the command made its 10 connections');
  t.ok(others.length >= 1, `the untraced client ran beside it (${others.length} connections)`);
  checkCapture(t, { tdFile: sc.out, oracleFile: sc.oracle.file, oracleStats: sc.oracle.stats, run, traced, others, summary: false, tcpConnections: 10 });
  const comments = spawnSync('tshark', ['-r', pcapng, '-T', 'fields', '-e', 'frame.comment'], { encoding: 'utf8' }).stdout.trim().split('\n');
  t.ok(comments.length > 0 && comments.every((c) => /^pid=\d+ tid=\d+ comm=python3 exe=\S+/.test(c)), `every packet carries its process (${comments[0]})`);
  const shb = spawnSync('capinfos', ['-k', pcapng], { encoding: 'utf8' }).stdout;
  t.match(shb, /tracedump -- sh -c /, 'the section names the command');
});

const HTTPS_SERVER = `
const https = require('https');
const fs = require('fs');
const [cert, key] = process.argv.slice(2);
const server = https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, (req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end('secret body ' + req.url + '\\n');
});
server.listen(0, '127.0.0.1', () => console.log('ready ' + server.address().port));
`;

t.test('tshark -i tracedump: an HTTPS fetch is decrypted from the file alone', async (t) => {
  const env = extcapHome(t);
  const dir = workDir(t, 'extcap-tls');
  const gen = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { encoding: 'utf8' });
  t.equal(gen.status, 0, 'a certificate');
  fs.writeFileSync(path.join(dir, 'server.js'), HTTPS_SERVER);
  const server = startBg(t, [process.execPath, path.join(dir, 'server.js'), path.join(dir, 'cert.pem'), path.join(dir, 'key.pem')]);
  const port = Number((await server.waitFor(/^ready (\d+)$/m))[1]);
  const out = path.join(dir, 'https.pcapng');
  const r = await tsharkRun(t, ['-i', 'tracedump', '-o', `extcap.tracedump.command:curl -sk https://127.0.0.1:${port}/private/path`, '-w', out], env);
  t.equal(r.status, 0, `tshark exits 0 (${r.stderr.slice(-300)})`);
  const http = spawnSync('tshark', ['-r', out, '-Y', 'http', '-T', 'fields', '-e', 'http.request.uri', '-e', 'http.file_data'], { encoding: 'utf8' });
  t.match(http.stdout, /\/private\/path/, 'the request is decrypted: its path');
  t.match(http.stdout, /secret body|7365637265742062/, 'and the response body');
});

t.test('tshark -i tracedump -a duration:3, attached: capture ends, the process runs on', async (t) => {
  const env = extcapHome(t);
  const srv = await startServer(t, ['serve-tcp', '127.0.0.1', 0]);
  // a client that makes a connection every 100 ms for 20 s
  const client = startBg(t, [PY, FLOWS, 'tcp-get', '127.0.0.1', String(srv.port), '200'], { env: { FLOWS_GAP_MS: '100' } });
  await new Promise((r) => setTimeout(r, 300));
  const dir = workDir(t, 'extcap-attach');
  const out = path.join(dir, 'attach.pcapng');
  const r = await tsharkRun(t, ['-i', 'tracedump', '-o', `extcap.tracedump.pid:${client.pid}`, '-a', 'duration:3', '-w', out], env);
  t.equal(r.status, 0, `tshark exits 0 after 3 s (${r.stderr.slice(-300)})`);
  t.ok(r.elapsedMs >= 2900 && r.elapsedMs < 20_000, `it ran ${r.elapsedMs} ms`);
  t.equal(client.child.exitCode, null, 'the attached process still runs');
  const status = fs.readFileSync(`/proc/${client.pid}/status`, 'utf8');
  t.match(status, /TracerPid:\s+0\n/, 'and nobody traces it any more');
  const pids = spawnSync('tshark', ['-r', out, '-T', 'fields', '-e', 'frame.comment'], { encoding: 'utf8' }).stdout.trim().split('\n');
  t.ok(pids.length >= 20, `its packets are in the file (${pids.length})`);
  t.ok(pids.every((c) => c.startsWith(`pid=${client.pid} `)), 'all of them its own');
  await client.kill();
});

t.test('Wireshark closes the fifo: the capture ends, the command is stopped, nothing left behind', async (t) => {
  const dir = workDir(t, 'extcap-fifo');
  const fifo = path.join(dir, 'fifo');
  t.equal(spawnSync('mkfifo', [fifo]).status, 0);
  const srv = await startServer(t, ['serve-tcp', '127.0.0.1', 0]);
  const command = `${PY} ${FLOWS} tcp-get 127.0.0.1 ${srv.port} 100000`;
  const ext = startBg(t, [CLI, '--capture', '--extcap-interface', 'tracedump', '--fifo', fifo, '--command', command], { env: { FLOWS_GAP_MS: '20' } });
  // the reader: takes the first 4 KiB (the section header, the interfaces, packets), then closes
  // (non-blocking: a read finds nothing, or EOF, until tracedump has opened its end)
  const fd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const buf = Buffer.alloc(4096);
  let got = 0;
  for (const deadline = Date.now() + 30_000; got < buf.length && Date.now() < deadline; ) {
    let n = 0;
    try {
      n = fs.readSync(fd, buf, got, buf.length - got, null);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
    }
    got += n;
    if (n === 0) await new Promise((r) => setTimeout(r, 20));
  }
  fs.closeSync(fd);
  t.equal(got, 4096, 'pcapng came through the fifo');
  t.equal(buf.readUInt32LE(0), 0x0a0d0d0a, 'a section header block first');
  const start = Date.now();
  const r = await ext.exited;
  t.ok(Date.now() - start < 15_000, `tracedump ended ${Date.now() - start} ms after the fifo closed`);
  t.not(r.code, null, `it exited (status ${r.code}: ${ext.err().trim().split('\n').pop()})`);
  const left = spawnSync('pgrep', ['-f', `tcp-get 127.0.0.1 ${srv.port} 100000`], { encoding: 'utf8' }).stdout.trim();
  t.equal(left, '', 'the command was stopped with it');
});

noLeftovers(t);
