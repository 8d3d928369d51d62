// The pcap writer: golden bytes of the file header and of a record, a small file read back by
// tshark and capinfos, and records larger than the file's 1 MiB buffer.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LINKTYPE_LINUX_SLL2, type SllPacket, pcapFileHeader, pcapRecordSize, writePcapRecord } from '../src/output/pcap';
import { CaptureFile } from '../src/output/capture-file';
import { pcapFormat } from '../src/output/pcap-format';
import { ARPHRD_ETHER, ARPHRD_LOOPBACK, ETH_P_IP, ETH_P_IPV6, PACKET_HOST, PACKET_OUTGOING, ip4, ip6, readPcap, tcp, udp } from './helpers/unit-packets';

const OWNER = { pid: 1, tid: 1, comm: 'x', inode: 1 };

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tracedump-unit-pcap-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}

t.test('file header golden bytes', async (t) => {
  t.equal(LINKTYPE_LINUX_SLL2, 276);
  t.same(
    pcapFileHeader(65535),
    hex(`
      4d 3c b2 a1   02 00 04 00   00 00 00 00   00 00 00 00
      13 00 01 00   14 01 00 00`),
    'magic (ns), v2.4, zone 0, sigfigs 0, snaplen 65535+20, LINKTYPE_LINUX_SLL2',
  );
  t.same(pcapFileHeader(262144).subarray(16, 20), hex('14 00 04 00'), 'snaplen 262144+20');
  t.same(pcapFileHeader(100, 1).subarray(20), hex('01 00 00 00'), 'another linktype');
});

t.test('record golden bytes', async (t) => {
  const p: SllPacket = {
    sec: 0x01020304,
    nsec: 999_999_999,
    len: 60,
    ifindex: 2,
    protocol: ETH_P_IP,
    hatype: ARPHRD_ETHER,
    pkttype: PACKET_OUTGOING,
    data: hex('45 00 00 3c'),
  };
  t.equal(pcapRecordSize(p), 16 + 20 + 4);
  const out = Buffer.alloc(3 + pcapRecordSize(p) + 2, 0xee);
  const next = writePcapRecord(out, 3, p);
  t.equal(next, 3 + 40, 'returns the next offset');
  t.same(
    out,
    hex(`
      ee ee ee
      04 03 02 01   ff c9 9a 3b   18 00 00 00   50 00 00 00
      08 00 00 00   00 00 00 02   00 01 04 00   00 00 00 00 00 00 00 00
      45 00 00 3c
      ee ee`),
    'ts sec/ns, incl_len 4+20, orig_len 60+20; SLL2: protocol, reserved, ifindex, hatype, pkttype, addr len, addr',
  );
  // a negative ifindex and the loopback hatype
  const q = writePcapRecord(Buffer.alloc(36), 0, { ...p, ifindex: -1, hatype: ARPHRD_LOOPBACK, protocol: ETH_P_IPV6, data: Buffer.alloc(0) });
  t.equal(q, 36);
  const b = Buffer.alloc(36);
  writePcapRecord(b, 0, { ...p, ifindex: -1, hatype: ARPHRD_LOOPBACK, protocol: ETH_P_IPV6, pkttype: PACKET_HOST, data: Buffer.alloc(0) });
  t.same(b.subarray(16), hex('86 dd 00 00 ff ff ff ff 03 04 00 00 00 00 00 00 00 00 00 00'));
});

function tool(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

t.test('a small file read by tshark and capinfos', async (t) => {
  const file = path.join(tmp, 'small.pcap');
  const v4syn = ip4('10.1.2.3', '10.9.8.7', 6, tcp(40000, 443, 0x02));
  const v6udp = ip6('2001:db8::1', '2001:db8::2', 17, udp(5353, 53, Buffer.from('query')));
  const v4back = ip4('10.9.8.7', '10.1.2.3', 6, tcp(443, 40000, 0x12));
  const recs: SllPacket[] = [
    { sec: 1_700_000_000, nsec: 1, len: v4syn.length, ifindex: 2, protocol: ETH_P_IP, hatype: ARPHRD_ETHER, pkttype: PACKET_OUTGOING, data: v4syn },
    { sec: 1_700_000_000, nsec: 500_000_000, len: v6udp.length, ifindex: 1, protocol: ETH_P_IPV6, hatype: ARPHRD_LOOPBACK, pkttype: PACKET_HOST, data: v6udp },
    // a snapped packet: caplen 30 of 40 bytes
    { sec: 1_700_000_001, nsec: 999_999_999, len: v4back.length, ifindex: 3, protocol: ETH_P_IP, hatype: ARPHRD_ETHER, pkttype: PACKET_HOST, data: v4back.subarray(0, 30) },
  ];
  const f = CaptureFile.open(file, pcapFormat(30));
  f.commit(); // as when the program has started
  for (const r of recs) f.write(r, OWNER);
  f.close();
  t.equal(f.error, undefined);
  t.equal(f.bytesWritten, fs.statSync(file).size, 'bytesWritten is the file size');
  t.equal(fs.statSync(file).size, 24 + recs.reduce((n, r) => n + pcapRecordSize(r), 0));

  const fields = tool('tshark', ['-r', file, '-T', 'fields', '-e', 'sll.ifindex', '-e', 'sll.pkttype', '-e', 'ip.src', '-e', 'ipv6.src', '-e', 'tcp.srcport', '-e', 'udp.dstport']);
  t.same(
    fields.replace(/\n$/, '').split('\n').map((l) => l.split('\t')),
    [
      ['2', '4', '10.1.2.3', '', '40000', ''],
      ['1', '0', '', '2001:db8::1', '', '53'],
      ['3', '0', '10.9.8.7', '', '443', ''],
    ],
    'tshark fields',
  );
  const times = tool('tshark', ['-r', file, '-T', 'fields', '-e', 'frame.time_epoch', '-e', 'frame.len', '-e', 'frame.cap_len']);
  t.same(
    times.trimEnd().split('\n'),
    ['1700000000.000000001\t60\t60', '1700000000.500000000\t73\t73', '1700000001.999999999\t60\t50'],
    'nanosecond times, wire and captured lengths (with the 20-byte SLL2 header)',
  );
  const info = tool('capinfos', ['-t', '-e', file]);
  t.match(info, /File type:\s+Wireshark\/tcpdump\/\.\.\. - nanosecond (libpcap|pcap)\n/, 'pcap, nanosecond');
  t.match(info, /Last packet time:\s+2023-11-14 \d\d:\d\d:21\.999999999/, 'last packet time to the ns');
  const encap = tool('capinfos', ['-E', file]);
  t.match(encap, /File encapsulation:\s+Linux cooked-mode capture v2\n/, 'LINUX_SLL2 (capinfos -E)');

  // the same bytes as the pure functions make
  const expected = Buffer.concat([pcapFileHeader(30), ...recs.map((r) => {
    const b = Buffer.alloc(pcapRecordSize(r));
    writePcapRecord(b, 0, r);
    return b;
  })]);
  t.same(fs.readFileSync(file), expected, 'CaptureFile in pcap writes exactly the header and records');
});

t.test('records larger than the 1 MiB buffer read back', async (t) => {
  const file = path.join(tmp, 'big.pcap');
  const big = Buffer.alloc(1536 * 1024 + 7);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 10)) & 0xff;
  big[0] = 0x45;
  const exact = Buffer.alloc((1 << 20) - 16 - 20, 0x5a); // a record of exactly 1 MiB
  exact[0] = 0x45;
  const small = ip4('127.0.0.1', '127.0.0.1', 17, udp(1, 2, Buffer.from('x')));
  const mid = Buffer.alloc(700 * 1024, 0x33); // fills most of the buffer: the next one flushes it
  const data = [small, big, small, mid, mid, exact, small, big];
  const f = CaptureFile.open(file, pcapFormat(2 << 20));
  f.commit(); // as when the program has started
  data.forEach((d, i) => f.write({ sec: 100 + i, nsec: i, len: d.length, ifindex: 1, protocol: ETH_P_IP, hatype: ARPHRD_LOOPBACK, pkttype: PACKET_HOST, data: d }, OWNER));
  f.close();
  t.equal(f.error, undefined);
  const r = readPcap(fs.readFileSync(file));
  t.equal(r.magic, 0xa1b23c4d);
  t.equal(r.snaplen, (2 << 20) + 20);
  t.equal(r.linktype, 276);
  t.equal(r.records.length, data.length, 'every record');
  r.records.forEach((rec, i) => {
    t.equal(rec.sec, 100 + i, `record ${i} in order`);
    t.equal(rec.len, data[i].length + 20);
    t.ok(rec.data.subarray(20).equals(data[i]), `record ${i} (${data[i].length} bytes) intact`);
  });
  t.equal(f.bytesWritten, fs.statSync(file).size);
  // what tshark makes of it: the small records are readable (it caps records at 256 KiB)
  let out = '';
  try {
    out = tool('tshark', ['-r', file, '-c', '1', '-T', 'fields', '-e', 'udp.dstport']);
  } catch (e) {
    out = String((e as { stdout?: string }).stdout ?? '');
  }
  t.equal(out.trim().split('\n')[0], '2', 'tshark reads the first record');
});

t.test('writes after close are ignored; open fails with a TracedumpError', async (t) => {
  const file = path.join(tmp, 'closed.pcap');
  const f = CaptureFile.open(file, pcapFormat(100));
  f.commit(); // as when the program has started
  f.close();
  f.write({ sec: 1, nsec: 0, len: 1, ifindex: 1, protocol: ETH_P_IP, hatype: 1, pkttype: 0, data: Buffer.alloc(1) }, OWNER);
  f.close();
  t.equal(fs.statSync(file).size, 24);
  t.throws(() => CaptureFile.open(path.join(tmp, 'no', 'such', 'dir.pcap'), pcapFormat(100)), { code: 'ENOENT', syscall: 'open' });
});
