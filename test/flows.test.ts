// `tracedump flows` on a capture of real programs, against tshark on the same file:
//  - curl fetching two HTTPS URLs by name (SNI), a Node TLS client offering h2 and http/1.1
//    (ALPN), a Python client that asks a DNS server (on an unconnected UDP socket) and then
//    connects to the address of the answer, through a CNAME (the server name comes from the
//    program's own answer), DNS-like exchanges on an unconnected UDP socket, and a TCP
//    connection of a few milliseconds;
//  - per conversation, packets and bytes each way equal `tshark -q -z conv,tcp -z conv,udp`;
//    community_id equals tshark's communityid; SNI and ALPN equal the ClientHello's fields as
//    tshark dissects them; the DNS names equal the answers tshark shows;
//  - every flow carries the process that made it (the programs say their pid and ports),
//    the unconnected UDP socket and the 5 ms connection included.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { FLOWS, PY, captureScenario, noLeftovers, startBg } from './helpers/capture';
import { CLI } from './helpers/tracedump';

const FAKE_DNS = `
import socket, struct, sys
# answers every A query for api.flows.test with a CNAME to edge.cdn.test and A 127.0.0.7
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.153', 53))  # DNS's port: where resolvers are
print('ready', s.getsockname()[1], flush=True)
def name(n): return b''.join(bytes([len(l)]) + l.encode() for l in n.split('.')) + b'\\0'
while True:
    q, peer = s.recvfrom(512)
    qid = q[:2]; question = q[12:]
    edge = name('edge.cdn.test')
    cname = b'\\xc0\\x0c' + struct.pack('!HHIH', 5, 1, 60, len(edge)) + edge
    a = b'\\xc0' + bytes([12 + len(question) + 12]) + struct.pack('!HHIH', 1, 1, 60, 4) + bytes([127, 0, 0, 7])
    s.sendto(qid + b'\\x81\\x80\\x00\\x01\\x00\\x02\\x00\\x00\\x00\\x00' + question + cname + a, peer)
`;

const DNS_THEN_CONNECT = `
import json, os, socket, struct, sys
dns_port, tcp_port = int(sys.argv[1]), int(sys.argv[2])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
q = b'\\xab\\xcd\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00' + b'\\x03api\\x05flows\\x04test\\x00' + b'\\x00\\x01\\x00\\x01'
u.sendto(q, ('127.0.0.153', dns_port))
answer, _ = u.recvfrom(512)
addr = '.'.join(str(b) for b in answer[-4:])
c = socket.create_connection((addr, tcp_port)); c.sendall(b'hello\\r\\n\\r\\n'); c.recv(100)  # not HTTP: no Host
print('CONN ' + json.dumps({'pid': os.getpid(), 'udp': u.getsockname()[1], 'tcp': c.getsockname()[1], 'addr': addr}), flush=True)
c.close(); u.close()
# a connection of a few milliseconds
s = socket.create_connection(('127.0.0.1', tcp_port)); s.sendall(b'x\\r\\n\\r\\n')
while s.recv(100): pass  # to the server's close: a normal end
p = s.getsockname()[1]; s.close()
print('SHORT ' + json.dumps({'pid': os.getpid(), 'tcp': p}), flush=True)
`;

const TLS_CLIENT = `
const tls = require('tls');
const port = Number(process.argv[2]);
const s = tls.connect({ host: '127.0.0.1', port, servername: 'node.flows.test', ALPNProtocols: ['h2', 'http/1.1'], rejectUnauthorized: false }, () => {
  console.log('NODE ' + JSON.stringify({ pid: process.pid, tcp: s.localPort, alpn: s.alpnProtocol }));
  s.end('GET /node HTTP/1.1\\r\\nHost: node.flows.test\\r\\nConnection: close\\r\\n\\r\\n');
});
s.on('data', () => {});
s.on('error', (e) => { console.error(e.message); process.exit(3); });
`;

const HTTPS_SERVER = `
const https = require('https'); const fs = require('fs');
const [cert, key] = process.argv.slice(2);
const srv = https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key), ALPNProtocols: ['http/1.1'] }, (req, res) => res.end('hello ' + req.url + '\\n'));
srv.listen(0, '127.0.0.1', () => console.log('ready ' + srv.address().port));
`;

interface Row {
  [k: string]: unknown;
}

function tshark(args: string[]): string {
  const r = spawnSync('tshark', args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`tshark ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** tshark's conversations: "A <-> B": frames and bytes B to A, then A to B. */
function conversations(file: string): Map<string, { ab: [number, number]; ba: [number, number] }> {
  const out = new Map<string, { ab: [number, number]; ba: [number, number] }>();
  const text = tshark(['-r', file, '-q', '-z', 'conv,tcp', '-z', 'conv,udp']);
  let proto = '';
  for (const line of text.split('\n')) {
    if (/^(TCP|UDP) Conversations/.test(line)) proto = line.slice(0, 3).toLowerCase();
    const m = /^(\S+):(\d+)\s+<->\s+(\S+):(\d+)\s+(\d+)\s+(\d+) bytes\s+(\d+)\s+(\d+) bytes/.exec(line);
    if (!m) {
      if (/<->/.test(line)) throw new Error(`a conversation line not in bytes: ${line}`);
      continue;
    }
    out.set(`${proto} ${m[1]}:${m[2]} ${m[3]}:${m[4]}`, { ba: [+m[5], +m[6]], ab: [+m[7], +m[8]] });
  }
  return out;
}

t.test('real programs: flows equal tshark, with server names and processes', async (t) => {
  let cert = '';
  let key = '';
  const sc = await captureScenario(t, {
    file: 'out.pcapng',
    servers: [
      ['serve-tcp', '0.0.0.0', 0], // the plain TCP/HTTP server (127.0.0.7 included)
      ['serve-udp', '127.0.0.1', 0], // the echo of the DNS-like exchanges
    ],
    startServers: async (dir) => {
      cert = path.join(dir, 'cert.pem');
      key = path.join(dir, 'key.pem');
      const gen = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-keyout', key, '-out', cert, '-subj', '/CN=flows.test'], {
        encoding: 'utf8',
      });
      if (gen.status !== 0) throw new Error(`openssl req: ${gen.stderr}`);
      fs.writeFileSync(path.join(dir, 'https-server.js'), HTTPS_SERVER);
      fs.writeFileSync(path.join(dir, 'fake-dns.py'), FAKE_DNS);
      fs.writeFileSync(path.join(dir, 'dns-then-connect.py'), DNS_THEN_CONNECT);
      fs.writeFileSync(path.join(dir, 'tls-client.js'), TLS_CLIENT);
      const https = startBg(t, [process.execPath, path.join(dir, 'https-server.js'), cert, key], { env: { NODE_OPTIONS: '' } });
      const dns = startBg(t, [PY, path.join(dir, 'fake-dns.py')]);
      return [Number((await https.waitFor(/^ready (\d+)$/m))[1]), Number((await dns.waitFor(/^ready (\d+)$/m))[1])];
    },
    command: ([tcp, udp, https, dns], dir) => [
      'sh',
      '-c',
      [
        `curl -sk --resolve secure.flows.test:${https}:127.0.0.1 https://secure.flows.test:${https}/one https://secure.flows.test:${https}/two`,
        `NODE_OPTIONS= ${process.execPath} ${path.join(dir, 'tls-client.js')} ${https}`,
        `${PY} ${path.join(dir, 'dns-then-connect.py')} ${dns} ${tcp}`,
        `${PY} ${FLOWS} udp-query 127.0.0.1 ${udp} 5 long`,
      ].join(' && '),
    ],
    timeoutMs: 60_000,
  });
  const { run, out } = sc;
  t.equal(run.status, 0, `the programs succeeded (${run.stderr.slice(-400)})`);
  t.match(run.stdout, /hello \/one\s+hello \/two/, 'curl fetched both URLs');

  const fl = spawnSync(CLI, ['flows', '--json', out], { encoding: 'utf8' });
  t.equal(fl.status, 0, `tracedump flows exits 0 (${fl.stderr})`);
  const rows: Row[] = fl.stdout
    .split('\n')
    .filter((l) => l)
    .map((l) => JSON.parse(l));
  t.equal(rows.length, 6, 'six flows: curl, node, the DNS query, the connection to its answer, the short one, the UDP exchanges');

  // 1. packets and bytes per conversation, as tshark counts them (frames: IP + the 20-byte SLL2 header)
  const conv = conversations(out);
  const flowsTcpUdp = rows.filter((r) => r.proto === 'tcp' || r.proto === 'udp');
  t.equal(flowsTcpUdp.length, conv.size, `as many TCP/UDP flows as tshark has conversations (${conv.size})`);
  for (const r of flowsTcpUdp) {
    const a = `${r['id.orig_h']}:${r['id.orig_p']}`;
    const b = `${r['id.resp_h']}:${r['id.resp_p']}`;
    const c = conv.get(`${r.proto} ${a} ${b}`) ?? conv.get(`${r.proto} ${b} ${a}`);
    const forward = conv.has(`${r.proto} ${a} ${b}`);
    const origTo = c ? (forward ? c.ab : c.ba) : undefined;
    const respTo = c ? (forward ? c.ba : c.ab) : undefined;
    const ours = [
      [r.orig_pkts, (r.orig_ip_bytes as number) + 20 * (r.orig_pkts as number)],
      [r.resp_pkts, (r.resp_ip_bytes as number) + 20 * (r.resp_pkts as number)],
    ];
    t.same(ours, [origTo, respTo], `${r.proto} ${a} > ${b}: packets and bytes each way as tshark's conversation`);
  }

  // 2. Community ID, per TCP and UDP stream
  const cids = new Set(
    tshark(['-r', out, '--enable-protocol', 'communityid', '-T', 'fields', '-e', 'communityid'])
      .split('\n')
      .filter((l) => l),
  );
  const ours = new Set(rows.map((r) => r.community_id as string));
  t.same([...ours].filter((c) => !cids.has(c)), [], `every flow's community_id is one tshark computes (${cids.size} in the file)`);

  // 3. SNI and ALPN as tshark dissects the ClientHellos
  const hellos = tshark(['-r', out, '-Y', 'tls.handshake.type == 1', '-T', 'fields', '-E', 'separator=|', '-e', 'tcp.srcport', '-e', 'tls.handshake.extensions_server_name', '-e', 'tls.handshake.extensions_alpn_str'])
    .split('\n')
    .filter((l) => l)
    .map((l) => l.split('|'));
  t.equal(hellos.length, 2, 'two ClientHellos (curl, node)');
  for (const [port, sni, alpn] of hellos) {
    const r = rows.find((x) => x.proto === 'tcp' && x['id.orig_p'] === Number(port));
    t.same(
      [r?.server_name, r?.server_name_source, ((r?.alpn as string[] | undefined) ?? []).join(',')],
      [sni, 'sni', alpn],
      `port ${port}: server_name and alpn as the ClientHello says (${sni}, ${alpn})`,
    );
    t.equal(r?.service, 'ssl', 'service ssl');
    t.equal(r?.tls_version, 'TLSv13', 'TLS 1.3 (from the ServerHello)');
  }
  t.ok(
    rows.some((r) => r.server_name === 'secure.flows.test') && rows.some((r) => r.server_name === 'node.flows.test'),
    'curl and node named their servers',
  );

  // 4. the DNS answer names the next connection, through its CNAME
  const dnsAnswers = tshark(['-r', out, '-Y', 'dns.flags.response == 1', '-T', 'fields', '-e', 'dns.qry.name', '-e', 'dns.cname', '-e', 'dns.a']).trim();
  t.equal(dnsAnswers, 'api.flows.test\tedge.cdn.test\t127.0.0.7', 'tshark reads the answer');
  const conn = JSON.parse(/^CONN (.*)$/m.exec(run.stdout)?.[1] ?? '{}');
  const toAnswer = rows.find((r) => r.proto === 'tcp' && r['id.orig_p'] === conn.tcp);
  t.same(
    [toAnswer?.['id.resp_h'], toAnswer?.server_name, toAnswer?.server_name_source, toAnswer?.dns_chain],
    ['127.0.0.7', 'api.flows.test', 'dns', ['api.flows.test', 'edge.cdn.test']],
    "the connection to the answer's address is named by the program's own DNS answer",
  );
  const query = rows.find((r) => r.proto === 'udp' && r['id.orig_p'] === conn.udp);
  t.same([query?.service, query?.conn_state], ['dns', 'SF'], 'the DNS exchange is a dns flow');

  // 5. the process of every flow, the unconnected UDP socket and the 5 ms connection included
  t.same(
    rows.filter((r) => typeof r.pid !== 'number').map((r) => `${r.proto} ${r['id.orig_p']}`),
    [],
    'every flow has a pid',
  );
  t.equal(toAnswer?.pid, conn.pid, 'the connection to the answer: the Python client');
  t.equal(query?.pid, conn.pid, 'its DNS query on an unconnected UDP socket: the same process');
  const short = JSON.parse(/^SHORT (.*)$/m.exec(run.stdout)?.[1] ?? '{}');
  const shortFlow = rows.find((r) => r.proto === 'tcp' && r['id.orig_p'] === short.tcp);
  t.ok(shortFlow && (shortFlow.duration as number) < 0.05, `the short connection lasted ${shortFlow?.duration} s`);
  t.same([shortFlow?.pid, shortFlow?.comm, shortFlow?.conn_state], [short.pid, 'python3', 'SF'], 'and has its process');
  const node = JSON.parse(/^NODE (.*)$/m.exec(run.stdout)?.[1] ?? '{}');
  t.equal(rows.find((r) => r['id.orig_p'] === node.tcp)?.pid, node.pid, "the node client's flow has its pid");
  const long = sc.traced.filter((r) => r.proto === 'udp');
  t.equal(long.length, 1, 'one unconnected UDP socket for the 5 exchanges');
  const udpFlow = rows.find((r) => r.proto === 'udp' && r['id.orig_p'] === long[0]?.local.port);
  t.same([udpFlow?.pid, udpFlow?.orig_pkts, udpFlow?.resp_pkts], [long[0]?.pid, 5, 5], 'its flow: 5 queries, 5 answers, its pid');
  t.equal(udpFlow?.app_dir, 'orig', 'the program originated it');
});

noLeftovers(t);
