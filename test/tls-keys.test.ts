// TLS keys (`tracedump -w out.pcapng -- CMD`): the launched command is given a private key log
// (SSLKEYLOGFILE, NODE_OPTIONS --tls-keylog), tracedump reads its lines as they come and puts
// them in pcapng Decryption Secrets Blocks ahead of the packets they decrypt, so that
// `tshark -r out.pcapng -Y http` decrypts in one pass with no settings. Real TLS on loopback:
// two untraced Node HTTPS servers (one TLS 1.2 only, one TLS 1.3 only, a certificate made
// here with openssl), and traced clients:
//  1. curl (two paths on one connection), Python (ssl.create_default_context + urllib), Node
//     (https.get), each against TLS 1.2 and 1.3: every request path and every 200 response
//     decrypted in one pass, both Finished messages of every connection decrypted, the
//     ClientHello randoms in the file's secrets, the secrets = the --keylog copy = the summary's
//     count, the capture 0600, no secret on tracedump's stdout/stderr; for curl over TLS 1.3,
//     the capture is exact against an oracle tcpdump (holding packets back for keys loses or
//     adds nothing);
//  2. a client that ignores key logs (openssl s_client): a complete capture, no secrets, and
//     tracedump's status is the client's (0, and 1 for a refused handshake);
//  3. the private key log: a 0700 directory and a 0600 file in the temporary directory, named
//     in SSLKEYLOGFILE and NODE_OPTIONS (appended to the user's options), owned by the
//     command's user (-u nobody too, with the capture and --keylog files given to nobody),
//     removed when tracedump exits (also when the command fails); an existing 0644 capture
//     or --keylog file becomes 0600;
//  4. --no-tls-keys: no SSLKEYLOGFILE, NODE_OPTIONS untouched, no secrets in the file;
//  5. classic pcap: one hint on stderr however many keys come; none with --keylog, whose file
//     decrypts the pcap with tshark's keylog preference;
//  6. key logs the user set (SSLKEYLOGFILE, absolute or relative; NODE_OPTIONS --tls-keylog):
//     kept for the command, written by it, read from their end (older lines are not embedded);
//  7. attach mode: a program started with SSLKEYLOGFILE has its keys of after the attach
//     embedded (and copied to --keylog); its requests after the attach decrypt in one pass;
//  8. hard cases: a TLS 1.3 client that handles the server's first flight 1 s late (the file
//     waits for the handshake's keys), a quoted --tls-keylog in the user's NODE_OPTIONS,
//     --keylog naming the user's own SSLKEYLOGFILE (kept, nothing doubled).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { pcapngBlocks } from './helpers/pcapng-blocks';
import {
  type Bg,
  PY,
  type TdRun,
  captureScenario,
  checkReadable,
  noLeftovers,
  sleep,
  startBg,
  startTracedump,
  workDir,
} from './helpers/capture';
import { type Packet, TCP_ACK, TCP_FIN, TCP_SYN, describe, packetKey, readPcap } from './helpers/pcap';

const HOST = '127.0.0.1';
const TD_TIMEOUT_MS = 60_000;

// tracedump's environment: none of the test runner's own NODE_OPTIONS (tap's loader),
// SSLKEYLOGFILE or SUDO_* (CI may run under sudo), so that what the command sees is ours.
const BASE_ENV: NodeJS.ProcessEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && k !== 'SSLKEYLOGFILE' && !k.startsWith('SUDO_')),
);

const ROOT_WARNING = /^Running as user "root" and group "root"\. This could be dangerous\.\n?/m;

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 << 20, cwd: opts.cwd, env: opts.env ?? BASE_ENV });
  return { status: r.status, out: r.stdout ?? '', err: (r.stderr ?? '').replace(ROOT_WARNING, '') };
}

const lines = (s: string) => s.split('\n').filter((l) => l !== '');
const modeOf = (f: string) => fs.statSync(f).mode & 0o777;
const octal = (m: number) => m.toString(8).padStart(4, '0');

// ---- the servers ----------------------------------------------------------------------------

// An HTTPS server limited to one TLS version: prints "ready PORT", then "req PATH" for every
// request; answers 200 with "hello PATH". Ends by itself after 10 minutes at most.
const SERVER_JS = String.raw`
const https = require('https');
const fs = require('fs');
const [cert, key, version] = process.argv.slice(2);
const v = version === '1.2' ? 'TLSv1.2' : 'TLSv1.3';
const server = https.createServer(
  { cert: fs.readFileSync(cert), key: fs.readFileSync(key), minVersion: v, maxVersion: v },
  (req, res) => {
    console.log('req ' + req.url);
    // ?pad=N: N more bytes after the line (a response of many packets)
    const pad = Number(/[?&]pad=(\d+)/.exec(req.url)?.[1] ?? 0);
    const body = 'hello ' + req.url + '\n' + 'x'.repeat(pad);
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  },
);
server.listen(0, '127.0.0.1', () => console.log('ready ' + server.address().port));
setTimeout(() => process.exit(0), 600000).unref();
`;

interface Server {
  version: '1.2' | '1.3';
  port: number;
  bg: Bg;
  url(p: string): string;
  /** Every path requested so far, in order. */
  requests(): string[];
}

let dir = ''; // shared work dir (0755: nobody enters it)
const servers: Record<'1.2' | '1.3', Server> = {} as Record<'1.2' | '1.3', Server>;
/** Directories of the private key logs the commands were given (each must be gone at the end). */
const seenKeyDirs = new Set<string>();

/** The private key log a command printed (KEYLOG=… or SSLKEYLOGFILE=… on a line), remembered. */
function privateLog(stdout: string): string {
  const f = /^(?:KEYLOG|SSLKEYLOGFILE)=(.*)$/m.exec(stdout)?.[1] ?? '';
  if (/\/tracedump-tls-[^/]+\/keys\.log$/.test(f)) seenKeyDirs.add(path.dirname(f));
  return f;
}

t.before(async () => {
  dir = workDir(t, 'keylog-test');
  fs.chmodSync(dir, 0o755);
  const gen = run('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
    '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'),
    '-subj', `/CN=${HOST}`, '-addext', `subjectAltName=IP:${HOST}`,
  ]);
  if (gen.status !== 0) throw new Error(`openssl req: ${gen.err}`);
  fs.writeFileSync(path.join(dir, 'https-server.js'), SERVER_JS);
  for (const version of ['1.2', '1.3'] as const) {
    const bg = startBg(t, [process.execPath, path.join(dir, 'https-server.js'), path.join(dir, 'cert.pem'), path.join(dir, 'key.pem'), version], {
      env: { NODE_OPTIONS: '', SSLKEYLOGFILE: '' },
    });
    const port = Number((await bg.waitFor(/^ready (\d+)$/m))[1]);
    servers[version] = {
      version,
      port,
      bg,
      url: (p) => `https://${HOST}:${port}${p}`,
      requests: () => [...bg.out().matchAll(/^req (.*)$/gm)].map((m) => m[1]),
    };
  }
});

// ---- running tracedump --------------------------------------------------------------------

/** bin/tracedump TDARGS -- COMMAND in the work dir with BASE_ENV + env, bounded in time. */
function td(t: Test, tdArgs: string[], command: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<TdRun> {
  const { NODE_OPTIONS, ...env } = opts.env ?? {};
  return startTracedump(t, command.length ? [...tdArgs, '--', ...command] : tdArgs, {
    env: { ...BASE_ENV, ...env },
    nodeOptions: NODE_OPTIONS ?? null, // exactly ours, whatever the test runner adds
    cwd: opts.cwd ?? dir,
    timeoutMs: TD_TIMEOUT_MS,
  }).done;
}

function checkRun(t: Test, r: TdRun, what: string, status = 0): void {
  t.notOk(r.timedOut, `${what}: tracedump ended within ${TD_TIMEOUT_MS / 1000} s`);
  t.equal(r.status, status, `${what}: tracedump exits ${status} (stderr: ${r.stderr.slice(-400)})`);
}

// ---- an independent pcapng reader: the blocks, the Decryption Secrets Blocks ----------------

const BLOCK_EPB = 6;
const BLOCK_DSB = 0x0000000a;
const SECRETS_TLS = 0x544c534b; // "TLSK": an NSS key log

interface Dsb {
  /** How many packets (EPBs) come before it. */
  afterPackets: number;
  secretsType: number;
  lines: string[];
}

function readBlocks(file: string): { types: number[]; dsbs: Dsb[]; problems: string[] } {
  const walk = pcapngBlocks(file);
  const problems = [...walk.problems];
  if (!walk.littleEndian) problems.push('not a little-endian pcapng file');
  const dsbs: Dsb[] = [];
  let packets = 0;
  for (const { at, type, body } of walk.blocks) {
    if (type === BLOCK_EPB) packets++;
    if (type !== BLOCK_DSB) continue;
    const secretsType = body.readUInt32LE(0);
    const n = body.readUInt32LE(4);
    if (8 + n > body.length) problems.push(`DSB at ${at}: ${n} bytes of secrets overrun the block`);
    dsbs.push({ afterPackets: packets, secretsType, lines: lines(body.subarray(8, 8 + n).toString('latin1')) });
  }
  return { types: walk.blocks.map((b) => b.type), dsbs, problems };
}

const KEY_LINE = /^([A-Z][A-Z0-9_]*) ([0-9a-f]{64}) ([0-9a-f]+)$/;

// ---- what tshark makes of a capture, in one pass ------------------------------------------

interface Tshark {
  status: number | null;
  err: string;
  uris: string[];
  codes: string[];
  /** SYNs (without ACK): TCP connections opened. */
  syns: number;
  fins: number;
  /** Finished handshake messages shown (only when decrypted: they are encrypted in 1.2 and 1.3). */
  finished: number;
  /** EncryptedExtensions shown (TLS 1.3, encrypted with the handshake secrets). */
  encryptedExtensions: number;
  clientRandoms: string[];
  /** Per ServerHello: "1.3" when it selects TLS 1.3 (supported_versions), else its version. */
  serverHellos: string[];
  /** TLS record type fields (outer and inner: a decrypted TLS 1.3 record counts twice). */
  tlsRecords: number;
  appDataRecords: number;
  frames: number;
}

const FIELDS = [
  'frame.number', 'tcp.flags.syn', 'tcp.flags.ack', 'tcp.flags.fin', 'tls.handshake.type', 'tls.handshake.random',
  'tls.handshake.extensions.supported_version', 'tls.handshake.version', 'http.request.uri', 'http.response.code',
  'tls.record.content_type', 'tls.record.opaque_type',
];

/** tshark -r FILE -T fields (one pass, no -2, no keylog preference unless given). */
function tshark(file: string, prefs: string[] = []): Tshark {
  const args = ['-n', '-r', file, ...prefs, '-T', 'fields', '-E', 'separator=|', '-E', 'occurrence=a', '-E', 'aggregator=,'];
  for (const f of FIELDS) args.push('-e', f);
  const r = run('tshark', args);
  const s: Tshark = {
    status: r.status, err: r.err.trim(), uris: [], codes: [], syns: 0, fins: 0, finished: 0, encryptedExtensions: 0,
    clientRandoms: [], serverHellos: [], tlsRecords: 0, appDataRecords: 0, frames: 0,
  };
  for (const l of lines(r.out)) {
    const [, syn, ack, fin, hsTypes, randoms, supported, hsVersions, uri, code, ctypes, opaque] = l.split('|');
    s.frames++;
    if (syn === '1' && ack === '0') s.syns++;
    if (fin === '1') s.fins++;
    const types = hsTypes ? hsTypes.split(',') : [];
    s.finished += types.filter((x) => x === '20').length;
    s.encryptedExtensions += types.filter((x) => x === '8').length;
    if (types.includes('1') && randoms) s.clientRandoms.push(...randoms.split(',').map((x) => x.replace(/:/g, '').toLowerCase()));
    if (types.includes('2')) s.serverHellos.push(supported?.split(',').includes('0x0304') ? '1.3' : (hsVersions?.split(',')[0] ?? '?'));
    if (uri) s.uris.push(...uri.split(','));
    if (code) s.codes.push(...code.split(','));
    // an encrypted TLS 1.3 record shows its outer (opaque) type only
    const all = [ctypes, opaque].filter((x) => x).join(',');
    if (all) {
      const c = all.split(',');
      s.tlsRecords += c.length;
      s.appDataRecords += c.filter((x) => x === '23').length;
    }
  }
  return s;
}

const sorted = (a: string[]) => [...a].sort();

/**
 * The capture decrypts in one pass and holds exactly the program's keys: every request path
 * and a 200 for each, both Finished messages of every connection, the version negotiated,
 * the ClientHello randoms among the secrets, secrets = --keylog file = summary count, file
 * 0600, no secret on tracedump's stdout/stderr. Returns the key lines of the file.
 */
function checkDecrypts(
  t: Test,
  o: { file: string; run: TdRun; paths: string[]; version?: '1.2' | '1.3'; keylog?: string; what: string },
): string[] {
  const { what } = o;
  t.ok(fs.existsSync(o.file), `${what}: the capture file exists`);
  if (!fs.existsSync(o.file)) return [];
  t.equal(octal(modeOf(o.file)), '0600', `${what}: the capture file (pcapng with keys) is mode 0600`);
  const ts = tshark(o.file);
  t.equal(ts.status, 0, `${what}: tshark reads the file (${ts.err.slice(0, 300)})`);
  t.same(sorted(ts.uris), sorted(o.paths), `${what}: tshark -Y http (one pass, no settings) shows every request path: ${o.paths.join(' ')}`);
  t.same(ts.codes, o.paths.map(() => '200'), `${what}: and a decrypted 200 response for each`);
  t.ok(ts.syns > 0, `${what}: the capture has the TCP connections (${ts.syns})`);
  t.equal(ts.finished, 2 * ts.syns, `${what}: both Finished messages of each of the ${ts.syns} connections are decrypted`);
  if (o.version) {
    t.same(ts.serverHellos, Array(ts.syns).fill(o.version === '1.3' ? '1.3' : '0x0303'), `${what}: every connection negotiated TLS ${o.version}`);
    if (o.version === '1.3')
      t.equal(ts.encryptedExtensions, ts.syns, `${what}: the server's EncryptedExtensions (handshake keys, logged after the ServerHello arrived) decrypt too`);
  }
  const blocks = readBlocks(o.file);
  t.same(blocks.problems, [], `${what}: the pcapng blocks are well formed`);
  t.ok(blocks.dsbs.length > 0, `${what}: the file has Decryption Secrets Blocks (${blocks.dsbs.length})`);
  t.same(blocks.dsbs.filter((d) => d.secretsType !== SECRETS_TLS).map((d) => d.secretsType.toString(16)), [], `${what}: every DSB holds a TLS key log (TLSK)`);
  const keyLines = blocks.dsbs.flatMap((d) => d.lines);
  t.same(keyLines.filter((l) => !KEY_LINE.test(l)), [], `${what}: every DSB line is an NSS key log line`);
  t.equal(new Set(keyLines).size, keyLines.length, `${what}: no key line is embedded twice`);
  const randoms = new Set(keyLines.map((l) => KEY_LINE.exec(l)?.[2]));
  t.same(ts.clientRandoms.filter((r) => !randoms.has(r)), [], `${what}: the client random of every ClientHello (${ts.clientRandoms.length}) has keys in the file`);
  const labels = new Set(keyLines.map((l) => KEY_LINE.exec(l)?.[1]));
  if (o.version === '1.2') t.ok(labels.has('CLIENT_RANDOM'), `${what}: CLIENT_RANDOM lines (TLS 1.2)`);
  if (o.version === '1.3')
    t.ok(labels.has('CLIENT_TRAFFIC_SECRET_0') && labels.has('SERVER_TRAFFIC_SECRET_0') && labels.has('SERVER_HANDSHAKE_TRAFFIC_SECRET'),
      `${what}: *_TRAFFIC_SECRET_0 and handshake secret lines (TLS 1.3): ${[...labels].join(' ')}`);
  t.match(o.run.stderr, new RegExp(`, ${keyLines.length} TLS key log lines? in the file;`), `${what}: the summary counts the ${keyLines.length} key lines in the file`);
  if (o.keylog) {
    t.ok(fs.existsSync(o.keylog), `${what}: --keylog file written`);
    if (fs.existsSync(o.keylog)) {
      t.equal(octal(modeOf(o.keylog)), '0600', `${what}: the --keylog file is mode 0600`);
      t.same(sorted(lines(fs.readFileSync(o.keylog, 'latin1'))), sorted(keyLines), `${what}: the --keylog file holds exactly the lines of the DSBs`);
    }
  }
  const secrets = keyLines.map((l) => KEY_LINE.exec(l)?.[3]).filter((s): s is string => !!s);
  const leaked = secrets.filter((s) => o.run.stdout.toLowerCase().includes(s) || o.run.stderr.toLowerCase().includes(s));
  t.same(leaked, [], `${what}: none of the ${secrets.length} secrets appears on tracedump's stdout or stderr`);
  return keyLines;
}

// ---- 1. curl, Python, Node against TLS 1.2 and TLS 1.3 --------------------------------------

const PY_CLIENT = String.raw`
import ssl, sys, urllib.request
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
for url in sys.argv[1:]:
    with urllib.request.urlopen(url, context=ctx, timeout=20) as r:
        print(r.status, r.read().decode().strip(), flush=True)
`;

const NODE_CLIENT = String.raw`
const https = require('https');
console.log('NODE_OPTIONS=' + (process.env.NODE_OPTIONS ?? '<unset>'));
console.log('SSLKEYLOGFILE=' + (process.env.SSLKEYLOGFILE ?? '<unset>'));
https.get(process.argv[2], { rejectUnauthorized: false, timeout: 20000 }, (res) => {
  let body = '';
  res.on('data', (c) => (body += c));
  res.on('end', () => console.log(res.statusCode, body.trim()));
}).on('error', (e) => { console.error(e.message); process.exit(3); });
`;

for (const version of ['1.2', '1.3'] as const) {
  const v = version.replace('.', '');
  t.test(`curl -sk, two paths, TLS ${version}: decrypted in one pass`, async (t) => {
    const s = servers[version];
    const keylog = path.join(dir, `curl-${v}.keys`);
    const paths = [`/curl-${v}-first`, `/curl-${v}-second`];
    const before = s.requests().length;
    // the oracle: holding packets back for keys must neither lose nor add any
    const sc = await captureScenario(t, {
      dir,
      file: `curl-${v}.pcapng`,
      startServers: async () => [s.port],
      oracle: { filter: ([port]) => `tcp port ${port}` },
      run: ({ out }) => td(t, ['-w', out, '--keylog', keylog], ['curl', '-sk', ...paths.map(s.url)]),
    });
    const { run: r, out } = sc;
    checkRun(t, r, 'curl');
    t.same(lines(r.stdout), paths.map((p) => `hello ${p}`), 'curl got both answers (on stdout)');
    t.same(s.requests().slice(before), paths, 'the server got both requests');
    checkDecrypts(t, { file: out, run: r, paths, version, keylog, what: `curl TLS ${version}` });
    const { stats, file: oracleFile } = sc.oracle;
    const conv = path.join(dir, `curl-${v}.conv.pcap`);
    const ed = run('editcap', ['-F', 'nsecpcap', '-T', 'linux-sll2', out, conv]);
    t.equal(ed.status, 0, `editcap converts the pcapng (${ed.err.slice(0, 200)})`);
    const mine = readPcap(conv).packets;
    const theirs = readPcap(oracleFile).packets;
    t.equal(stats.dropped, 0, 'the oracle dropped nothing');
    t.ok(theirs.length > 0, `the oracle saw the connection (${theirs.length} packets)`);
    const keys = (ps: Packet[]) => ps.map((p) => packetKey(p)).sort();
    t.same(keys(mine), keys(theirs), `with keys held back, the file has exactly the oracle's ${theirs.length} packets`);
    t.same(mine.map((p) => p.ms), [...mine.map((p) => p.ms)].sort((a, b) => a - b), 'the packets are in time order');
    t.equal(r.summary?.packets, mine.length, 'the summary counts the packets in the file');
  });

  t.test(`python3 ssl + urllib, TLS ${version}: decrypted in one pass`, async (t) => {
    const s = servers[version];
    const script = path.join(dir, 'client.py');
    fs.writeFileSync(script, PY_CLIENT);
    const out = path.join(dir, `py-${v}.pcapng`);
    const keylog = path.join(dir, `py-${v}.keys`);
    const paths = [`/python-${v}`];
    const r = await td(t, ['-w', out, '--keylog', keylog], [PY, script, ...paths.map(s.url)]);
    checkRun(t, r, 'python');
    t.same(lines(r.stdout), paths.map((p) => `200 hello ${p}`), 'python got its answer');
    checkDecrypts(t, { file: out, run: r, paths, version, keylog, what: `python TLS ${version}` });
  });

  t.test(`node https.get, TLS ${version}: decrypted in one pass`, async (t) => {
    const s = servers[version];
    const script = path.join(dir, 'client.js');
    fs.writeFileSync(script, NODE_CLIENT);
    const out = path.join(dir, `node-${v}.pcapng`);
    const keylog = path.join(dir, `node-${v}.keys`);
    const paths = [`/node-${v}`];
    const r = await td(t, ['-w', out, '--keylog', keylog], [process.execPath, script, s.url(paths[0])]);
    checkRun(t, r, 'node');
    const o = lines(r.stdout);
    t.equal(o[2], `200 hello ${paths[0]}`, 'node got its answer');
    const keyFile = privateLog(r.stdout);
    t.match(keyFile, /^\/.*\/tracedump-tls-[^/]+\/keys\.log$/, 'node was given a private key log in SSLKEYLOGFILE');
    t.equal(/^NODE_OPTIONS=(.*)$/m.exec(r.stdout)?.[1], `--tls-keylog=${keyFile}`, 'and NODE_OPTIONS=--tls-keylog=<the same file> (none set before)');
    checkDecrypts(t, { file: out, run: r, paths, version, keylog, what: `node TLS ${version}` });
  });
}

// A client that keeps logging keys for seconds: every line reaches the file. (A timer meant for
// --keylog without a capture once read the key log too, and the lines it took never reached the
// file: a connection here and there could not be decrypted.)
const PY_SLOW_CLIENT = String.raw`
import ssl, sys, time, urllib.request
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
for url in sys.argv[1:]:
    with urllib.request.urlopen(url, context=ctx, timeout=20) as r:
        print(r.status, r.read().decode().split('\n')[0], flush=True)
    time.sleep(0.1)
`;

t.test('python3, 40 connections of 300 kB over 5 s: every key line of the program is in the file', async (t) => {
  const s = servers['1.3'];
  const script = path.join(dir, 'slow-client.py');
  fs.writeFileSync(script, PY_SLOW_CLIENT);
  const out = path.join(dir, 'py-slow.pcapng');
  const keylog = path.join(dir, 'py-slow.keys');
  // 300 kB answers: many packets to write at each tick, while the program logs its next keys
  const paths = Array.from({ length: 40 }, (_, i) => `/python-slow-${i}?pad=300000`);
  const r = await td(t, ['-w', out, '--keylog', keylog], [PY, script, ...paths.map(s.url)]);
  checkRun(t, r, 'python');
  t.equal(lines(r.stdout).length, 40, 'python got its 40 answers');
  const keyLines = checkDecrypts(t, { file: out, run: r, paths, version: '1.3', keylog, what: 'python, 40 connections' });
  t.equal(keyLines.length, 40 * 5, 'five key lines for each of the 40 TLS 1.3 connections');
});

// ---- 2. a client that ignores key logs --------------------------------------------------------

t.test('openssl s_client (ignores SSLKEYLOGFILE): a complete capture, no secrets, its exit status', async (t) => {
  const s = servers['1.3'];
  const request = `GET /s_client HTTP/1.1\\r\\nHost: ${HOST}\\r\\nConnection: close\\r\\n\\r\\n`;
  const cmd = ['sh', '-c', `printf '${request}' | openssl s_client -quiet -connect ${HOST}:${s.port}`];
  const sc = await captureScenario(t, {
    dir,
    file: 's_client.pcapng',
    startServers: async () => [s.port],
    oracle: { filter: ([port]) => `tcp port ${port}` },
    run: ({ out }) => td(t, ['-w', out], cmd),
  });
  const { run: r, out } = sc;
  const { stats, file: oracleFile } = sc.oracle;
  checkRun(t, r, 's_client', 0);
  t.match(r.stdout, /^HTTP\/1\.1 200 OK\r?$/m, 's_client got the answer');
  t.match(r.stdout, /hello \/s_client/, 'with its body');
  t.ok(r.summary, `summary line (${r.summary?.line})`);
  t.notMatch(r.stderr, /TLS key log line/, 'the summary has no key lines (none were logged)');
  t.notMatch(r.stderr, /classic pcap/, 'no hint about classic pcap');
  checkReadable(t, out);
  const ts = tshark(out);
  t.equal(ts.status, 0, `tshark reads it without error (${ts.err.slice(0, 200)})`);
  t.equal(ts.syns, 1, 'one connection, from its SYN');
  t.ok(ts.fins >= 1, `to its FIN (${ts.fins})`);
  t.ok(ts.tlsRecords >= 5 && ts.appDataRecords >= 2, `TLS records are there (${ts.tlsRecords}, ${ts.appDataRecords} application data)`);
  t.same(ts.uris, [], 'nothing decrypts: no HTTP');
  const blocks = readBlocks(out);
  t.same(blocks.problems, [], 'the pcapng blocks are well formed');
  t.notOk(blocks.types.includes(BLOCK_DSB), 'no Decryption Secrets Block (type 0x0000000A)');
  // whole and exact against the oracle
  const conv = path.join(dir, 's_client.conv.pcap');
  t.equal(run('editcap', ['-F', 'nsecpcap', '-T', 'linux-sll2', out, conv]).status, 0, 'editcap converts the pcapng');
  const mine = readPcap(conv).packets;
  const theirs = readPcap(oracleFile).packets;
  t.equal(stats.dropped, 0, 'the oracle dropped nothing');
  const keys = (ps: Packet[]) => ps.map((p) => packetKey(p)).sort();
  t.same(keys(mine), keys(theirs), `the file has exactly the oracle's ${theirs.length} packets`);
  const first = mine[0];
  t.ok(first && (first.tcpFlags & (TCP_SYN | TCP_ACK)) === TCP_SYN, `the first packet is the SYN (${first && describe(first)})`);
  t.ok(mine.some((p) => p.tcpFlags & TCP_FIN), 'a FIN is in the file');
  t.equal(r.summary?.packets, mine.length, 'the summary counts the packets in the file');

  // a refused handshake: s_client's own status (1) is tracedump's
  const s12 = servers['1.2'];
  const fail = ['openssl', 's_client', '-tls1_3', '-connect', `${HOST}:${s12.port}`];
  const direct = run(fail[0], fail.slice(1));
  t.not(direct.status, 0, `untraced, s_client -tls1_3 against the TLS 1.2 server fails (status ${direct.status})`);
  const out2 = path.join(dir, 's_client-fail.pcapng');
  const r2 = await td(t, ['-w', out2], fail);
  checkRun(t, r2, 's_client -tls1_3 (refused)', direct.status ?? -1);
  const ts2 = tshark(out2);
  t.equal(ts2.status, 0, 'tshark reads the capture of the refused handshake');
  t.equal(ts2.syns, 1, 'it has the SYN');
  t.ok(ts2.fins >= 1, 'and a FIN');
  t.ok(ts2.tlsRecords >= 2, `the ClientHello and the alert (${ts2.tlsRecords} TLS records)`);
  t.notOk(readBlocks(out2).types.includes(BLOCK_DSB), 'no Decryption Secrets Block');
});

// ---- 3. the private key log: where, modes, owners, removal -------------------------------------

const PROBE_KEYLOG = (url: string) => [
  'sh',
  '-c',
  'echo "KEYLOG=$SSLKEYLOGFILE"; echo "NODE_OPTIONS=$NODE_OPTIONS"; id -un; ' +
    'stat -c "DIR %a %U %G" "$(dirname "$SSLKEYLOGFILE")"; stat -c "FILE %a %U %G" "$SSLKEYLOGFILE"; ' +
    `curl -sk ${url}`,
];

interface KeylogProbe {
  keylog: string;
  nodeOptions: string;
  user: string;
  dir: string;
  file: string;
}

function parseKeylogProbe(stdout: string): KeylogProbe {
  const l = lines(stdout);
  const get = (re: RegExp) => l.map((x) => re.exec(x)?.[1]).find((x) => x !== undefined) ?? '';
  privateLog(stdout);
  return {
    keylog: get(/^KEYLOG=(.*)$/),
    nodeOptions: get(/^NODE_OPTIONS=(.*)$/),
    user: l[2] ?? '',
    dir: get(/^DIR (.*)$/),
    file: get(/^FILE (.*)$/),
  };
}

t.test('the private key log: 0700 directory, 0600 file, in SSLKEYLOGFILE and NODE_OPTIONS, gone at exit', async (t) => {
  const s = servers['1.3'];
  const out = path.join(dir, 'perm.pcapng');
  const keylog = path.join(dir, 'perm.keys');
  // both exist already, readable by all: they become 0600
  fs.writeFileSync(out, 'old');
  fs.chmodSync(out, 0o644);
  fs.writeFileSync(keylog, 'CLIENT_RANDOM ' + 'ab'.repeat(32) + ' ' + 'cd'.repeat(48) + '\n');
  fs.chmodSync(keylog, 0o644);
  const r = await td(t, ['-w', out, '--keylog', keylog], PROBE_KEYLOG(s.url('/perm')), { env: { NODE_OPTIONS: '--max-http-header-size=20000' } });
  checkRun(t, r, 'probe');
  const p = parseKeylogProbe(r.stdout);
  t.equal(path.dirname(path.dirname(p.keylog)), os.tmpdir(), `SSLKEYLOGFILE is in the temporary directory (${p.keylog})`);
  t.match(path.basename(path.dirname(p.keylog)), /^tracedump-tls-/, 'in a directory tracedump-tls-XXXX');
  t.equal(path.basename(p.keylog), 'keys.log', 'named keys.log');
  t.equal(p.nodeOptions, `--max-http-header-size=20000 --tls-keylog=${p.keylog}`, "NODE_OPTIONS: the user's options, then --tls-keylog=<that file>");
  t.equal(p.user, 'root', 'the command ran as root');
  t.equal(p.dir, '700 root root', 'the directory is 0700, root');
  t.equal(p.file, '600 root root', 'the key log is 0600, root');
  t.match(r.stdout, /hello \/perm/, 'curl got its answer');
  t.notOk(fs.existsSync(path.dirname(p.keylog)), 'the private directory is removed when tracedump exits');
  const keyLines = checkDecrypts(t, { file: out, run: r, paths: ['/perm'], version: '1.3', keylog, what: 'probe' });
  t.notOk(keyLines.includes('CLIENT_RANDOM ' + 'ab'.repeat(32) + ' ' + 'cd'.repeat(48)), 'the old content of the --keylog file is gone');

  // the command fails: the directory goes all the same, the status is the command's
  const r2 = await td(t, ['-w', path.join(dir, 'perm-fail.pcapng')], ['sh', '-c', 'echo "KEYLOG=$SSLKEYLOGFILE"; exit 3']);
  checkRun(t, r2, 'a failing command', 3);
  const k2 = privateLog(r2.stdout);
  t.match(k2, /tracedump-tls-/, 'the failing command had a private key log');
  t.notOk(k2 && fs.existsSync(path.dirname(k2)), 'its directory is removed too');
});

t.test('-u nobody: the key log, the capture and --keylog belong to nobody; the request still decrypts', async (t) => {
  const s = servers['1.2'];
  const nobody = run('id', ['-u', 'nobody']).out.trim();
  const nogroup = run('id', ['-g', 'nobody']).out.trim();
  const out = path.join(dir, 'nobody.pcapng');
  const keylog = path.join(dir, 'nobody.keys');
  const r = await td(t, ['-w', out, '--keylog', keylog, '-u', 'nobody'], PROBE_KEYLOG(s.url('/as-nobody')));
  checkRun(t, r, '-u nobody');
  const p = parseKeylogProbe(r.stdout);
  const group = run('id', ['-gn', 'nobody']).out.trim();
  t.equal(p.user, 'nobody', 'the command ran as nobody');
  t.equal(p.dir, `700 nobody ${group}`, 'the private directory is 0700, nobody');
  t.equal(p.file, `600 nobody ${group}`, 'the private key log is 0600, nobody');
  t.match(r.stdout, /hello \/as-nobody/, 'curl (as nobody) got its answer');
  t.notOk(p.keylog && fs.existsSync(path.dirname(p.keylog)), 'the private directory is removed at exit');
  const st = fs.statSync(out);
  t.same([st.uid, st.gid], [Number(nobody), Number(nogroup)], 'the capture file belongs to nobody');
  if (fs.existsSync(keylog)) {
    const sk = fs.statSync(keylog);
    t.same([sk.uid, sk.gid], [Number(nobody), Number(nogroup)], 'the --keylog file belongs to nobody');
  }
  checkDecrypts(t, { file: out, run: r, paths: ['/as-nobody'], version: '1.2', keylog, what: '-u nobody' });
});

// ---- 4. --no-tls-keys -------------------------------------------------------------------------

const PROBE_ENV = (url: string) => [
  'sh',
  '-c',
  `${PY} -c 'import json, os; print("ENV " + json.dumps(dict(os.environ)))'; curl -sk ${url}`,
];

function envOf(stdout: string): Record<string, string> {
  const l = lines(stdout).find((x) => x.startsWith('ENV '));
  return l ? JSON.parse(l.slice(4)) : {};
}

t.test('--no-tls-keys: no SSLKEYLOGFILE, NODE_OPTIONS untouched, no secrets in the file', async (t) => {
  const s = servers['1.3'];
  for (const nodeOptions of [undefined, '--max-http-header-size=20000']) {
    const what = nodeOptions ? `NODE_OPTIONS=${nodeOptions}` : 'no NODE_OPTIONS';
    const out = path.join(dir, `nokeys-${nodeOptions ? 1 : 0}.pcapng`);
    const r = await td(t, ['-w', out, '--no-tls-keys'], PROBE_ENV(s.url('/no-keys')), { env: nodeOptions ? { NODE_OPTIONS: nodeOptions } : {} });
    checkRun(t, r, `--no-tls-keys, ${what}`);
    const env = envOf(r.stdout);
    t.ok(env.PATH, `${what}: the probe printed its environment`);
    t.notOk('SSLKEYLOGFILE' in env, `${what}: the command has no SSLKEYLOGFILE`);
    t.equal(env.NODE_OPTIONS, nodeOptions, `${what}: NODE_OPTIONS is unchanged`);
    t.match(r.stdout, /hello \/no-keys/, `${what}: curl got its answer`);
    const blocks = readBlocks(out);
    t.same(blocks.problems, [], `${what}: the pcapng blocks are well formed`);
    t.notOk(blocks.types.includes(BLOCK_DSB), `${what}: no Decryption Secrets Block (type 0x0000000A)`);
    const ts = tshark(out);
    t.equal(ts.status, 0, `${what}: tshark reads it`);
    t.ok(ts.appDataRecords > 0, `${what}: the TLS records are there (${ts.appDataRecords} application data)`);
    t.same(ts.uris, [], `${what}: tshark -Y http finds nothing`);
    t.equal(ts.finished, 0, `${what}: no handshake message decrypts`);
    t.notMatch(r.stderr, /TLS key log/, `${what}: the summary has no key lines`);
    t.equal(octal(modeOf(out)), '0644', `${what}: the capture (no keys in it) is the usual 0644`);
  }
  const u = await td(t, ['-w', path.join(dir, 'nokeys-x.pcapng'), '--no-tls-keys', '--keylog', path.join(dir, 'nokeys.keys')], ['true']);
  t.equal(u.status, 125, `--no-tls-keys with --keylog is refused (${u.stderr.trim()})`);
  t.notOk(fs.existsSync(path.join(dir, 'nokeys.keys')), 'and no --keylog file is made');

  // the default, for contrast: the same probe sees SSLKEYLOGFILE
  const r = await td(t, ['-w', path.join(dir, 'keys-default.pcapng')], PROBE_ENV(s.url('/default')));
  checkRun(t, r, 'default');
  const env = envOf(r.stdout);
  privateLog(`SSLKEYLOGFILE=${env.SSLKEYLOGFILE}`);
  t.match(env.SSLKEYLOGFILE ?? '', /tracedump-tls-.*\/keys\.log$/, 'without --no-tls-keys the same probe has SSLKEYLOGFILE');
  t.equal(env.NODE_OPTIONS, `--tls-keylog=${env.SSLKEYLOGFILE}`, 'and NODE_OPTIONS --tls-keylog');
});

// ---- 5. classic pcap --------------------------------------------------------------------------

t.test('classic pcap: one hint on stderr; with --keylog no hint, and the key log decrypts the pcap', async (t) => {
  const s = servers['1.3'];
  const s12 = servers['1.2'];
  const hint = /the program logged TLS keys, but (\S+) is classic pcap, which cannot hold them; write pcapng \(-w FILE\.pcapng\) or keep them with --keylog FILE/g;
  // keys come at two moments more than a flush apart (two reads of the key log)
  const cmd = ['sh', '-c', `curl -sk ${s.url('/pcap-1')} && sleep 1.5 && curl -sk ${s12.url('/pcap-2')}`];
  const out = path.join(dir, 'classic.pcap');
  const r = await td(t, ['-w', out], cmd);
  checkRun(t, r, 'classic pcap');
  t.same(lines(r.stdout), ['hello /pcap-1', 'hello /pcap-2'], 'both requests answered');
  const hints = [...r.stderr.matchAll(hint)];
  t.equal(hints.length, 1, `the hint is printed once (stderr: ${r.stderr.trim()})`);
  t.equal(hints[0]?.[1], out, 'it names the capture file');
  t.match(r.stderr, /, \d+ TLS key log lines?;/, 'the summary counts the key lines');
  t.notMatch(r.stderr, /TLS key log lines? in the file/, 'and does not say they are in the file');
  t.equal(octal(modeOf(out)), '0644', 'the pcap (no keys in it) is 0644');
  const plain = tshark(out);
  t.equal(plain.status, 0, 'tshark reads the pcap');
  t.same(plain.uris, [], 'without a key log nothing decrypts');

  const out2 = path.join(dir, 'classic-keylog.pcap');
  const keylog = path.join(dir, 'classic.keys');
  const r2 = await td(t, ['-w', out2, '--keylog', keylog], cmd);
  checkRun(t, r2, 'classic pcap --keylog');
  t.notMatch(r2.stderr, /classic pcap/, `with --keylog, no hint (stderr: ${r2.stderr.trim()})`);
  t.equal(octal(modeOf(keylog)), '0600', 'the --keylog file is 0600');
  const keyLines = lines(fs.readFileSync(keylog, 'latin1'));
  t.ok(keyLines.length > 0 && keyLines.every((l) => KEY_LINE.test(l)), `it holds NSS key lines (${keyLines.length})`);
  t.match(r2.stderr, new RegExp(`, ${keyLines.length} TLS key log lines?;`), 'the summary counts them');
  const dec = tshark(out2, ['-o', `tls.keylog_file:${keylog}`]);
  t.equal(dec.status, 0, `tshark reads it (${dec.err.slice(0, 200)})`);
  t.same(sorted(dec.uris), ['/pcap-1', '/pcap-2'], 'tshark -o tls.keylog_file:KEYLOG -Y http decrypts both requests');
  t.same(dec.codes, ['200', '200'], 'and both responses');
  const leaked = keyLines.map((l) => KEY_LINE.exec(l)?.[3] ?? '').filter((x) => x && (r2.stdout + r2.stderr).includes(x));
  t.same(leaked, [], 'no secret on stdout or stderr');
});

// ---- 6. key logs the user set ------------------------------------------------------------------

t.test('SSLKEYLOGFILE set by the user: kept for the command, filled by it, read from its end', async (t) => {
  const s = servers['1.3'];
  const s12 = servers['1.2'];
  const nodeScript = path.join(dir, 'client.js');
  fs.writeFileSync(nodeScript, NODE_CLIENT);
  for (const relative of [false, true]) {
    const what = relative ? 'relative SSLKEYLOGFILE' : 'absolute SSLKEYLOGFILE';
    const name = `user-${relative ? 'rel' : 'abs'}.keys`;
    const userLog = path.join(dir, name);
    const old = `CLIENT_RANDOM ${'11'.repeat(32)} ${'22'.repeat(48)}`;
    fs.writeFileSync(userLog, `# an earlier session\n${old}\n`);
    const out = path.join(dir, `user-${relative ? 'rel' : 'abs'}.pcapng`);
    const cmd = ['sh', '-c', `echo "KEYLOG=$SSLKEYLOGFILE"; curl -sk ${s.url('/user-curl')} && ${process.execPath} ${nodeScript} ${s12.url('/user-node')}`];
    const r = await td(t, ['-w', out], cmd, { env: { SSLKEYLOGFILE: relative ? name : userLog } });
    checkRun(t, r, what);
    t.equal(/^KEYLOG=(.*)$/m.exec(r.stdout)?.[1], relative ? name : userLog, `${what}: the command sees the same SSLKEYLOGFILE`);
    t.equal(/^NODE_OPTIONS=(.*)$/m.exec(r.stdout)?.[1], `--tls-keylog=${userLog}`, `${what}: NODE_OPTIONS points node at the same file`);
    t.match(r.stdout, /hello \/user-curl/, `${what}: curl got its answer`);
    t.match(r.stdout, /200 hello \/user-node/, `${what}: node got its answer`);
    const all = lines(fs.readFileSync(userLog, 'latin1'));
    t.same(all.slice(0, 2), ['# an earlier session', old], `${what}: the earlier lines are still there`);
    const fresh = all.slice(2);
    t.ok(fresh.length > 0, `${what}: the command wrote its keys to the user's file (${fresh.length} lines)`);
    const keyLines = checkDecrypts(t, { file: out, run: r, paths: ['/user-curl', '/user-node'], what });
    t.same(sorted(keyLines), sorted(fresh), `${what}: the file holds the new lines of the user's key log`);
    t.notOk(keyLines.includes(old), `${what}: not the earlier ones (read from its end)`);
  }

  // NODE_OPTIONS=--tls-keylog=FILE set by the user: unchanged; node writes there; it decrypts
  const nodeLog = path.join(dir, 'user-node.keys');
  fs.writeFileSync(nodeLog, '');
  const out = path.join(dir, 'user-node.pcapng');
  const r = await td(t, ['-w', out], [process.execPath, nodeScript, s.url('/user-node-options')], { env: { NODE_OPTIONS: `--tls-keylog=${nodeLog}` } });
  checkRun(t, r, 'NODE_OPTIONS --tls-keylog');
  t.equal(/^NODE_OPTIONS=(.*)$/m.exec(r.stdout)?.[1], `--tls-keylog=${nodeLog}`, "the user's NODE_OPTIONS is kept as it was");
  t.match(r.stdout, /200 hello \/user-node-options/, 'node got its answer');
  const fresh = lines(fs.readFileSync(nodeLog, 'latin1'));
  t.ok(fresh.length > 0, `node wrote its keys to the user's file (${fresh.length} lines)`);
  const keyLines = checkDecrypts(t, { file: out, run: r, paths: ['/user-node-options'], version: '1.3', what: 'NODE_OPTIONS --tls-keylog' });
  t.same(sorted(keyLines), sorted(fresh), "the capture holds the lines of the user's node key log");
});

// ---- 7. attach mode ---------------------------------------------------------------------------

// Started with SSLKEYLOGFILE: one request before the attach, prints "started", waits until it
// is traced, then one request itself (urllib, TLS 1.3) and one by a child (curl, TLS 1.2).
const ATTACHED_PY = String.raw`
import os, ssl, subprocess, sys, time, urllib.request
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
def get(url):
    with urllib.request.urlopen(url, context=ctx, timeout=20) as r:
        print(r.status, r.read().decode().strip(), flush=True)
def traced():
    with open('/proc/self/status') as f:
        return any(l.startswith('TracerPid:') and l.split()[1] != '0' for l in f)
get(sys.argv[1])
print('started', flush=True)
deadline = time.time() + 30
while not traced():
    if time.time() > deadline:
        sys.exit('never attached')
    time.sleep(0.05)
time.sleep(0.3)
get(sys.argv[2])
subprocess.run(['curl', '-sk', sys.argv[3]], check=True)
print('done', flush=True)
`;

t.test('attach: a program started with SSLKEYLOGFILE has its new keys embedded', async (t) => {
  const s = servers['1.3'];
  const s12 = servers['1.2'];
  const script = path.join(dir, 'attached.py');
  fs.writeFileSync(script, ATTACHED_PY);
  const userLog = path.join(dir, 'attached.keys');
  const prog = startBg(t, [PY, script, s.url('/before-attach'), s.url('/after-attach-py'), s12.url('/after-attach-curl')], {
    env: { SSLKEYLOGFILE: userLog, NODE_OPTIONS: '' },
  });
  await prog.waitFor(/^started$/m);
  const before = lines(fs.readFileSync(userLog, 'latin1'));
  t.ok(before.length > 0, `the program logged keys before the attach (${before.length} lines)`);
  const out = path.join(dir, 'attach.pcapng');
  const copy = path.join(dir, 'attach-copy.keys');
  const r = await td(t, ['-w', out, '--keylog', copy, '-p', String(prog.pid), '--duration', '40'], []);
  const exit = await prog.exited;
  checkRun(t, r, 'attach');
  t.ok(r.elapsedMs < 35_000, `tracedump ended when the program exited (${r.elapsedMs} ms), not at --duration`);
  t.same(exit, { code: 0, signal: null }, `the program finished normally (${prog.err().slice(-300)})`);
  t.same(lines(prog.out()), ['200 hello /before-attach', 'started', '200 hello /after-attach-py', 'hello /after-attach-curl', 'done'], 'its requests were answered');
  t.notMatch(r.stderr, /cannot ask their TLS library/, 'no warning that keys cannot be had');
  const after = lines(fs.readFileSync(userLog, 'latin1')).slice(before.length);
  t.ok(after.length > 0, `it logged keys after the attach (${after.length} lines)`);
  const keyLines = checkDecrypts(t, { file: out, run: r, paths: ['/after-attach-py', '/after-attach-curl'], keylog: copy, what: 'attach' });
  t.same(sorted(keyLines), sorted(after), 'the file holds the lines logged after the attach');
  t.same(keyLines.filter((l) => before.includes(l)), [], 'none of those from before it (read from the end)');
});

// ---- 8. known problems ----------------------------------------------------------------------

// A TLS 1.3 client that takes `delay` seconds to get to the server's first flight (a busy event
// loop, a GC pause, a loaded machine): it reads the bytes at once but hands them to its TLS
// library (a MemoryBIO) only later, so its handshake keys are logged `delay` s after the packets
// they decrypt arrived.
const SLOW_PY = String.raw`
import socket, ssl, sys, time
port, delay, path = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ctx.wrap_bio(inc, out, server_hostname='127.0.0.1')
s = socket.create_connection(('127.0.0.1', port), timeout=20)
first = True
while True:
    try:
        tls.do_handshake()
        break
    except ssl.SSLWantReadError:
        pass
    if out.pending:
        s.sendall(out.read())
    got = s.recv(65536)
    if not got:
        sys.exit('closed during the handshake')
    if first:
        time.sleep(delay)
        first = False
    inc.write(got)
if out.pending:
    s.sendall(out.read())
tls.write(('GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' % path).encode())
s.sendall(out.read())
resp = b''
while True:
    got = s.recv(65536)
    if not got:
        break
    inc.write(got)
    try:
        while True:
            b = tls.read()
            if not b:
                break
            resp += b
    except (ssl.SSLWantReadError, ssl.SSLZeroReturnError, ssl.SSLEOFError):
        pass
print(resp.split(b'\r\n')[0].decode(), flush=True)
`;

t.test(
  'a TLS 1.3 client that handles the server hello 1 s late still decrypts in one pass',
  async (t) => {
    const s = servers['1.3'];
    const script = path.join(dir, 'slow.py');
    fs.writeFileSync(script, SLOW_PY);
    const out = path.join(dir, 'slow.pcapng');
    const keylog = path.join(dir, 'slow.keys');
    const r = await td(t, ['-w', out, '--keylog', keylog], [PY, script, String(s.port), '1', '/slow']);
    checkRun(t, r, 'slow client');
    t.equal(r.stdout.trim(), 'HTTP/1.1 200 OK', 'the slow client got its answer');
    // the keys themselves are right: tshark decrypts with them given as a preference
    const withPref = tshark(out, ['-o', `tls.keylog_file:${keylog}`]);
    t.same(withPref.uris, ['/slow'], 'with the --keylog file as a preference tshark decrypts it');
    const ts = tshark(out);
    t.same(ts.uris, ['/slow'], 'from the file alone, one pass: the request decrypts');
    t.equal(ts.encryptedExtensions, 1, "from the file alone, one pass: the server's handshake decrypts");
  },
);

t.test(
  "a user's NODE_OPTIONS with a quoted --tls-keylog is kept: node writes its keys there",
  async (t) => {
    const s = servers['1.3'];
    const nodeScript = path.join(dir, 'client.js');
    fs.writeFileSync(nodeScript, NODE_CLIENT);
    const userLog = path.join(dir, 'quoted node keys.log');
    const out = path.join(dir, 'quoted.pcapng');
    const r = await td(t, ['-w', out], [process.execPath, nodeScript, s.url('/quoted')], { env: { NODE_OPTIONS: `"--tls-keylog=${userLog}"` } });
    checkRun(t, r, 'quoted --tls-keylog');
    privateLog(r.stdout);
    t.match(r.stdout, /200 hello \/quoted/, 'node got its answer');
    t.equal(/^NODE_OPTIONS=(.*)$/m.exec(r.stdout)?.[1], `"--tls-keylog=${userLog}"`, "the user's NODE_OPTIONS is kept as it was");
    t.ok(fs.existsSync(userLog) && lines(fs.readFileSync(userLog, 'latin1')).length > 0, "node wrote its keys to the user's file");
    t.same(tshark(out).uris, ['/quoted'], 'the capture decrypts');
  },
);

t.test(
  '--keylog naming the SSLKEYLOGFILE the user set: its earlier lines are kept, no line is doubled',
  async (t) => {
    const s = servers['1.3'];
    const userLog = path.join(dir, 'same.keys');
    const old = `CLIENT_RANDOM ${'33'.repeat(32)} ${'44'.repeat(48)}`;
    fs.writeFileSync(userLog, old + '\n');
    const out = path.join(dir, 'same.pcapng');
    const r = await td(t, ['-w', out, '--keylog', userLog], ['curl', '-sk', s.url('/same')], { env: { SSLKEYLOGFILE: userLog } });
    checkRun(t, r, '--keylog = SSLKEYLOGFILE');
    t.match(r.stdout, /hello \/same/, 'curl got its answer');
    const all = lines(fs.readFileSync(userLog, 'latin1'));
    t.equal(all[0], old, "the user's earlier key line is still there");
    t.equal(new Set(all).size, all.length, `no line twice (${all.length} lines)`);
    t.same(tshark(out).uris, ['/same'], 'the capture decrypts');
  },
);

t.test('no private key directory is left behind', async (t) => {
  await sleep(200);
  t.ok(seenKeyDirs.size >= 5, `the commands named their private key logs (${seenKeyDirs.size} seen)`);
  t.same([...seenKeyDirs].filter((d) => fs.existsSync(d)), [], 'none of the tracedump-tls-* directories the commands were given is left');
});

noLeftovers(t);
