// The flow layer's parsers against published vectors: Community ID v1 (the spec's baseline and
// pycommunityid's tests), the QUIC v1 and v2 client Initials of RFC 9001 / RFC 9369 Appendix A
// (decrypted, their ClientHello read; tshark decrypts the same packets), DNS answers with
// compressed CNAME chains, and a TLS ClientHello split across records.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { communityId } from '../src/flows/community-id';
import { addressBytes } from '../src/packet/address';
import { cnameChain, parseDns } from '../src/packet/dns';
import { httpRequestHead } from '../src/packet/http';
import { clientInitialKeys, cryptoStreamPrefix, openClientInitial } from '../src/packet/quic';
import { clientHelloOfStream, parseClientHello } from '../src/packet/tls';
import { udpPacket, writeCraftedPcap } from './helpers/craft-pcap';
import { CLI } from './helpers/tracedump';

const FIXTURES = path.join(__dirname, 'fixtures');

t.test('Community ID v1: the published vectors', async (t) => {
  const { vectors } = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'community-id-vectors.json'), 'utf8')) as {
    vectors: { case: string; proto: number; src: string; dst: string; sport: number | null; dport: number | null; seed0: string; seed1: string }[];
  };
  t.ok(vectors.length >= 30, `${vectors.length} vectors`);
  for (const v of vectors) {
    const a = addressBytes(v.src).bytes;
    const b = addressBytes(v.dst).bytes;
    const sport = v.sport ?? 0;
    const dport = v.dport ?? 0;
    t.equal(communityId(v.proto, a, b, sport, dport), v.seed0, `${v.case}: ${v.src} ${v.sport ?? '-'} > ${v.dst} ${v.dport ?? '-'} (seed 0)`);
    t.equal(communityId(v.proto, a, b, sport, dport, 1), v.seed1, `${v.case} (seed 1)`);
  }
});

const hex = (name: string) => Buffer.from(fs.readFileSync(path.join(FIXTURES, name), 'utf8').trim(), 'hex');

t.test('QUIC Initial keys of RFC 9001 A.1 and RFC 9369 A.1', async (t) => {
  const dcid = Buffer.from('8394c8f03e515708', 'hex');
  const v1 = clientInitialKeys(1, dcid);
  t.same(
    [v1?.key.toString('hex'), v1?.iv.toString('hex'), v1?.hp.toString('hex')],
    ['1f369613dd76d5467730efcbe3b1a22d', 'fa044b2f42a3fd3b46fb255c', '9f50449e04a0e810283a1e9933adedd2'],
    'v1 client key, iv, hp',
  );
  const v2 = clientInitialKeys(0x6b3343cf, dcid);
  t.same(
    [v2?.key.toString('hex'), v2?.iv.toString('hex'), v2?.hp.toString('hex')],
    ['8b1a0bc121284290a29e0971b5cd045d', '91f73e2351d8fa91660e909f', '45b95e15235d6f45a6b19cbcb0294ba9'],
    'v2 client key, iv, hp',
  );
});

for (const [version, file] of [
  ['v1', 'quic-v1-client-initial.hex'],
  ['v2', 'quic-v2-client-initial.hex'],
] as const) {
  t.test(`QUIC ${version}: the RFC's protected client Initial, opened; its ClientHello read`, async (t) => {
    const packet = hex(file);
    t.equal(packet.length, 1200, 'the 1200-byte datagram');
    const initial = openClientInitial(packet);
    t.ok(initial, 'decrypted (header protection removed, AEAD tag verified)');
    const stream = cryptoStreamPrefix(initial?.crypto ?? []);
    t.equal(stream.length, 241, 'one CRYPTO frame of 241 bytes');
    const hello = parseClientHello(stream);
    t.same(hello, { sni: 'example.com', alpn: ['alpn'], version: 0x0304 }, 'SNI example.com, ALPN "alpn", TLS 1.3');
    const broken = Buffer.from(packet);
    broken[600] ^= 1;
    t.equal(openClientInitial(broken), undefined, 'one bit changed: the AEAD refuses it');

    // the same datagram in a capture: tracedump flows and tshark both read example.com
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tracedump-quic-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const pcap = path.join(dir, `quic-${version}.pcap`);
    writeCraftedPcap(pcap, [udpPacket(0, ['192.0.2.1', 51000], ['192.0.2.2', 443], packet)]);
    const flows = spawnSync(CLI, ['flows', '--json', pcap], { encoding: 'utf8' });
    const rec = JSON.parse(flows.stdout.split('\n')[0] || '{}');
    t.same(
      [rec.service, rec.server_name, rec.server_name_source, rec.alpn, rec.tls_version],
      ['quic,ssl', 'example.com', 'quic-sni', ['alpn'], 'TLSv13'],
      `tracedump flows (${flows.stderr})`,
    );
    const ts = spawnSync('tshark', ['-r', pcap, '-T', 'fields', '-e', 'tls.handshake.extensions_server_name', '-e', 'quic.version'], { encoding: 'utf8' });
    t.match(ts.stdout, /^example\.com\t/, `tshark decrypts the same Initial (${ts.stdout.trim()} ${ts.stderr.trim()})`);
  });
}

/** A DNS response: www.example.test -> CNAME cdn.example.net (compressed) -> A 192.0.2.7, 192.0.2.8. */
function dnsAnswer(): Buffer {
  const name = (labels: string[]) => Buffer.concat([...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);
  const head = Buffer.from([0x12, 0x34, 0x81, 0x80, 0, 1, 0, 3, 0, 0, 0, 0]);
  const question = Buffer.concat([name(['www', 'example', 'test']), Buffer.from([0, 1, 0, 1])]);
  const rr = (owner: Buffer, type: number, data: Buffer) => {
    const fixed = Buffer.alloc(10);
    fixed.writeUInt16BE(type, 0);
    fixed.writeUInt16BE(1, 2);
    fixed.writeUInt32BE(60, 4);
    fixed.writeUInt16BE(data.length, 8);
    return Buffer.concat([owner, fixed, data]);
  };
  const toQuestion = Buffer.from([0xc0, 12]);
  // the CNAME target "cdn.example.net" spelt "cdn" + "example" (pointer into the question) is not
  // possible (.test there); write it whole, then point the A records at it
  const cnameAt = 12 + question.length + 2 + 10;
  const cname = name(['cdn', 'example', 'net']);
  const toCname = Buffer.from([0xc0, cnameAt]);
  return Buffer.concat([
    head,
    question,
    rr(toQuestion, 5, cname),
    rr(toCname, 1, Buffer.from([192, 0, 2, 7])),
    rr(toCname, 1, Buffer.from([192, 0, 2, 8])),
  ]);
}

t.test('DNS: answers through a compressed CNAME chain', async (t) => {
  const msg = parseDns(dnsAnswer());
  t.ok(msg?.response, 'a response');
  t.same(msg?.question, { name: 'www.example.test', type: 1 }, 'the question');
  t.same(
    msg?.answers.map((a) => [a.name, a.type, a.target ?? a.address?.join('.')]),
    [
      ['www.example.test', 5, 'cdn.example.net'],
      ['cdn.example.net', 1, '192.0.2.7'],
      ['cdn.example.net', 1, '192.0.2.8'],
    ],
    'the CNAME and both addresses, owner names decompressed',
  );
  t.same(msg && cnameChain(msg), ['www.example.test', 'cdn.example.net'], 'the chain');
  const loop = dnsAnswer();
  loop.writeUInt16BE(0xc000 | 12 + 34, 12 + 22); // a pointer at itself
  t.doesNotThrow(() => parseDns(loop), 'a pointer loop is bounded');
});

t.test('TLS: a ClientHello cut across two records and two reads', async (t) => {
  const body = Buffer.from(
    // ClientHello with SNI "split.example" and ALPN h2, http/1.1
    '0303' + '00'.repeat(32) + '00' + '0002' + '1301' + '0100' +
      '0028' + // extensions length 40
      '0000' + '0012' + '0010' + '00' + '000d' + Buffer.from('split.example').toString('hex') +
      '0010' + '000e' + '000c' + '02' + Buffer.from('h2').toString('hex') + '08' + Buffer.from('http/1.1').toString('hex'),
    'hex',
  );
  const msg = Buffer.concat([Buffer.from([1, 0, 0, body.length]), body]);
  const rec = (b: Buffer) => Buffer.concat([Buffer.from([22, 3, 1, b.length >> 8, b.length & 0xff]), b]);
  const stream = Buffer.concat([rec(msg.subarray(0, 30)), rec(msg.subarray(30))]);
  t.same(clientHelloOfStream(stream.subarray(0, 40)), { done: false }, 'not done on the first part');
  const r = clientHelloOfStream(stream);
  t.same(r.done && r.value, { sni: 'split.example', alpn: ['h2', 'http/1.1'], version: 0x0303 }, 'read once whole');
  t.same(clientHelloOfStream(Buffer.from('SSH-2.0-OpenSSH\r\n')), { done: true, value: undefined }, 'not TLS: done, nothing');
});

t.test('HTTP: the request head and its Host', async (t) => {
  const r = httpRequestHead(Buffer.from('GET /a HTTP/1.1\r\nUser-Agent: x\r\nHost: Example.ORG:8080\r\n\r\n'));
  t.same(r.done && r.value, { method: 'GET', target: '/a', version: 'HTTP/1.1', host: 'example.org' }, 'host without the port, lowercase');
  t.same(httpRequestHead(Buffer.from('GET /a HTTP/1.1\r\nHo')), { done: false }, 'waits for the rest of the head');
  t.same(httpRequestHead(Buffer.from('\x16\x03\x01')), { done: true, value: undefined }, 'not HTTP');
});
