// pcapng output: golden bytes of every block and option encoder (worked out by hand from
// draft-ietf-opsawg-pcapng, not by calling the encoders), the DNS answer parser that feeds the
// Name Resolution Blocks, and real captures read back by tshark and capinfos (Wireshark 4.0 on
// Debian 12): per-packet pid/tid (epb_processid_threadid, read here by our own parser since
// Wireshark shows no field for it) and comments, names from the file's NRBs, interface
// statistics. See docs/wireshark-versions.md for what each Wireshark version shows.
import t from 'tap';
import { pcapngBlocks } from './helpers/pcapng-blocks';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  BLOCK_EPB,
  BLOCK_IDB,
  BLOCK_ISB,
  BLOCK_NRB,
  BLOCK_SHB,
  BYTE_ORDER_MAGIC,
  EPB_FLAGS,
  EPB_PROCESSID_THREADID,
  IF_NAME,
  IF_TSRESOL,
  ISB_ENDTIME,
  ISB_IFDROP,
  ISB_IFRECV,
  ISB_STARTTIME,
  NRB_IPV4,
  NRB_IPV6,
  OPT_COMMENT,
  SHB_HARDWARE,
  SHB_OS,
  SHB_USERAPPL,
} from '../src/output/pcapng-spec';
import {
  enhancedPacketSize,
  interfaceDescription,
  interfaceStatistics,
  nameResolution,
  option,
  processOptions,
  sectionHeader,
  writeEnhancedPacket,
} from '../src/output/pcapng';
import type { SllPacket } from '../src/output/pcap';
import { resolvedNames } from '../src/packet/dns';
import { ARPHRD_LOOPBACK, ETH_P_IP, ETH_P_IPV6, PACKET_HOST, PACKET_OUTGOING, ip4, ip6, tcp, udp, v4, v6 } from './helpers/unit-packets';
import { PY, type Bg, noLeftovers, runTracedump, sleep, startBg, workDir } from './helpers/capture';

function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}
const spaced = (b: Buffer) => b.toString('hex').replace(/(..)/g, '$1 ').trim();

// ---- tools --------------------------------------------------------------------------------

const ROOT_WARNING = /^Running as user "root" and group "root"\. This could be dangerous\.\n?/m;

interface ToolRun {
  status: number | null;
  out: string;
  /** stderr without tshark's warning about running as root (not about the file) */
  err: string;
}

function run(cmd: string, args: string[]): ToolRun {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 << 20 });
  return { status: r.status, out: r.stdout ?? '', err: (r.stderr ?? '').replace(ROOT_WARNING, '') };
}

const lines = (s: string) => s.split('\n').filter((l) => l !== '');

// ---- an independent pcapng reader (little-endian sections, as tracedump writes) -----------

const pad4 = (n: number) => (n + 3) & ~3;

interface NgOption {
  code: number;
  value: Buffer;
}

interface Epb {
  /** 1-based, as tshark's frame.number */
  frame: number;
  ifid: number;
  ts: bigint;
  caplen: number;
  origlen: number;
  data: Buffer;
  options: NgOption[];
}

interface NrbRecord {
  type: number;
  address: Buffer;
  names: string[];
}

interface NgFile {
  shbOptions: NgOption[];
  idbs: { linktype: number; snaplen: number; options: NgOption[] }[];
  epbs: Epb[];
  /** `afterFrame`: how many packets precede the block */
  nrbs: { afterFrame: number; records: NrbRecord[] }[];
  isbs: { ifid: number; ts: bigint; options: NgOption[] }[];
  /** Departures from the spec found while reading */
  problems: string[];
}

function readOptions(b: Buffer, at: number, where: string, problems: string[]): NgOption[] {
  const opts: NgOption[] = [];
  if (at === b.length) return opts;
  while (at + 4 <= b.length) {
    const code = b.readUInt16LE(at);
    const len = b.readUInt16LE(at + 2);
    if (code === 0) {
      if (len !== 0) problems.push(`${where}: opt_endofopt with length ${len}`);
      if (at + 4 !== b.length) problems.push(`${where}: ${b.length - at - 4} bytes after opt_endofopt`);
      return opts;
    }
    if (at + 4 + pad4(len) > b.length) {
      problems.push(`${where}: option ${code} of ${len} bytes overruns the block`);
      return opts;
    }
    const padding = b.subarray(at + 4 + len, at + 4 + pad4(len));
    if (padding.some((x) => x !== 0)) problems.push(`${where}: option ${code} padding not zero`);
    opts.push({ code, value: Buffer.from(b.subarray(at + 4, at + 4 + len)) });
    at += 4 + pad4(len);
  }
  problems.push(`${where}: options without opt_endofopt`);
  return opts;
}

function readTs(b: Buffer, at: number): bigint {
  return (BigInt(b.readUInt32LE(at)) << 32n) | BigInt(b.readUInt32LE(at + 4));
}

function readPcapng(file: Buffer): NgFile {
  const walk = pcapngBlocks(file);
  const f: NgFile = { shbOptions: [], idbs: [], epbs: [], nrbs: [], isbs: [], problems: [...walk.problems] };
  for (const [n, { at, type, body }] of walk.blocks.entries()) {
    const where = `block ${n} (type ${type}) at ${at}`;
    switch (type) {
      case BLOCK_SHB:
        if (n !== 0) f.problems.push(`${where}: a second section`);
        if (body.readUInt32LE(0) !== BYTE_ORDER_MAGIC) f.problems.push('SHB: byte-order magic');
        if (body.readUInt16LE(4) !== 1 || body.readUInt16LE(6) !== 0) f.problems.push('SHB: version is not 1.0');
        if (body.readBigInt64LE(8) !== -1n) f.problems.push('SHB: section length given');
        f.shbOptions = readOptions(body, 16, where, f.problems);
        break;
      case BLOCK_IDB:
        if (body.readUInt16LE(2) !== 0) f.problems.push(`${where}: reserved field not zero`);
        f.idbs.push({ linktype: body.readUInt16LE(0), snaplen: body.readUInt32LE(4), options: readOptions(body, 8, where, f.problems) });
        break;
      case BLOCK_EPB: {
        const caplen = body.readUInt32LE(12);
        const ifid = body.readUInt32LE(0);
        if (ifid >= f.idbs.length) f.problems.push(`${where}: interface ${ifid} not described yet`);
        if (20 + pad4(caplen) > body.length) {
          f.problems.push(`${where}: caplen ${caplen} overruns the block`);
          break;
        }
        if (body.subarray(20 + caplen, 20 + pad4(caplen)).some((x) => x !== 0)) f.problems.push(`${where}: packet padding not zero`);
        f.epbs.push({
          frame: f.epbs.length + 1,
          ifid,
          ts: readTs(body, 4),
          caplen,
          origlen: body.readUInt32LE(16),
          data: Buffer.from(body.subarray(20, 20 + caplen)),
          options: readOptions(body, 20 + pad4(caplen), where, f.problems),
        });
        break;
      }
      case BLOCK_NRB: {
        const records: NrbRecord[] = [];
        let o = 0;
        for (;;) {
          if (o + 4 > body.length) {
            f.problems.push(`${where}: no nrb_record_end`);
            break;
          }
          const rt = body.readUInt16LE(o);
          const rl = body.readUInt16LE(o + 2);
          if (rt === 0) {
            if (rl !== 0) f.problems.push(`${where}: nrb_record_end with length ${rl}`);
            readOptions(body, o + 4, where, f.problems);
            break;
          }
          const v = body.subarray(o + 4, o + 4 + rl);
          const alen = rt === NRB_IPV4 ? 4 : rt === NRB_IPV6 ? 16 : 0;
          if (!alen || v.length < alen + 2 || v[v.length - 1] !== 0) f.problems.push(`${where}: bad record type ${rt} length ${rl}`);
          else records.push({ type: rt, address: Buffer.from(v.subarray(0, alen)), names: v.subarray(alen, v.length - 1).toString('utf8').split('\0') });
          if (body.subarray(o + 4 + rl, o + 4 + pad4(rl)).some((x) => x !== 0)) f.problems.push(`${where}: record padding not zero`);
          o += 4 + pad4(rl);
        }
        f.nrbs.push({ afterFrame: f.epbs.length, records });
        break;
      }
      case BLOCK_ISB:
        f.isbs.push({ ifid: body.readUInt32LE(0), ts: readTs(body, 4), options: readOptions(body, 12, where, f.problems) });
        break;
      default:
        f.problems.push(`${where}: unexpected block type`);
    }
  }
  return f;
}

const opt = (opts: NgOption[], code: number) => opts.find((o) => o.code === code)?.value;
const optStr = (opts: NgOption[], code: number) => opt(opts, code)?.toString('utf8');

interface PacketView {
  frame: number;
  pkttype: number;
  direction: number | undefined;
  pid: number | undefined;
  tid: number | undefined;
  comment: string | undefined;
  proto: 'tcp' | 'udp' | 'other';
  src: string;
  dst: string;
  sport: number;
  dport: number;
  ts: bigint;
}

function ipText(b: Buffer): string {
  if (b.length === 4) return [...b].join('.');
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push(b.readUInt16BE(i).toString(16));
  return words.join(':');
}

function view(e: Epb): PacketView {
  const ids = opt(e.options, EPB_PROCESSID_THREADID);
  const flags = opt(e.options, EPB_FLAGS);
  const ip = e.data.subarray(20);
  let proto: PacketView['proto'] = 'other';
  let src = '';
  let dst = '';
  let l4 = -1;
  if (ip.length >= 20 && ip[0] >> 4 === 4) {
    src = ipText(ip.subarray(12, 16));
    dst = ipText(ip.subarray(16, 20));
    l4 = (ip[0] & 15) * 4;
    proto = ip[9] === 6 ? 'tcp' : ip[9] === 17 ? 'udp' : 'other';
  } else if (ip.length >= 40 && ip[0] >> 4 === 6) {
    src = ipText(ip.subarray(8, 24));
    dst = ipText(ip.subarray(24, 40));
    l4 = 40;
    proto = ip[6] === 6 ? 'tcp' : ip[6] === 17 ? 'udp' : 'other';
  }
  const ports = proto !== 'other' && ip.length >= l4 + 4;
  return {
    frame: e.frame,
    pkttype: e.data[10],
    direction: flags?.length === 4 ? flags.readUInt32LE(0) & 3 : undefined,
    pid: ids?.length === 8 ? ids.readUInt32LE(0) : undefined,
    tid: ids?.length === 8 ? ids.readUInt32LE(4) : undefined,
    comment: optStr(e.options, OPT_COMMENT),
    proto,
    src,
    dst,
    sport: ports ? ip.readUInt16BE(l4) : 0,
    dport: ports ? ip.readUInt16BE(l4 + 2) : 0,
    ts: e.ts,
  };
}

// ---- golden bytes -------------------------------------------------------------------------

t.test('block and option codes are the spec values', async (t) => {
  t.same(
    [BLOCK_SHB, BLOCK_IDB, BLOCK_NRB, BLOCK_ISB, BLOCK_EPB, BYTE_ORDER_MAGIC],
    [0x0a0d0d0a, 1, 4, 5, 6, 0x1a2b3c4d],
    'SHB, IDB, NRB, ISB, EPB, byte-order magic',
  );
  t.same([OPT_COMMENT, SHB_HARDWARE, SHB_OS, SHB_USERAPPL], [1, 2, 3, 4], 'opt_comment, shb_hardware, shb_os, shb_userappl');
  t.same([IF_NAME, IF_TSRESOL], [2, 9], 'if_name, if_tsresol');
  t.same([EPB_FLAGS, EPB_PROCESSID_THREADID], [2, 8], 'epb_flags, epb_processid_threadid');
  t.same([ISB_STARTTIME, ISB_ENDTIME, ISB_IFRECV, ISB_IFDROP], [2, 3, 4, 5], 'isb_starttime, isb_endtime, isb_ifrecv, isb_ifdrop');
  t.same([NRB_IPV4, NRB_IPV6], [1, 2], 'nrb_record_ipv4, nrb_record_ipv6');
});

t.test('option: code, length, value padded to 32 bits with zeros', async (t) => {
  const cases: Array<[number, Buffer | string, string, string]> = [
    [1, '', '01 00 00 00', 'empty value: no padding'],
    [1, 'a', '01 00 01 00 61 00 00 00', '1 byte + 3 padding'],
    [1, 'ab', '01 00 02 00 61 62 00 00', '2 bytes + 2 padding'],
    [1, 'abc', '01 00 03 00 61 62 63 00', '3 bytes + 1 padding'],
    [1, 'abcd', '01 00 04 00 61 62 63 64', '4 bytes, no padding'],
    [1, 'abcde', '01 00 05 00 61 62 63 64 65 00 00 00', '5 bytes + 3 padding'],
    [1, 'é', '01 00 02 00 c3 a9 00 00', 'length in UTF-8 bytes, not characters'],
    [9, Buffer.from([9]), '09 00 01 00 09 00 00 00', 'a Buffer value (if_tsresol 9)'],
    [0x0bac, 'x', 'ac 0b 01 00 78 00 00 00', 'a code above 255, little-endian'],
    [2, Buffer.from([0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa]), '02 00 06 00 ff fe fd fc fb fa 00 00', 'binary value'],
  ];
  for (const [code, value, want, what] of cases) t.equal(spaced(option(code, value)), spaced(hex(want)), what);
});

t.test('Section Header Block', async (t) => {
  const full = sectionHeader({ hardware: 'hw', os: 'os1', userappl: 'app', comments: ['c'] });
  t.equal(
    spaced(full),
    spaced(
      hex(`
      0a 0d 0d 0a   40 00 00 00
      4d 3c 2b 1a   01 00 00 00   ff ff ff ff ff ff ff ff
      02 00 02 00   68 77 00 00
      03 00 03 00   6f 73 31 00
      04 00 03 00   61 70 70 00
      01 00 01 00   63 00 00 00
      00 00 00 00
      40 00 00 00`),
    ),
    'type, length 64, byte-order magic, version 1.0, section length -1, shb_hardware, shb_os, shb_userappl, opt_comment, end, length',
  );
  const bare = sectionHeader({ hardware: 'x64!', os: 'Linux', userappl: 'td' });
  t.equal(
    spaced(bare),
    spaced(
      hex(`
      0a 0d 0d 0a   3c 00 00 00
      4d 3c 2b 1a   01 00 00 00   ff ff ff ff ff ff ff ff
      02 00 04 00   78 36 34 21
      03 00 05 00   4c 69 6e 75 78 00 00 00
      04 00 02 00   74 64 00 00
      00 00 00 00
      3c 00 00 00`),
    ),
    'without a comment (length 60); a 4-byte string takes no padding',
  );
  const cmd = "tracedump -- sh -c 'echo é'";
  const withCmd = sectionHeader({ hardware: 'h', os: 'o', userappl: 'u', comments: [cmd] });
  const clen = Buffer.byteLength(cmd);
  t.equal(withCmd.readUInt32LE(4), 12 + 16 + 3 * 8 + 4 + pad4(clen) + 4, 'length counts the comment in UTF-8 bytes, padded');
  t.equal(withCmd.readUInt16LE(8 + 16 + 24 + 2), clen, 'comment option length');
  t.equal(withCmd.subarray(8 + 16 + 24 + 4, 8 + 16 + 24 + 4 + clen).toString('utf8'), cmd, 'comment text');
});

t.test('Interface Description Block', async (t) => {
  t.equal(
    spaced(interfaceDescription('lo', 65535)),
    spaced(
      hex(`
      01 00 00 00   28 00 00 00
      14 01 00 00   13 00 01 00
      02 00 02 00   6c 6f 00 00
      09 00 01 00   09 00 00 00
      00 00 00 00
      28 00 00 00`),
    ),
    'LINKTYPE_LINUX_SLL2 (276), reserved 0, snaplen 65535+20, if_name "lo", if_tsresol 9, end',
  );
  t.equal(
    spaced(interfaceDescription(undefined, 262144)),
    spaced(
      hex(`
      01 00 00 00   20 00 00 00
      14 01 00 00   14 00 04 00
      09 00 01 00   09 00 00 00
      00 00 00 00
      20 00 00 00`),
    ),
    'an interface without a name: if_tsresol only; snaplen 262144+20',
  );
  t.equal(
    spaced(interfaceDescription('eth0', 100)),
    spaced(hex('01 00 00 00 28 00 00 00 14 01 00 00 78 00 00 00 02 00 04 00 65 74 68 30 09 00 01 00 09 00 00 00 00 00 00 00 28 00 00 00')),
    'a 4-byte name takes no padding',
  );
});

t.test('process options: epb_processid_threadid (pid u32, tid u32) and a comment', async (t) => {
  t.equal(
    spaced(processOptions(1234, 5678, 'pid=1234')),
    spaced(hex('08 00 08 00 d2 04 00 00 2e 16 00 00   01 00 08 00 70 69 64 3d 31 32 33 34')),
    'option 8 length 8: pid 1234, tid 5678 little-endian; then opt_comment',
  );
  t.equal(spaced(processOptions(1, 2)), spaced(hex('08 00 08 00 01 00 00 00 02 00 00 00')), 'no comment: the ids alone');
  t.equal(
    spaced(processOptions(0xfffffffe, 4194304, 'x')),
    spaced(hex('08 00 08 00 fe ff ff ff 00 00 40 00   01 00 01 00 78 00 00 00')),
    'unsigned 32-bit ids; a padded comment',
  );
});

const SLL2_OUT_LO = '08 00 00 00 00 00 00 01 03 04 04 00 00 00 00 00 00 00 00 00';

t.test('Enhanced Packet Block', async (t) => {
  const p: SllPacket = {
    sec: 1_700_000_000,
    nsec: 123_456_789,
    len: 5,
    ifindex: 1,
    protocol: ETH_P_IP,
    hatype: ARPHRD_LOOPBACK,
    pkttype: PACKET_OUTGOING,
    data: hex('45 01 02 03 04'),
  };
  const extra = processOptions(1234, 5678, 'pid=1234');
  t.equal(enhancedPacketSize(p, extra), 96, 'size: 28 + 28 (25 bytes padded) + 8 flags + 24 extra + 4 end + 4 length');
  const out = Buffer.alloc(4 + 96 + 4, 0xee);
  t.equal(writeEnhancedPacket(out, 4, p, 3, extra), 100, 'returns the offset after the block');
  t.equal(
    spaced(out),
    spaced(
      hex(`
      ee ee ee ee
      06 00 00 00   60 00 00 00
      03 00 00 00
      fe 9c 97 17   15 cd 85 3d
      19 00 00 00   19 00 00 00
      ${SLL2_OUT_LO}
      45 01 02 03 04   00 00 00
      02 00 04 00   02 00 00 00
      08 00 08 00   d2 04 00 00   2e 16 00 00
      01 00 08 00   70 69 64 3d 31 32 33 34
      00 00 00 00
      60 00 00 00
      ee ee ee ee`),
    ),
    'interface 3; 1700000000.123456789 s as ns 0x17979cfe_3d85cd15 (high word first); caplen = origlen = 5+20; ' +
      'SLL2 header; data; 3 zero padding bytes (the buffer held 0xee); epb_flags outbound (2); pid/tid; comment; end; length',
  );

  // an inbound, snapped packet without extra options
  const q: SllPacket = { ...p, sec: 1, nsec: 2, len: 1500, ifindex: 0x01020304, protocol: ETH_P_IPV6, pkttype: PACKET_HOST, data: hex('60 00 00 00') };
  const b = Buffer.alloc(enhancedPacketSize(q, Buffer.alloc(0)), 0xee);
  t.equal(b.length, 8 + 20 + 24 + 8 + 4 + 4, 'size without extra options');
  t.equal(writeEnhancedPacket(b, 0, q, 0, Buffer.alloc(0)), b.length);
  t.equal(
    spaced(b),
    spaced(
      hex(`
      06 00 00 00   44 00 00 00
      00 00 00 00
      00 00 00 00   02 ca 9a 3b
      18 00 00 00   f0 05 00 00
      86 dd 00 00 01 02 03 04 03 04 00 00 00 00 00 00 00 00 00 00
      60 00 00 00
      02 00 04 00   01 00 00 00
      00 00 00 00
      44 00 00 00`),
    ),
    '1.000000002 s (high word 0); caplen 24, origlen 1500+20; ifindex big-endian in SLL2; no padding; epb_flags inbound (1)',
  );

  // padding of every length of data, and the direction of every pkttype
  for (let n = 0; n <= 8; n++) {
    const r: SllPacket = { ...p, len: n, data: Buffer.alloc(n, 0x11) };
    const size = enhancedPacketSize(r, Buffer.alloc(0));
    const o = Buffer.alloc(size, 0xee);
    writeEnhancedPacket(o, 0, r, 0, Buffer.alloc(0));
    const padded = pad4(20 + n);
    t.equal(size, 28 + padded + 16, `${n} bytes of data: block of ${28 + padded + 16}`);
    t.ok(o.subarray(28 + 20 + n, 28 + padded).every((x) => x === 0), `${n} bytes of data: ${padded - 20 - n} zero padding bytes`);
    t.equal(o.readUInt16LE(28 + padded), EPB_FLAGS, `${n} bytes of data: the flags option follows the padding`);
  }
  for (const [pkttype, dir] of [[0, 1], [1, 1], [2, 1], [3, 1], [4, 2]]) {
    const o = Buffer.alloc(enhancedPacketSize(p, Buffer.alloc(0)));
    writeEnhancedPacket(o, 0, { ...p, pkttype }, 0, Buffer.alloc(0));
    t.equal(o.readUInt32LE(28 + 28 + 4), dir, `PACKET_* ${pkttype} -> epb_flags direction ${dir}`);
  }
});

t.test('Name Resolution Block', async (t) => {
  t.equal(
    spaced(nameResolution([{ address: v4('198.18.0.7'), name: 'a.example' }])),
    spaced(
      hex(`
      04 00 00 00   24 00 00 00
      01 00 0e 00   c6 12 00 07   61 2e 65 78 61 6d 70 6c 65 00   00 00
      00 00 00 00
      24 00 00 00`),
    ),
    'nrb_record_ipv4: length 4+9+1 (address, name, NUL) padded to 16; nrb_record_end; no options',
  );
  t.equal(
    spaced(nameResolution([{ address: v6('fd00:198:18::7'), name: 'tdtest.example' }])),
    spaced(
      hex(`
      04 00 00 00   34 00 00 00
      02 00 1f 00   fd 00 01 98 00 18 00 00 00 00 00 00 00 00 00 07
                    74 64 74 65 73 74 2e 65 78 61 6d 70 6c 65 00   00
      00 00 00 00
      34 00 00 00`),
    ),
    'nrb_record_ipv6: length 16+14+1 padded to 32',
  );
  t.equal(
    spaced(
      nameResolution([
        { address: v4('10.0.0.1'), name: 'abc' },
        { address: v6('2001:db8::1'), name: 'v6.example' },
      ]),
    ),
    spaced(
      hex(`
      04 00 00 00   3c 00 00 00
      01 00 08 00   0a 00 00 01   61 62 63 00
      02 00 1b 00   20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01   76 36 2e 65 78 61 6d 70 6c 65 00   00
      00 00 00 00
      3c 00 00 00`),
    ),
    'two records in one block; a record of exactly 8 bytes takes no padding',
  );
  t.equal(spaced(nameResolution([])), spaced(hex('04 00 00 00 10 00 00 00 00 00 00 00 10 00 00 00')), 'no records: nrb_record_end alone');
});

t.test('Interface Statistics Block', async (t) => {
  const start = 1_600_000_000_000_000_001n;
  const end = 1_600_000_000_500_000_000n;
  t.equal(
    spaced(interfaceStatistics({ ifid: 2, start, end, received: 0x1_0000_0001, dropped: 7, comment: 'c' })),
    spaced(
      hex(`
      05 00 00 00   54 00 00 00
      02 00 00 00   85 57 34 16   00 65 6d f6
      02 00 08 00   85 57 34 16   01 00 a0 d8
      03 00 08 00   85 57 34 16   00 65 6d f6
      04 00 08 00   01 00 00 00   01 00 00 00
      05 00 08 00   07 00 00 00   00 00 00 00
      01 00 01 00   63 00 00 00
      00 00 00 00
      54 00 00 00`),
    ),
    'interface 2; timestamp = end (ns, high word first); isb_starttime, isb_endtime (same layout); isb_ifrecv u64 2^32+1; isb_ifdrop 7; comment',
  );
  t.equal(
    spaced(interfaceStatistics({ ifid: 0, start, end, received: 12 })),
    spaced(
      hex(`
      05 00 00 00   40 00 00 00
      00 00 00 00   85 57 34 16   00 65 6d f6
      02 00 08 00   85 57 34 16   01 00 a0 d8
      03 00 08 00   85 57 34 16   00 65 6d f6
      04 00 08 00   0c 00 00 00   00 00 00 00
      00 00 00 00
      40 00 00 00`),
    ),
    'without drops and comment: no isb_ifdrop option',
  );
  const zero = interfaceStatistics({ ifid: 0, start, end, received: 0, dropped: 0 });
  t.equal(spaced(zero.subarray(56, 68)), spaced(hex('05 00 08 00 00 00 00 00 00 00 00 00')), 'a drop count of 0 is written (isb_ifdrop 0)');
});

t.test('a file made of the encoders, read by tshark and capinfos', async (t) => {
  const dir = workDir(t, 'pcapng-unit');
  const file = path.join(dir, 'small.pcapng');
  const q = Buffer.from('tdtest');
  const pk = (sec: number, pkttype: number, data: Buffer, ifindex = 1): SllPacket => ({
    sec,
    nsec: 5,
    len: data.length,
    ifindex,
    protocol: data[0] >> 4 === 6 ? ETH_P_IPV6 : ETH_P_IP,
    hatype: ARPHRD_LOOPBACK,
    pkttype,
    data,
  });
  const packets = [
    pk(1_700_000_000, PACKET_OUTGOING, ip4('192.0.2.1', '198.18.0.7', 6, tcp(40000, 80, 0x02))),
    pk(1_700_000_001, PACKET_HOST, ip4('198.18.0.7', '192.0.2.1', 6, tcp(80, 40000, 0x12))),
    pk(1_700_000_002, PACKET_OUTGOING, ip6('2001:db8::1', 'fd00:198:18::7', 17, udp(5000, 6000, q)), 2),
  ];
  const epb = (p: SllPacket, ifid: number, pid: number, tid: number) => {
    const extra = processOptions(pid, tid, `pid=${pid} tid=${tid} comm=prog exe=/bin/prog`);
    const b = Buffer.alloc(enhancedPacketSize(p, extra));
    writeEnhancedPacket(b, 0, p, ifid, extra);
    return b;
  };
  const bytes = Buffer.concat([
    sectionHeader({ hardware: 'x86_64', os: 'Linux', userappl: 'tracedump test', comments: ['tracedump -- prog a b'] }),
    nameResolution([
      { address: v4('198.18.0.7'), name: 'web.example' },
      { address: v6('fd00:198:18::7'), name: 'v6.example' },
    ]),
    interfaceDescription('lo', 65535),
    epb(packets[0], 0, 100, 101),
    epb(packets[1], 0, 100, 101),
    interfaceDescription('eth9', 65535),
    epb(packets[2], 1, 200, 200),
    interfaceStatistics({ ifid: 0, start: 1_699_999_999_000_000_000n, end: 1_700_000_003_000_000_000n, received: 2, dropped: 0 }),
    interfaceStatistics({ ifid: 1, start: 1_699_999_999_000_000_000n, end: 1_700_000_003_000_000_000n, received: 1 }),
  ]);
  fs.writeFileSync(file, bytes);
  const parsed = readPcapng(bytes);
  t.same(parsed.problems, [], 'our reader finds no departure from the spec');

  const plain = run('tshark', ['-r', file]);
  t.equal(plain.status, 0, 'tshark -r succeeds');
  t.equal(plain.err, '', 'tshark says nothing on stderr');
  t.equal(lines(plain.out).length, 3, 'three packets');
  const f = run('tshark', ['-r', file, '-T', 'fields', '-e', 'frame.interface_name', '-e', 'frame.p2p_dir', '-e', 'frame.comment', '-e', 'frame.time_epoch']);
  t.same(
    lines(f.out),
    [
      'lo\t0\tpid=100 tid=101 comm=prog exe=/bin/prog\t1700000000.000000005',
      'lo\t1\tpid=100 tid=101 comm=prog exe=/bin/prog\t1700000001.000000005',
      'eth9\t0\tpid=200 tid=200 comm=prog exe=/bin/prog\t1700000002.000000005',
    ],
    'interface names, direction (0 sent, 1 received), comments, nanosecond times',
  );
  const names = run('tshark', ['-r', file, '-N', 'n', '-o', 'nameres.use_external_name_resolver:FALSE', '-T', 'fields', '-e', 'ip.dst_host', '-e', 'ipv6.dst_host']);
  t.same(lines(names.out), ['web.example\t', '192.0.2.1\t', '\tv6.example'], 'tshark -N n names the addresses from the NRB');
  const info = run('capinfos', [file]);
  t.equal(info.status, 0, 'capinfos succeeds');
  t.equal(info.err, '', 'capinfos says nothing on stderr');
  t.match(info.out, /^Capture hardware:\s+x86_64$/m, 'shb_hardware');
  t.match(info.out, /^Capture oper-sys:\s+Linux$/m, 'shb_os');
  t.match(info.out, /^Capture application:\s+tracedump test$/m, 'shb_userappl');
  t.match(info.out, /^Capture comment:\s+tracedump -- prog a b$/m, 'section comment');
  t.match(info.out, /^Number of interfaces in file: 2$/m, 'two interfaces');
  t.match(info.out, /Interface #0 info:\n\s+Name = lo\n[\s\S]*?Time precision = nanoseconds \(9\)[\s\S]*?Number of stat entries = 1\n\s+Number of packets = 2\n/, 'interface 0: lo, ns, one ISB, 2 packets');
  t.match(info.out, /Interface #1 info:\n\s+Name = eth9\n[\s\S]*?Number of stat entries = 1\n\s+Number of packets = 1\n/, 'interface 1: eth9, one ISB, 1 packet');
  const n = run('capinfos', ['-n', file]);
  t.match(n.out, /Number of resolved IPv4 addresses in file: 1\n/, 'capinfos -n: one IPv4 name');
  t.match(n.out, /Number of resolved IPv6 addresses in file: 1\n/, 'capinfos -n: one IPv6 name');
  const isb = isbFields(file);
  t.same(isb, [['2', '0'], ['1', '']], 'ISB received/dropped as Wireshark reads them (MIME Files Format view)');
});

/** isb_ifrecv and isb_ifdrop of each ISB, as Wireshark's own pcapng file dissector reads them. */
function isbFields(file: string): string[][] {
  const r = run('tshark', ['-r', file, '-X', 'read_format:MIME Files Format', '-V']);
  const out: string[][] = [];
  for (const blk of r.out.split(/\n(?=\s+Block: )/)) {
    if (!/Block: Interface Statistics Block/.test(blk)) continue;
    out.push([/Number of Received Packets: (\d+)/.exec(blk)?.[1] ?? '', /Number of Dropped Packets: (\d+)/.exec(blk)?.[1] ?? '']);
  }
  return out;
}

// ---- the DNS answer parser ------------------------------------------------------------------

function dnsName(name: string): Buffer {
  const parts: Buffer[] = [];
  for (const l of name.split('.').filter((x) => x)) parts.push(Buffer.from([l.length]), Buffer.from(l, 'latin1'));
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

const u16 = (n: number) => Buffer.from([n >> 8, n & 255]);

function rr(owner: Buffer, type: number, rdata: Buffer): Buffer {
  return Buffer.concat([owner, u16(type), u16(1), hex('00 00 00 3c'), u16(rdata.length), rdata]);
}

function question(name: string, type = 1): Buffer {
  return Buffer.concat([dnsName(name), u16(type), u16(1)]);
}

function dnsMessage(o: { flags?: number; qd?: Buffer[]; an?: Buffer[]; qdcount?: number; ancount?: number }): Buffer {
  const qd = o.qd ?? [];
  const an = o.an ?? [];
  const h = Buffer.concat([u16(0x1234), u16(o.flags ?? 0x8180), u16(o.qdcount ?? qd.length), u16(o.ancount ?? an.length), u16(0), u16(0)]);
  return Buffer.concat([h, ...qd, ...an]);
}

const PTR_Q = hex('c0 0c'); // the question's name, at offset 12
const fromServer = (m: Buffer, sport = 53) => ip4('192.0.2.53', '192.0.2.1', 17, udp(sport, 40000, m));
const names = (ip: Buffer) => resolvedNames(ip).map((r) => `${ipText(r.address)} ${r.name}`);

t.test('DNS answers: A and AAAA', async (t) => {
  const a = dnsMessage({ qd: [question('tdtest.example')], an: [rr(PTR_Q, 1, v4('198.51.100.7'))] });
  t.same(names(fromServer(a)), ['198.51.100.7 tdtest.example'], 'an A answer, its owner a compression pointer');
  t.same(resolvedNames(fromServer(a))[0]?.address, v4('198.51.100.7'), 'the address as 4 bytes');
  const aaaa = dnsMessage({ qd: [question('tdtest.example', 28)], an: [rr(PTR_Q, 28, v6('2001:db8::7'))] });
  const r6 = resolvedNames(ip6('2001:db8::53', '2001:db8::1', 17, udp(53, 40000, aaaa)));
  t.same(r6.map((r) => `${ipText(r.address)} ${r.name}`), ['2001:db8:0:0:0:0:0:7 tdtest.example'], 'an AAAA answer over IPv6');
  t.equal(r6[0].address.length, 16, 'the address as 16 bytes');
  const several = dnsMessage({
    qd: [question('multi.example')],
    an: [rr(PTR_Q, 1, v4('10.0.0.1')), rr(PTR_Q, 1, v4('10.0.0.2')), rr(dnsName('multi.example'), 28, v6('2001:db8::2'))],
  });
  t.same(names(fromServer(several)), ['10.0.0.1 multi.example', '10.0.0.2 multi.example', '2001:db8:0:0:0:0:0:2 multi.example'], 'every A/AAAA answer, uncompressed owner too');
  const mixed = dnsMessage({
    qd: [question('mx.example', 15)],
    an: [rr(PTR_Q, 15, Buffer.concat([u16(10), dnsName('mail.example')])), rr(PTR_Q, 16, Buffer.from('\x05hello')), rr(PTR_Q, 1, v4('10.9.9.9'))],
  });
  t.same(names(fromServer(mixed)), ['10.9.9.9 mx.example'], 'MX and TXT answers are skipped, the A after them taken');
  const badLen = dnsMessage({ qd: [question('odd.example')], an: [rr(PTR_Q, 1, hex('01 02 03 04 05')), rr(PTR_Q, 28, v4('10.0.0.3')), rr(PTR_Q, 1, v4('10.0.0.4'))] });
  t.same(names(fromServer(badLen)), ['10.0.0.4 odd.example'], 'an A of 5 bytes and an AAAA of 4 are not addresses');
  const withOpts = ip4('192.0.2.53', '192.0.2.1', 17, udp(53, 40000, a), { options: hex('01 01 01 00') });
  t.same(names(withOpts), ['198.51.100.7 tdtest.example'], 'an IPv4 header with options (IHL 6)');
  t.same(names(ip4('192.0.2.53', '192.0.2.1', 17, udp(53, 40000, a), { dontFragment: true })), ['198.51.100.7 tdtest.example'], 'DF set is not a fragment');
});

t.test('DNS answers: a CNAME chain, compressed, then A and AAAA named by the question', async (t) => {
  // www.example.com CNAME cdn.example.net; cdn.example.net CNAME edge.<ptr example.net>;
  // edge.example.net A and AAAA, owners as pointers into the CNAME data
  const head = dnsMessage({ qd: [question('www.example.com')], ancount: 4 });
  const parts: Buffer[] = [head];
  const at = () => parts.reduce((n, b) => n + b.length, 0);
  const ptr = (off: number) => Buffer.from([0xc0 | (off >> 8), off & 255]);
  parts.push(rr(PTR_Q, 5, dnsName('cdn.example.net')));
  const cdn = at() - dnsName('cdn.example.net').length; // where the CNAME data starts
  const edgeData = Buffer.concat([Buffer.from([4]), Buffer.from('edge'), ptr(cdn + 4)]); // 'edge' + ptr to 'example.net'
  parts.push(rr(ptr(cdn), 5, edgeData));
  const edge = at() - edgeData.length;
  parts.push(rr(ptr(edge), 1, v4('203.0.113.9')));
  parts.push(rr(ptr(edge), 28, v6('2001:db8::9')));
  const m = Buffer.concat(parts);
  t.same(names(fromServer(m)), ['203.0.113.9 www.example.com', '2001:db8:0:0:0:0:0:9 www.example.com'], 'the addresses, named by the name first asked');
});

t.test('DNS answers: what is not a usable answer gives nothing', async (t) => {
  const good = dnsMessage({ qd: [question('tdtest.example')], an: [rr(PTR_Q, 1, v4('198.51.100.7'))] });
  const withFlags = (flags: number) => dnsMessage({ flags, qd: [question('tdtest.example')], an: [rr(PTR_Q, 1, v4('198.51.100.7'))] });
  const cases: Array<[string, Buffer]> = [
    ['a query (QR 0), even with an answer section', fromServer(withFlags(0x0100))],
    ['NXDOMAIN (rcode 3)', fromServer(withFlags(0x8183))],
    ['SERVFAIL (rcode 2)', fromServer(withFlags(0x8182))],
    ['REFUSED (rcode 5)', fromServer(withFlags(0x8185))],
    ['no answers', fromServer(dnsMessage({ qd: [question('tdtest.example')] }))],
    ['no question', fromServer(dnsMessage({ an: [rr(hex('00'), 1, v4('1.2.3.4'))] }))],
    ['two questions', fromServer(dnsMessage({ qd: [question('a.example'), question('b.example')], an: [rr(PTR_Q, 1, v4('1.2.3.4'))] }))],
    ['the root as the question', fromServer(dnsMessage({ qd: [question('')], an: [rr(hex('00'), 1, v4('1.2.3.4'))] }))],
    ['source port 5353, not 53', fromServer(good, 5353)],
    ['to port 53 (the query direction)', ip4('192.0.2.1', '192.0.2.53', 17, udp(40000, 53, good))],
    ['TCP from port 53', ip4('192.0.2.53', '192.0.2.1', 6, Buffer.concat([tcp(53, 40000, 0x18), good]))],
    ['a first IPv4 fragment (MF)', ip4('192.0.2.53', '192.0.2.1', 17, udp(53, 40000, good), { moreFragments: true })],
    ['a later IPv4 fragment', ip4('192.0.2.53', '192.0.2.1', 17, udp(53, 40000, good), { fragOffset: 3 })],
    ['not IP at all', Buffer.concat([hex('00 11 22 33'), good])],
    ['empty', Buffer.alloc(0)],
    ['a question name with a pointer', fromServer(dnsMessage({ qd: [Buffer.concat([hex('c0 0c'), u16(1), u16(1)])], an: [rr(PTR_Q, 1, v4('1.2.3.4'))] }))],
    ['a question label running past the end', fromServer(Buffer.concat([dnsMessage({ ancount: 1, qdcount: 1 }), hex('3f 61 62')]))],
    ['an answer whose data runs past the end', fromServer(Buffer.concat([dnsMessage({ qd: [question('x.example')], ancount: 1 }), PTR_Q, u16(1), u16(1), hex('00 00 00 3c'), u16(200), v4('1.2.3.4')]))],
    ['a question of 130 labels', fromServer(dnsMessage({ qd: [question(Array(130).fill('a').join('.'))], an: [rr(PTR_Q, 1, v4('1.2.3.4'))] }))],
  ];
  for (const [what, ip] of cases) {
    let r: unknown;
    t.doesNotThrow(() => (r = resolvedNames(ip)), `${what}: no throw`);
    t.same(r, [], `${what}: nothing`);
  }
});

t.test('DNS answers: truncated and damaged packets never throw', async (t) => {
  const m = dnsMessage({ qd: [question('tdtest.example')], an: [rr(PTR_Q, 1, v4('198.51.100.7'))] });
  for (const ip of [fromServer(m), ip6('2001:db8::53', '2001:db8::1', 17, udp(53, 40000, m))]) {
    const bad: number[] = [];
    for (let n = 0; n < ip.length; n++) {
      try {
        if (resolvedNames(ip.subarray(0, n)).length) bad.push(n);
      } catch {
        bad.push(-n - 1);
      }
    }
    t.same(bad, [], `IPv${ip[0] >> 4}: every prefix of the ${ip.length}-byte packet gives nothing, without throwing`);
    t.equal(resolvedNames(ip).length, 1, `IPv${ip[0] >> 4}: the whole packet gives its answer`);
  }
  // more answers announced than present: those present count
  const short = dnsMessage({ qd: [question('tdtest.example')], an: [rr(PTR_Q, 1, v4('198.51.100.7'))], ancount: 5 });
  t.same(names(fromServer(short)), ['198.51.100.7 tdtest.example'], 'ancount 5 with one answer: that one');
  // a pointer to itself in an answer owner is skipped like any pointer: no loop
  const loop = dnsMessage({ qd: [question('tdtest.example')], an: [rr(hex('c0 20'), 1, v4('198.51.100.8'))] });
  t.same(names(fromServer(loop)), ['198.51.100.8 tdtest.example'], 'a self-referencing owner name does not loop');
  // a flood of answers stays bounded
  const flood = dnsMessage({ qd: [question('many.example')], an: Array.from({ length: 100 }, (_, i) => rr(PTR_Q, 1, v4(`10.0.${i}.1`))) });
  const fl = resolvedNames(fromServer(flood));
  t.ok(fl.length > 0 && fl.length <= 100, `100 answers: ${fl.length} taken`);
  // random bytes and random damage
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 255;
  let threw = 0;
  let odd = 0;
  for (let i = 0; i < 3000; i++) {
    let payload: Buffer;
    if (i % 2) {
      payload = Buffer.from(m);
      for (let k = 0; k < 1 + (i % 5); k++) payload[rnd() % payload.length] = rnd();
    } else {
      payload = Buffer.from(Array.from({ length: rnd() % 80 }, rnd));
      if (payload.length > 3) payload[2] |= 0x80; // a response, mostly
    }
    try {
      for (const r of resolvedNames(fromServer(payload))) if ((r.address.length !== 4 && r.address.length !== 16) || typeof r.name !== 'string') odd++;
    } catch {
      threw++;
    }
  }
  t.equal(threw, 0, '3000 random and damaged payloads: no throw');
  t.equal(odd, 0, 'every result is a 4- or 16-byte address with a name');
});

// DNS labels are octets; NRB names are NUL-terminated (UTF-8) strings: a label with a NUL is
// no host name (left out), UTF-8 bytes stay UTF-8.
t.test(
  'NRB names from labels with a NUL byte or raw UTF-8',
  async (t) => {
    const q = (label: Buffer) => Buffer.concat([Buffer.from([label.length]), label, dnsName('example'), u16(1), u16(1)]);
    const nrbOf = (label: Buffer) => {
      const found = resolvedNames(fromServer(dnsMessage({ qd: [q(label)], an: [rr(PTR_Q, 1, v4('10.0.0.1'))] })));
      const file = Buffer.concat([sectionHeader({ hardware: 'h', os: 'o', userappl: 'u' }), nameResolution(found)]);
      return readPcapng(file).nrbs[0]?.records ?? [];
    };
    const nul = nrbOf(hex('61 00 62'));
    t.ok(
      nul.every((r) => r.names.length === 1),
      `a NUL inside a label must not split the record into several names (got ${JSON.stringify(nul.map((r) => r.names))})`,
    );
    t.same(nul, [], 'a name with a NUL in a label is left out');
    const utf8 = nrbOf(hex('c3 a9'));
    t.same(
      utf8.map((r) => r.names),
      [['é.example']],
      `a label of UTF-8 bytes keeps them (not re-encoded as latin1 -> UTF-8: got ${JSON.stringify(utf8.map((r) => r.names))})`,
    );
  },
);

// ---- real captures ----------------------------------------------------------------------------

const SERVER_PY = String.raw`
import socket, threading
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(('127.0.0.1', 0)); t.listen(64)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('127.0.0.1', 0))
print('ready %d %d' % (t.getsockname()[1], u.getsockname()[1]), flush=True)
def conn(c):
    try:
        c.settimeout(20); d = b''
        while not d.endswith(b'\n'):
            x = c.recv(256)
            if not x: break
            d += x
        c.sendall(b'pong ' + d)
    except OSError: pass
    finally: c.close()
def accept():
    while True:
        c, _ = t.accept()
        threading.Thread(target=conn, args=(c,), daemon=True).start()
threading.Thread(target=accept, daemon=True).start()
while True:
    d, a = u.recvfrom(2048)
    u.sendto(b'pong ' + d, a)
`;

// The traced program: 3 forked children (released together) each make a TCP connection and a
// UDP exchange; the parent makes a TCP connection from its main thread and one from a thread.
// Every socket is recorded (JSON line, O_APPEND) with its local port, pid, tid and comm.
const PROG_PY = String.raw`
import os, sys, json, socket, threading
host, tport, uport, rec = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def log(**kw):
    fd = os.open(rec, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, (json.dumps(kw) + '\n').encode()); os.close(fd)
def me():
    return dict(pid=os.getpid(), tid=threading.get_native_id(), comm=open('/proc/self/comm').read().strip())
def tcp(role):
    c = socket.create_connection((host, tport), timeout=20)
    c.sendall(('ping %s\n' % role).encode())
    r = b''
    while True:
        x = c.recv(256)
        if not x: break
        r += x
    lp = c.getsockname()[1]; c.close()
    assert r.startswith(b'pong'), r
    log(role=role, proto='tcp', port=lp, **me())
def udp(role):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(20)
    u.sendto(('uping %s' % role).encode(), (host, uport))
    r = u.recv(256); lp = u.getsockname()[1]; u.close()
    assert r.startswith(b'pong'), r
    log(role=role, proto='udp', port=lp, **me())
r, w = os.pipe()
kids = []
for i in range(3):
    pid = os.fork()
    if pid == 0:
        os.close(w)
        os.read(r, 1)
        try:
            tcp('child%d' % i); udp('child%d' % i)
            print('child', os.getpid(), flush=True)
            os._exit(0)
        except BaseException as e:
            print('child failed', e, flush=True); os._exit(1)
    kids.append(pid)
os.close(r)
os.write(w, b'go!')
tcp('parent')
th = threading.Thread(target=tcp, args=('thread',)); th.start(); th.join()
bad = 0
for k in kids:
    _, st = os.waitpid(k, 0)
    bad |= st
sys.exit(1 if bad else 0)
`;

interface SockRecord {
  role: string;
  proto: 'tcp' | 'udp';
  port: number;
  pid: number;
  tid: number;
  comm: string;
}

const myPids = new Set<number>();

function readRecords(file: string): SockRecord[] {
  if (!fs.existsSync(file)) return [];
  const recs = lines(fs.readFileSync(file, 'utf8')).map((l) => JSON.parse(l) as SockRecord);
  for (const r of recs) myPids.add(r.pid);
  return recs;
}

async function startPy(t: Parameters<typeof startBg>[0], script: string, args: string[]): Promise<{ bg: Bg; words: string[] }> {
  const bg = startBg(t, [PY, script, ...args]);
  myPids.add(bg.pid);
  const m = await bg.waitFor(/^ready (.*)\n/m, 15_000); // whole line (PYTHONUNBUFFERED may split it)
  return { bg, words: m[1].trim().split(/\s+/) };
}

t.test('3 forked children, a parent and its thread: pid, tid and comment of every packet', async (t) => {
  const dir = workDir(t, 'pcapng');
  const serverPy = path.join(dir, 'server.py');
  const progPy = path.join(dir, 'prog.py');
  fs.writeFileSync(serverPy, SERVER_PY);
  fs.writeFileSync(progPy, PROG_PY);
  const { words } = await startPy(t, serverPy, []);
  const [tport, uport] = words.map(Number);
  const out = path.join(dir, 'out.pcapng');
  const rec = path.join(dir, 'socks.jsonl');
  const command = [PY, progPy, '127.0.0.1', String(tport), String(uport), rec];
  const r = await runTracedump(t, ['-q', '-w', out], command, { timeoutMs: 120_000 });
  t.equal(r.status, 0, `tracedump and the program succeeded (${r.stderr.slice(-400)})`);
  t.equal(r.stderr, '', 'tracedump -q says nothing');
  const recs = readRecords(rec);
  t.equal(recs.length, 3 * 2 + 2, 'the program recorded 8 sockets (3 children x TCP+UDP, parent TCP, thread TCP)');
  const childPids = [...new Set(recs.filter((x) => x.role.startsWith('child')).map((x) => x.pid))];
  t.equal(childPids.length, 3, 'three children');
  const parent = recs.find((x) => x.role === 'parent');
  const thread = recs.find((x) => x.role === 'thread');
  t.ok(parent && thread && parent.pid === thread.pid && parent.tid !== thread.tid, 'the thread shares the parent pid, with its own tid');
  t.notOk(childPids.includes(parent?.pid ?? -1), 'children have their own pids');

  const ng = readPcapng(fs.readFileSync(out));
  t.same(ng.problems, [], 'the file is well-formed pcapng (block lengths, options, padding, record ends)');
  t.equal(ng.idbs.length, 1, 'one interface');
  t.equal(optStr(ng.idbs[0]?.options ?? [], IF_NAME), 'lo', 'if_name lo');
  t.same(opt(ng.idbs[0]?.options ?? [], IF_TSRESOL), Buffer.from([9]), 'if_tsresol 9 (ns)');
  t.equal(ng.idbs[0]?.linktype, 276, 'LINKTYPE_LINUX_SLL2');
  t.equal(optStr(ng.shbOptions, OPT_COMMENT), `tracedump -- ${command.join(' ')}`, 'the section comment is the traced command line');
  t.match(optStr(ng.shbOptions, SHB_USERAPPL), /^tracedump \S+$/, 'shb_userappl: tracedump and its version');
  t.equal(optStr(ng.shbOptions, SHB_OS), `${os.type()} ${os.release()}`, 'shb_os');
  t.ok(optStr(ng.shbOptions, SHB_HARDWARE)?.startsWith(os.arch()), 'shb_hardware starts with the architecture');

  // every packet belongs to one recorded socket: the client side is the end that is not a server port
  const byKey = new Map(recs.map((x) => [`${x.proto}/${x.port}`, x]));
  const exe = fs.realpathSync(PY);
  const views = ng.epbs.map(view);
  const unowned: string[] = [];
  const wrong: string[] = [];
  const perSocket = new Map<SockRecord, PacketView[]>();
  for (const v of views) {
    const server = v.proto === 'tcp' ? tport : v.proto === 'udp' ? uport : -1;
    const client = v.sport === server ? v.dport : v.dport === server ? v.sport : -1;
    const owner = byKey.get(`${v.proto}/${client}`);
    const desc = `frame ${v.frame} ${v.proto} ${v.src}:${v.sport} > ${v.dst}:${v.dport}`;
    if (!owner) {
      unowned.push(desc);
      continue;
    }
    perSocket.set(owner, [...(perSocket.get(owner) ?? []), v]);
    const want = `pid=${owner.pid} tid=${owner.tid} comm=${owner.comm} exe=${exe}`;
    if (v.pid !== owner.pid || v.tid !== owner.tid) wrong.push(`${desc}: option 8 says pid ${v.pid} tid ${v.tid}, the socket is ${owner.pid}/${owner.tid} (${owner.role})`);
    if (v.comment !== want) wrong.push(`${desc}: comment "${v.comment}", want "${want}"`);
    if (v.direction !== (v.pkttype === PACKET_OUTGOING ? 2 : 1)) wrong.push(`${desc}: epb_flags direction ${v.direction} for pkttype ${v.pkttype}`);
  }
  t.same(unowned, [], 'no packet that is not of a recorded socket');
  t.same(wrong, [], `every packet (${views.length}) carries its socket's pid and tid (option 8), the comment "pid=N tid=N comm=NAME exe=PATH" and its direction`);
  for (const x of recs) {
    const n = perSocket.get(x)?.length ?? 0;
    if (x.proto === 'udp') t.equal(n, 2, `${x.role} UDP ${x.port}: the datagram and its answer`);
    else t.ok(n >= 6, `${x.role} TCP ${x.port}: ${n} packets (handshake, data, close)`);
  }

  // tshark and capinfos
  const plain = run('tshark', ['-r', out]);
  t.equal(plain.status, 0, 'tshark -r succeeds');
  t.equal(plain.err, '', 'tshark: no warning or error on stderr');
  t.equal(lines(plain.out).length, views.length, 'tshark shows every packet');
  const expert = run('tshark', ['-r', out, '-q', '-z', 'expert,warn']);
  t.notMatch(expert.out, /(Errors|Warnings) \(\d+\)/, 'tshark expert info: no warnings or errors (no missing segment, no malformed packet)');
  const structure = run('tshark', ['-r', out, '-X', 'read_format:MIME Files Format', '-T', 'fields', '-e', '_ws.expert.message']);
  t.same(lines(structure.out).filter((l) => l.trim()), [], "Wireshark's pcapng file dissector finds nothing wrong in the blocks");
  const comments = run('tshark', ['-r', out, '-T', 'fields', '-e', 'frame.number', '-e', 'frame.comment']);
  t.same(lines(comments.out), views.map((v) => `${v.frame}\t${v.comment}`), 'tshark shows each comment as frame.comment');
  for (const pid of [...childPids, parent?.pid ?? 0]) {
    const sel = run('tshark', ['-r', out, '-Y', `frame.comment contains "pid=${pid} "`, '-T', 'fields', '-e', 'frame.number']);
    const want = views.filter((v) => v.pid === pid).map((v) => String(v.frame));
    t.ok(want.length > 0, `pid ${pid} has packets`);
    t.same(lines(sel.out), want, `-Y 'frame.comment contains "pid=${pid} "' selects exactly its ${want.length} packets`);
  }
  const info = run('capinfos', [out]);
  t.equal(info.status, 0, 'capinfos succeeds');
  t.equal(info.err, '', 'capinfos: no warning or error');
  t.match(info.out, new RegExp(`^Capture comment:\\s+tracedump -- ${PY} ${progPy} `, 'm'), 'capinfos shows the command line');
  t.match(info.out, /^Capture application:\s+tracedump \S+$/m, 'capinfos shows the application tracedump');
  t.match(info.out, /^Number of interfaces in file: 1$/m, 'one interface');
  t.match(info.out, /Interface #0 info:\n\s+Name = lo\n/, 'named lo');
  t.match(info.out, new RegExp(`Number of stat entries = 1\\n\\s+Number of packets = ${views.length}\\n`), 'one ISB; every packet on it');

  // interface statistics
  t.equal(ng.isbs.length, 1, 'one ISB per interface');
  const isb = ng.isbs[0];
  if (isb) {
    t.equal(isb.ifid, 0, 'for interface 0');
    const start = opt(isb.options, ISB_STARTTIME);
    const end = opt(isb.options, ISB_ENDTIME);
    t.equal(opt(isb.options, ISB_IFRECV)?.readBigUInt64LE(0), BigInt(views.length), 'isb_ifrecv: the packets written');
    t.equal(opt(isb.options, ISB_IFDROP)?.readBigUInt64LE(0), 0n, 'isb_ifdrop: 0');
    t.ok(start && end, 'isb_starttime and isb_endtime');
    if (start && end) {
      const s = readTs(start, 0);
      const e = readTs(end, 0);
      t.ok(s <= views[0].ts, 'the capture starts before the first packet');
      t.ok(e >= views[views.length - 1].ts, 'and ends after the last');
      t.equal(isb.ts, e, 'the block timestamp is the end time');
    }
    t.same(isbFields(out), [[String(views.length), '0']], 'Wireshark reads the same counts (MIME Files Format view of the file)');
  }
  const left = childPids.filter((p) => fs.existsSync(`/proc/${p}`));
  t.same(left, [], 'the children are gone');
});

// A DNS server on port 53 of a loopback address of its own (tracedump names what comes from
// UDP port 53 only): A tdtest.example -> 198.18.0.7, AAAA -> fd00:198:18::7,
// A tdtest-lo.example -> 127.0.0.1.
const DNS_PY = String.raw`
import socket, struct, sys
s = None
for i in range(1, 40):
    addr = '127.53.%d.1' % i
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((addr, 53)); break
    except OSError:
        s.close(); s = None
if s is None:
    print('no free port 53 on 127.53.*.1', flush=True); sys.exit(1)
print('ready ' + addr, flush=True)
while True:
    q, a = s.recvfrom(2048)
    if len(q) < 17: continue
    i = 12; labels = []
    while q[i]:
        labels.append(q[i+1:i+1+q[i]].decode()); i += 1 + q[i]
    name = '.'.join(labels); qtype = struct.unpack('>H', q[i+1:i+3])[0]
    if qtype == 1:
        rdata = socket.inet_aton('127.0.0.1' if name == 'tdtest-lo.example' else '198.18.0.7')
    elif qtype == 28:
        rdata = socket.inet_pton(socket.AF_INET6, 'fd00:198:18::7')
    else:
        rdata = None
    an = b'' if rdata is None else b'\xc0\x0c' + struct.pack('>HHIH', qtype, 1, 60, len(rdata)) + rdata
    s.sendto(q[:2] + struct.pack('>HHHHH', 0x8180, 1, 1 if an else 0, 0, 0) + q[12:i+5] + an, a)
`;

const CLIENT_PY = String.raw`
import socket, struct, sys
dns, tport = sys.argv[1], int(sys.argv[2])
def query(name, qtype, qid):
    q = struct.pack('>HHHHHH', qid, 0x0100, 1, 0, 0, 0)
    for l in name.split('.'): q += bytes([len(l)]) + l.encode()
    q += b'\0' + struct.pack('>HH', qtype, 1)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(10)
    u.sendto(q, (dns, 53)); r = u.recv(2048); u.close()
    return r
query('tdtest.example', 1, 1)
query('tdtest.example', 28, 2)
r = query('tdtest-lo.example', 1, 3)
addr = socket.inet_ntoa(r[-4:])
c = socket.create_connection((addr, tport), timeout=10)
c.sendall(b'hello\n')
while c.recv(256): pass
c.close()
print('connected ' + addr, flush=True)
`;

t.test('names the program resolved: NRB blocks, and tshark -N n uses them', async (t) => {
  const dir = workDir(t, 'pcapng-nrb');
  const serverPy = path.join(dir, 'server.py');
  const dnsPy = path.join(dir, 'dns.py');
  const clientPy = path.join(dir, 'client.py');
  fs.writeFileSync(serverPy, SERVER_PY);
  fs.writeFileSync(dnsPy, DNS_PY);
  fs.writeFileSync(clientPy, CLIENT_PY);
  const [tport] = (await startPy(t, serverPy, [])).words.map(Number);
  const [dnsAddr] = (await startPy(t, dnsPy, [])).words;
  const out = path.join(dir, 'out.pcapng');
  const r = await runTracedump(t, ['-q', '-w', out], [PY, clientPy, dnsAddr, String(tport)], { timeoutMs: 60_000 });
  t.equal(r.status, 0, `tracedump and the client succeeded (${r.stderr.slice(-400)})`);
  t.match(r.stdout, /connected 127\.0\.0\.1/, 'the client connected to the address it resolved');

  const ng = readPcapng(fs.readFileSync(out));
  t.same(ng.problems, [], 'the file is well-formed pcapng');
  const views = ng.epbs.map(view);
  const records = ng.nrbs.flatMap((b) => b.records.map((x) => `${ipText(x.address)} ${x.names.join(',')}`));
  t.same(
    records.sort(),
    ['127.0.0.1 tdtest-lo.example', '198.18.0.7 tdtest.example', 'fd00:198:18:0:0:0:0:7 tdtest.example'],
    'the NRBs hold the A and AAAA answers, named by the question, each once',
  );
  t.same(
    ng.nrbs.map((b) => b.records.every((x) => x.type === (x.address.length === 4 ? NRB_IPV4 : NRB_IPV6))),
    ng.nrbs.map(() => true),
    'nrb_record_ipv4 for IPv4, nrb_record_ipv6 for IPv6',
  );
  const placement = ng.nrbs.map((b) => {
    const before = views[b.afterFrame - 1];
    return before ? `${before.proto} from ${before.src}:${before.sport}` : 'at the start';
  });
  t.same(placement, ng.nrbs.map(() => `udp from ${dnsAddr}:53`), 'each NRB follows the DNS answer it comes from');
  t.equal(views.filter((v) => v.proto === 'udp').length, 6, 'three queries and three answers');

  const tcpHosts = run('tshark', ['-r', out, '-N', 'n', '-o', 'nameres.use_external_name_resolver:FALSE', '-Y', `tcp.port == ${tport}`, '-T', 'fields', '-e', 'ip.src_host', '-e', 'ip.dst_host']);
  t.equal(tcpHosts.err, '', 'tshark -N n: nothing on stderr');
  const hostLines = lines(tcpHosts.out);
  t.ok(hostLines.length >= 6, `${hostLines.length} TCP packets`);
  t.same([...new Set(hostLines)], ['tdtest-lo.example\ttdtest-lo.example'], 'with -N n tshark names 127.0.0.1 tdtest-lo.example (from the NRB) in every TCP packet');
  const unnamed = run('tshark', ['-r', out, '-Y', `tcp.port == ${tport}`, '-T', 'fields', '-e', 'ip.dst_host']);
  t.same([...new Set(lines(unnamed.out))], ['127.0.0.1'], 'without -N n: the address');
  const n = run('capinfos', ['-n', out]);
  t.match(n.out, /Number of resolved IPv4 addresses in file: 2\n/, 'capinfos -n: 2 IPv4 names');
  t.match(n.out, /Number of resolved IPv6 addresses in file: 1\n/, 'capinfos -n: 1 IPv6 name');
  const structure = run('tshark', ['-r', out, '-X', 'read_format:MIME Files Format', '-T', 'fields', '-e', 'pcapng.records.record.data.name']);
  t.same(lines(structure.out)[0]?.split(',').sort(), ['tdtest-lo.example', 'tdtest.example', 'tdtest.example'], "Wireshark's pcapng file dissector reads the same records");
});

t.test('no process of these tests left behind', async (t) => {
  await sleep(200);
  const left: string[] = [];
  for (const p of myPids) {
    try {
      left.push(`${p}: ${fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ')}`);
    } catch {
      /* gone */
    }
  }
  t.same(left, [], 'servers, DNS server, program and children are gone');
});

noLeftovers(t);
