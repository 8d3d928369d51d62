// TLS keys in the file: the Decryption Secrets Block bytes, records held back and key blocks put
// ahead of every record not yet written (block order checked by walking the file), the key log
// tail (partial lines, a file that appears late or is truncated), and NODE_OPTIONS parsing.
import t from 'tap';
import { wellFormedBlocks } from './helpers/pcapng-blocks';
import { Environment } from '../src/environment';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { SllPacket } from '../src/output/pcap';
import { CaptureFile } from '../src/output/capture-file';
import { pcapngFormat } from '../src/output/pcapng-format';
import { pcapFormat } from '../src/output/pcap-format';
import { decryptionSecrets } from '../src/output/pcapng';
import { KeyLogTail } from '../src/tls/key-log-tail';
import { TlsKeyLog, nodeKeyLogOf } from '../src/tls/key-log';
import { ARPHRD_LOOPBACK, ETH_P_IP, PACKET_HOST, ip4, udp } from './helpers/unit-packets';

const OWNER = { pid: 1, tid: 1, comm: 'x', inode: 1 };
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tracedump-unit-keys-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

const KEY_A = 'CLIENT_RANDOM 00112233 44556677\n';
const KEY_B = 'SERVER_TRAFFIC_SECRET_0 aabbccdd eeff0011\n';

function packet(ms: number): SllPacket {
  const data = ip4('127.0.0.1', '127.0.0.2', 17, udp(1000, 2000, Buffer.from(`at ${ms}`)));
  return { sec: Math.floor(ms / 1000), nsec: (ms % 1000) * 1e6, len: data.length, ifindex: 1, protocol: ETH_P_IP, hatype: ARPHRD_LOOPBACK, pkttype: PACKET_HOST, data };
}

function format() {
  return pcapngFormat({ snaplen: 65535, section: { hardware: 'x86_64', os: 'Linux', userappl: 'unit', comments: ['unit'] }, interfaceName: () => 'lo', exeOf: () => undefined });
}

/** The blocks of a pcapng file: type, and the packet's ms (EPB) or the key log text (DSB). */
function blocks(file: string): string[] {
  return wellFormedBlocks(file).map(({ type, body }) => {
    if (type === 6) {
      const ns = (BigInt(body.readUInt32LE(4)) << 32n) | BigInt(body.readUInt32LE(8));
      return `EPB ${Number(ns / 1_000_000n)}`;
    }
    if (type === 10) return `DSB ${body.toString('latin1', 8, 8 + body.readUInt32LE(4)).trim()}`;
    return type === 0x0a0d0d0a ? 'SHB' : type === 1 ? 'IDB' : `type ${type}`;
  });
}

t.test('Decryption Secrets Block bytes', async (t) => {
  const b = decryptionSecrets(Buffer.from('AB\n'));
  t.same([...b], [0x0a, 0, 0, 0, 24, 0, 0, 0, 0x4b, 0x53, 0x4c, 0x54, 3, 0, 0, 0, 0x41, 0x42, 0x0a, 0, 24, 0, 0, 0], 'type 0xA, TLSK, length 3, padded to 4');
});

t.test('held records: keys go ahead of every record not yet written', async (t) => {
  const file = path.join(tmp, 'hold.pcapng');
  const pending: string[] = [];
  const f = CaptureFile.open(file, format(), { holdBack: true, secret: true, secrets: () => (pending.length ? Buffer.from(pending.splice(0).join('')) : undefined) });
  f.commit(); // as when the program has started
  t.equal(fs.statSync(file).mode & 0o777, 0o600, 'a file that holds keys is 0600');
  f.write(packet(1000), OWNER);
  f.write(packet(1100), OWNER);
  f.write(packet(1300), OWNER);
  f.flushSettled(1200); // 1000 and 1100 are settled
  pending.push(KEY_A); // logged after the 1300 packet arrived: must still precede it
  f.write(packet(1400), OWNER);
  f.flushSettled(1350);
  pending.push(KEY_B);
  f.close();
  t.same(blocks(file), ['SHB', 'IDB', 'EPB 1000', 'EPB 1100', 'DSB CLIENT_RANDOM 00112233 44556677', 'EPB 1300', 'DSB SERVER_TRAFFIC_SECRET_0 aabbccdd eeff0011', 'EPB 1400']);
  t.equal(f.packetsWritten, 4, 'every record counted once');
});

t.test('many held records grow the buffer, then are written in order', async (t) => {
  const file = path.join(tmp, 'grow.pcapng');
  let once = true;
  const f = CaptureFile.open(file, format(), { holdBack: true, secrets: () => (once ? ((once = false), Buffer.from(KEY_A)) : undefined) });
  f.commit(); // as when the program has started
  for (let i = 0; i < 40_000; i++) f.write(packet(5000 + (i % 1000)), OWNER); // ~2.6 MB: more than the 1 MiB buffer
  t.equal(f.bytesWritten, fs.statSync(file).size);
  t.ok(f.bytesWritten < 1000, 'nothing but the header written while the records are young');
  f.flushSettled(0);
  f.close();
  const b = blocks(file);
  t.same(b.slice(0, 3), ['SHB', 'DSB CLIENT_RANDOM 00112233 44556677', 'IDB'], 'the key block ahead of all of them');
  t.equal(b.filter((x) => x.startsWith('EPB')).length, 40_000);
});

t.test('classic pcap: no block for keys', async (t) => {
  const file = path.join(tmp, 'classic.pcap');
  const f = CaptureFile.open(file, pcapFormat(65535));
  f.commit(); // as when the program has started
  t.equal(f.insertBeforeHeld(Buffer.from(KEY_A)), false, 'the format cannot hold them');
  f.write(packet(1), OWNER);
  f.close();
  t.equal(fs.statSync(file).size, 24 + 16 + 20 + packet(1).len);
  t.equal(fs.statSync(file).mode & 0o777, 0o644, 'no keys: the usual mode');
});

t.test('key log tail: late file, partial lines, truncation, only new lines when told', async (t) => {
  const file = path.join(tmp, 'tail.log');
  const tail = new KeyLogTail(file, false);
  t.same(tail.readLines(), [], 'no file yet');
  fs.writeFileSync(file, 'one\ntw');
  t.same(tail.readLines(), ['one']);
  fs.appendFileSync(file, 'o\nthree\n');
  t.same(tail.readLines(), ['two', 'three']);
  t.same(tail.readLines(), []);
  fs.writeFileSync(file, 'new\n'); // truncated and rewritten
  t.same(tail.readLines(), [], 'the truncation is noticed');
  t.same(tail.readLines(), ['new'], 'and read from the start');
  tail.close();
  const fromEnd = new KeyLogTail(file, true);
  fs.appendFileSync(file, 'later\n');
  t.same(fromEnd.readLines(), ['later'], 'lines already there are not read');
  fromEnd.close();
});

t.test('TlsKeyLog: private log, environment, only key lines, each once, copy', async (t) => {
  const copy = path.join(tmp, 'copy.log');
  const warnings: string[] = [];
  const { keys, env } = TlsKeyLog.forLaunch(Environment.fromObject({ PATH: '/usr/bin', NODE_OPTIONS: '--max-old-space-size=64' }), { copyTo: copy, fileHoldsKeys: true, warn: (m) => warnings.push(m) });
  const log = env.get('SSLKEYLOGFILE')!;
  t.match(log, /tracedump-tls-.*\/keys\.log$/);
  t.equal(fs.statSync(path.dirname(log)).mode & 0o777, 0o700, 'private directory');
  t.equal(fs.statSync(log).mode & 0o777, 0o600, 'private file');
  t.equal(env.get('NODE_OPTIONS'), `--max-old-space-size=64 --tls-keylog=${log}`);
  t.equal(fs.statSync(copy).mode & 0o777, 0o600, '--keylog file is 0600');
  fs.appendFileSync(log, `# a comment\n${KEY_A}not a key line\n${KEY_A}`);
  t.equal(keys.read()?.toString(), KEY_A, 'one key line, once');
  t.equal(keys.read(), undefined);
  fs.appendFileSync(log, KEY_B);
  t.equal(keys.read()?.toString(), KEY_B);
  t.equal(fs.readFileSync(copy, 'utf8'), KEY_A + KEY_B, 'copied to --keylog');
  keys.close();
  t.notOk(fs.existsSync(path.dirname(log)), 'the private directory is removed');
  t.same(warnings, []);
});

t.test('TlsKeyLog: a key log the user set is kept and read from its end; pcap hint once', async (t) => {
  const own = path.join(tmp, 'own.log');
  fs.writeFileSync(own, 'CLIENT_RANDOM 99 99\n'); // an earlier run's keys
  const warnings: string[] = [];
  const { keys, env } = TlsKeyLog.forLaunch(Environment.fromObject({ SSLKEYLOGFILE: own }), { fileHoldsKeys: false, captureName: 'x.pcap', warn: (m) => warnings.push(m) });
  t.equal(env.get('SSLKEYLOGFILE'), own, 'kept');
  t.equal(env.get('NODE_OPTIONS'), `--tls-keylog=${own}`, 'Node writes to the same log');
  t.same(keys.files, [own], 'no private log needed');
  fs.appendFileSync(own, KEY_A);
  t.equal(keys.read(), undefined, 'classic pcap: nothing for the file');
  fs.appendFileSync(own, KEY_B);
  keys.read();
  t.equal(warnings.length, 1, 'the hint comes once');
  t.match(warnings[0], /x\.pcap is classic pcap.*pcapng.*--keylog/);
  t.equal(keys.lines, 2, 'the old line was not read');
  keys.close();
  t.ok(fs.existsSync(own), "the user's own log stays");
});

t.test('NODE_OPTIONS --tls-keylog forms', async (t) => {
  t.equal(nodeKeyLogOf(undefined), undefined);
  t.equal(nodeKeyLogOf('--max-old-space-size=64'), undefined);
  t.equal(nodeKeyLogOf('--tls-keylog=/a/b.log'), '/a/b.log');
  t.equal(nodeKeyLogOf('--x --tls-keylog /a/b.log --y'), '/a/b.log');
  t.equal(nodeKeyLogOf('--tls-keylog="/a b/c \\"d\\".log"'), '/a b/c "d".log');
  t.equal(nodeKeyLogOf('--no-tls-keylogger'), undefined);
  t.equal(nodeKeyLogOf('"--tls-keylog=/a b.log" --x'), '/a b.log', 'the whole option in quotes');
  t.equal(nodeKeyLogOf('--tls-keylog=/first --tls-keylog=/last'), '/last', 'the last one, as Node takes it');
});
