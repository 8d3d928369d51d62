// `tracedump objects` on captures of real clients of a local server whose objects have known
// sizes, types and encodings:
//  - curl over HTTP/2 and HTTP/1.1 in TLS, curl over plain HTTP/1.1, Python's urllib over
//    HTTPS and Node's http2 client: every object with its method, path, status, content type,
//    encoding, body size on the wire (the server's own) and decoded, and its process; each
//    object's uid and community_id are its flow's in `tracedump flows`;
//  - a DNS question and its answer (query, answers, CNAME chain, latency);
//  - the same fetch without keys (--no-tls-keys): one opaque TLS object, whose record sizes sum
//    per direction to tshark's TLS application-data bytes of the connection;
//  - without tshark, `objects` fails at once and names the package.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import t from 'tap';
import { PY, captureScenario, noLeftovers, startBg } from './helpers/capture';
import { CLI, ROOT } from './helpers/tracedump';

// /obj/<bytes>/<type>[/gzip]: a body of <bytes> 'a's, gzip-encoded when asked (the same bytes
// as zlib.gzipSync here: the test knows the size on the wire)
const SERVER = `
const http2 = require('http2'); const http = require('http'); const fs = require('fs'); const zlib = require('zlib');
const TYPES = { html: 'text/html', json: 'application/json', png: 'image/png', js: 'application/javascript', bin: 'application/octet-stream' };
const handler = (req, res) => {
  const m = /^\\/obj\\/(\\d+)\\/([a-z]+)(\\/gzip)?$/.exec(req.url || '');
  if (!m) { res.writeHead(404, { 'content-type': 'text/plain' }); res.end('no'); return; }
  let body = Buffer.alloc(Number(m[1]), 'a');
  const h = { 'content-type': TYPES[m[2]] };
  if (m[3]) { body = zlib.gzipSync(body); h['content-encoding'] = 'gzip'; }
  h['content-length'] = body.length;
  res.writeHead(200, h); res.end(body);
};
const [cert, key] = process.argv.slice(2);
const tlsServer = http2.createSecureServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key), allowHTTP1: true }, handler);
const plain = http.createServer(handler);
tlsServer.listen(0, '127.0.0.1', () => plain.listen(0, '127.0.0.1', () => console.log('ready ' + tlsServer.address().port + ' ' + plain.address().port)));
`;

const FAKE_DNS = `
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.153', 53))
print('ready', s.getsockname()[1], flush=True)
def name(n): return b''.join(bytes([len(l)]) + l.encode() for l in n.split('.')) + b'\\0'
while True:
    q, peer = s.recvfrom(512)
    question = q[12:]
    edge = name('edge.cdn.test')
    cname = b'\\xc0\\x0c' + struct.pack('!HHIH', 5, 1, 60, len(edge)) + edge
    a = b'\\xc0' + bytes([12 + len(question) + 12]) + struct.pack('!HHIH', 1, 1, 60, 4) + bytes([127, 0, 0, 7])
    s.sendto(q[:2] + b'\\x81\\x80\\x00\\x01\\x00\\x02\\x00\\x00\\x00\\x00' + question + cname + a, peer)
`;

const DNS_QUERY = `
import socket, sys
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(b'\\xab\\xcd\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x03api\\x07objects\\x04test\\x00\\x00\\x01\\x00\\x01', ('127.0.0.153', int(sys.argv[1])))
u.recvfrom(512)
`;

const PY_FETCH = `
import ssl, sys, urllib.request
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
body = urllib.request.urlopen(sys.argv[1], context=ctx).read()
print('python got', len(body), flush=True)
`;

const NODE_H2 = `
const http2 = require('http2');
const c = http2.connect(process.argv[2], { rejectUnauthorized: false });
const req = c.request({ ':path': process.argv[3] });
let n = 0;
req.on('data', (d) => (n += d.length));
req.on('end', () => { console.log('node got ' + n); c.close(); });
`;

interface Obj {
  [k: string]: unknown;
}

const lines = (text: string): Obj[] =>
  text
    .split('\n')
    .filter((l) => l)
    .map((l) => JSON.parse(l));

const gzipped = (n: number) => zlib.gzipSync(Buffer.alloc(n, 'a')).length;

async function startServers(t: Parameters<typeof captureScenario>[0], dir: string): Promise<number[]> {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  const gen = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-keyout', key, '-out', cert, '-subj', '/CN=objects.test'], { encoding: 'utf8' });
  if (gen.status !== 0) throw new Error(`openssl req: ${gen.stderr}`);
  for (const [name, text] of [
    ['server.js', SERVER],
    ['fake-dns.py', FAKE_DNS],
    ['dns-query.py', DNS_QUERY],
    ['fetch.py', PY_FETCH],
    ['h2.js', NODE_H2],
  ])
    fs.writeFileSync(path.join(dir, name), text);
  const server = startBg(t, [process.execPath, path.join(dir, 'server.js'), cert, key], { env: { NODE_OPTIONS: '' } });
  const dns = startBg(t, [PY, path.join(dir, 'fake-dns.py')]);
  const [, tlsPort, plainPort] = await server.waitFor(/^ready (\d+) (\d+)$/m);
  return [Number(tlsPort), Number(plainPort), Number((await dns.waitFor(/^ready (\d+)$/m))[1])];
}

t.test('HTTP/2, HTTP/1.1, plain HTTP and DNS: every object with its sizes, type and process', async (t) => {
  const sc = await captureScenario(t, {
    file: 'out.pcapng',
    startServers: (dir) => startServers(t, dir),
    command: ([tls, plain, dns], dir) => [
      'sh',
      '-c',
      [
        `curl -sk --http2 -o /dev/null -o /dev/null -o /dev/null https://127.0.0.1:${tls}/obj/1000/html https://127.0.0.1:${tls}/obj/20000/json/gzip https://127.0.0.1:${tls}/nope`,
        `curl -sk --http1.1 -o /dev/null https://127.0.0.1:${tls}/obj/3000/png`,
        `curl -s -o /dev/null -o /dev/null http://127.0.0.1:${plain}/obj/500/js http://127.0.0.1:${plain}/obj/70000/bin/gzip`,
        `${PY} ${path.join(dir, 'fetch.py')} https://127.0.0.1:${tls}/obj/4096/bin`,
        // (tap's NODE_OPTIONS left out, tracedump's key log kept: it names the file SSLKEYLOGFILE names)
        `NODE_OPTIONS=--tls-keylog=$SSLKEYLOGFILE ${process.execPath} ${path.join(dir, 'h2.js')} https://127.0.0.1:${tls} /obj/200000/json`,
        `${PY} ${path.join(dir, 'dns-query.py')} ${dns}`,
      ].join(' && '),
    ],
    timeoutMs: 60_000,
  });
  t.equal(sc.run.status, 0, `the clients succeeded (${sc.run.stderr.slice(-400)})`);
  t.match(sc.run.stdout, /python got 4096/, 'python fetched its object');
  t.match(sc.run.stdout, /node got 200000/, 'node fetched its object');

  const r = spawnSync(CLI, ['objects', '--json', sc.out], { encoding: 'utf8' });
  t.equal(r.status, 0, `tracedump objects exits 0 (${r.stderr})`);
  const objects = lines(r.stdout);
  const http = objects.filter((o) => o.kind === 'http');
  const expected: Array<[string, string, string, number, string | undefined, number, number, string]> = [
    // path, version, scheme, status, type, wire, decoded, comm
    ['/obj/1000/html', '2', 'https', 200, 'text/html', 1000, 1000, 'curl'],
    ['/obj/20000/json/gzip', '2', 'https', 200, 'application/json', gzipped(20000), 20000, 'curl'],
    ['/nope', '2', 'https', 404, 'text/plain', 2, 2, 'curl'],
    ['/obj/3000/png', '1.1', 'https', 200, 'image/png', 3000, 3000, 'curl'],
    ['/obj/500/js', '1.1', 'http', 200, 'application/javascript', 500, 500, 'curl'],
    ['/obj/70000/bin/gzip', '1.1', 'http', 200, 'application/octet-stream', gzipped(70000), 70000, 'curl'],
    ['/obj/4096/bin', '1.1', 'https', 200, 'application/octet-stream', 4096, 4096, 'python3'],
    ['/obj/200000/json', '2', 'https', 200, 'application/json', 200000, 200000, 'node'],
  ];
  t.equal(http.length, expected.length, `${expected.length} HTTP objects`);
  for (const [p, version, scheme, status, type, wire, decoded, comm] of expected) {
    const o = http.find((x) => x.path === p);
    t.same(
      [o?.method, o?.version, o?.scheme, o?.status, o?.resp_content_type, o?.resp_body_bytes, o?.resp_body_decoded_bytes, o?.comm, o?.complete],
      ['GET', version, scheme, status, type, wire, decoded, comm, 'yes'],
      `${p}: HTTP/${version} ${status} ${type}, ${wire} bytes on the wire, ${decoded} decoded, from ${comm}`,
    );
    t.ok(typeof o?.pid === 'number' && (o.ts as number) <= (o.resp_first_ts as number) && (o.resp_first_ts as number) <= (o.resp_last_ts as number), `${p}: a pid, and request <= first byte <= last byte`);
  }
  t.equal(http.find((x) => x.path === '/obj/20000/json/gzip')?.resp_content_encoding, 'gzip', 'the encoding is said');

  // each object's uid and community_id are its flow's
  const fl = spawnSync(CLI, ['flows', '--json', sc.out], { encoding: 'utf8' });
  t.equal(fl.status, 0, 'tracedump flows exits 0');
  const flows = new Map(lines(fl.stdout).map((f) => [f.uid as string, f]));
  for (const o of objects) {
    const f = flows.get(o.uid as string);
    t.same([f?.community_id, f?.pid], [o.community_id, o.pid], `${o.kind} ${o.path ?? o.query}: the flow ${o.uid} with its community_id and pid`);
  }

  // the DNS question and its answer
  const dns = objects.filter((o) => o.kind === 'dns');
  t.equal(dns.length, 1, 'one DNS question');
  t.same(
    [dns[0]?.query, dns[0]?.qtype, dns[0]?.rcode, dns[0]?.answers, dns[0]?.dns_chain, dns[0]?.comm, dns[0]?.complete],
    ['api.objects.test', 'A', 'NOERROR', ['edge.cdn.test', '127.0.0.7'], ['api.objects.test', 'edge.cdn.test'], 'python3', 'yes'],
    'its name, type, answers, CNAME chain and process',
  );
  t.ok((dns[0]?.latency as number) >= 0 && (dns[0]?.latency as number) < 1, `its latency (${dns[0]?.latency} s)`);
  t.equal(objects.filter((o) => o.kind === 'tls').length, 0, 'no opaque TLS: every connection was decrypted');

  const table = spawnSync(CLI, ['objects', sc.out], { encoding: 'utf8' });
  t.match(table.stdout, /^TIME\s+PID\s+COMM\s+KIND\s+OBJECT/m, 'the table has its header');
  t.match(table.stdout, /http\/2\s+GET https:\/\/127\.0\.0\.1:\d+\/obj\/20000\/json\/gzip\s+200\s+application\/json/, 'and a line per object');
  const csv = spawnSync(CLI, ['objects', '--csv', sc.out], { encoding: 'utf8' });
  t.equal(csv.stdout.split('\n').filter((l) => l).length, objects.length + 1, 'CSV: a header and a line per object');
});

t.test('without keys: one opaque TLS object, its record sizes those tshark sees', async (t) => {
  const sc = await captureScenario(t, {
    file: 'out.pcapng',
    startServers: (dir) => startServers(t, dir),
    tdArgs: ['--no-tls-keys'],
    command: ([tls]) => ['curl', '-sk', '--http1.1', '-o', '/dev/null', `https://127.0.0.1:${tls}/obj/30000/bin`],
    timeoutMs: 60_000,
  });
  t.equal(sc.run.status, 0, 'curl succeeded');
  const r = spawnSync(CLI, ['objects', '--json', sc.out], { encoding: 'utf8' });
  t.equal(r.status, 0, `tracedump objects exits 0 (${r.stderr})`);
  const objects = lines(r.stdout);
  t.same(
    objects.map((o) => o.kind),
    ['tls'],
    'one object: the TLS connection',
  );
  const o = objects[0] ?? {};
  t.same([o.comm, o.alpn, o.complete], ['curl', ['http/1.1'], 'estimate'], 'curl, the ALPN it offered, said to be an estimate');
  // tshark's application-data records of the connection, per direction (each record's data in hex)
  const rows = spawnSync('tshark', ['-r', sc.out, '-Y', 'tls.app_data', '-T', 'fields', '-E', 'occurrence=a', '-E', 'aggregator=,', '-e', 'tcp.srcport', '-e', 'tls.app_data'], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  })
    .stdout.split('\n')
    .filter((l) => l)
    .map((l) => l.split('\t'));
  const serverPort = String(sc.ports[0]);
  const sums = { up: 0, down: 0 };
  for (const [port, records] of rows) for (const hex of records.split(',')) sums[port === serverPort ? 'down' : 'up'] += hex.replace(/:/g, '').length / 2;
  t.same([o.up_bytes, o.down_bytes], [sums.up, sums.down], `record bytes up and down equal tshark's (${sums.up}, ${sums.down})`);
  t.ok((o.down_bytes as number) > 30000, 'the body is in the records down');
});

t.test('without tshark: fails at once and names the package', async (t) => {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'dist', 'cli.js'), 'objects', '/dev/null'], { encoding: 'utf8', env: { PATH: '/nonexistent' } });
  t.equal(r.status, 2, 'exit status 2');
  t.match(r.stderr, /needs tshark.*\n.*apt-get install tshark/, 'says what to install');
});

noLeftovers(t);
