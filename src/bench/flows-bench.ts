// The flows workload of the benchmark: a synthetic capture in tracedump's own pcapng (process
// options and comments on every packet, as a capture has them) of HTTPS connections (a TLS 1.3
// ClientHello with its server name, a ServerHello, application data records) and DNS lookups,
// 256 flows interleaved at a time, about 80 Mbit/s; then `tracedump flows` and
// `tshark -q -z conv,tcp -z conv,udp` on the same file, their time and peak RSS, at two sizes.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { interfaceDescription, processOptions, sectionHeader, writeEnhancedPacket } from '../output/pcapng';
import type { SllPacket } from '../output/pcap';
import { tsharkArgs as TSHARK_OBJECTS_ARGS } from '../objects/tshark';

const CONCURRENT = 256;
const ETH_P_IP = 0x0800;

function ipv4(src: number, dst: number, proto: number, l4: Buffer): Buffer {
  const b = Buffer.alloc(20 + l4.length);
  b[0] = 0x45;
  b.writeUInt16BE(b.length, 2);
  b[8] = 64;
  b[9] = proto;
  b.writeUInt32BE(src >>> 0, 12);
  b.writeUInt32BE(dst >>> 0, 16);
  l4.copy(b, 20);
  return b;
}

function tcp(sport: number, dport: number, seq: number, ack: number, flags: number, payload: Buffer): Buffer {
  const b = Buffer.alloc(20 + payload.length);
  b.writeUInt16BE(sport, 0);
  b.writeUInt16BE(dport, 2);
  b.writeUInt32BE(seq >>> 0, 4);
  b.writeUInt32BE(ack >>> 0, 8);
  b[12] = 0x50;
  b[13] = flags;
  b.writeUInt16BE(65535, 14);
  payload.copy(b, 20);
  return b;
}

const hex = (h: string) => Buffer.from(h.replace(/\s/g, ''), 'hex');
const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const ext = (type: number, body: Buffer) => Buffer.concat([u16(type), u16(body.length), body]);
const record = (type: number, body: Buffer) => Buffer.concat([Buffer.from([type, 3, 3]), u16(body.length), body]);
const handshake = (type: number, body: Buffer) => Buffer.concat([Buffer.from([type, 0, body.length >> 8, body.length & 0xff]), body]);

/** A TLS 1.3 ClientHello record naming `name`, offering h2 and http/1.1. */
function clientHello(name: string): Buffer {
  const host = Buffer.from(name);
  const sni = ext(0, Buffer.concat([u16(host.length + 3), Buffer.from([0]), u16(host.length), host]));
  const alpn = ext(16, Buffer.concat([u16(12), Buffer.from([2]), Buffer.from('h2'), Buffer.from([8]), Buffer.from('http/1.1')]));
  const versions = ext(43, hex('04 0304 0303'));
  const groups = ext(10, hex('0004 001d 0017'));
  const keyShare = ext(51, Buffer.concat([u16(36), u16(0x1d), u16(32), Buffer.alloc(32, 7)]));
  const exts = Buffer.concat([sni, alpn, versions, groups, keyShare]);
  const body = Buffer.concat([hex('0303'), Buffer.alloc(32, 1), Buffer.from([32]), Buffer.alloc(32, 2), u16(4), hex('1301 1302'), hex('0100'), u16(exts.length), exts]);
  return record(22, handshake(1, body));
}

/** A TLS 1.3 ServerHello record, then application data records to `size` bytes. */
function serverFirst(size: number): Buffer {
  const exts = Buffer.concat([ext(43, hex('0304')), ext(51, Buffer.concat([u16(0x1d), u16(32), Buffer.alloc(32, 9)]))]);
  const hello = record(22, handshake(2, Buffer.concat([hex('0303'), Buffer.alloc(32, 3), Buffer.from([32]), Buffer.alloc(32, 2), hex('1301 00'), u16(exts.length), exts])));
  return Buffer.concat([hello, appData(size - hello.length)]);
}

function appData(size: number): Buffer {
  return record(23, Buffer.alloc(Math.max(0, size - 5), 0x5a));
}

/** A DNS query for `name` (A), or its answer with `address`. */
function dns(name: string, address?: number): Buffer {
  const qname = Buffer.concat([...name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);
  const question = Buffer.concat([qname, hex('0001 0001')]);
  if (address === undefined) return Buffer.concat([hex('1234 0100 0001 0000 0000 0000'), question]);
  const a = Buffer.alloc(4);
  a.writeUInt32BE(address >>> 0);
  return Buffer.concat([hex('1234 8180 0001 0001 0000 0000'), question, hex('c00c 0001 0001 0000003c 0004'), a]);
}

const udp = (sport: number, dport: number, payload: Buffer) => Buffer.concat([u16(sport), u16(dport), u16(8 + payload.length), u16(0), payload]);

/** One flow's packets as [fromClient, ip] in order: an HTTPS exchange (TLS records), or a DNS query and answer. */
function flowPackets(i: number): [boolean, Buffer][] {
  const client = 0x0a000000 + (i % 65000) + 1; // 10.0.x.y
  const server = 0xc6120000 + (i % 4000) + 1; // 198.18.x.y
  const cport = 20000 + (i % 40000);
  const name = `svc-${i % 4000}.example.com`;
  if (i % 10 === 9) {
    return [
      [true, ipv4(client, 0x7f000035, 17, udp(cport, 53, dns(name)))],
      [false, ipv4(0x7f000035, client, 17, udp(53, cport, dns(name, server)))],
    ];
  }
  let c = 1000 * i;
  let s = 7000 * i;
  const out: [boolean, Buffer][] = [];
  const send = (fromClient: boolean, flags: number, payload: Buffer) => {
    const seq = fromClient ? c : s;
    const ack = fromClient ? s : c;
    const l4 = fromClient ? tcp(cport, 443, seq, ack, flags, payload) : tcp(443, cport, seq, ack, flags, payload);
    out.push([fromClient, ipv4(fromClient ? client : server, fromClient ? server : client, 6, l4)]);
    const adv = payload.length + (flags & 0x03 ? 1 : 0);
    if (fromClient) c += adv;
    else s += adv;
  };
  const none = Buffer.alloc(0);
  send(true, 0x02, none);
  send(false, 0x12, none);
  send(true, 0x10, none);
  send(true, 0x18, clientHello(name));
  send(false, 0x18, serverFirst(1400));
  for (let k = 0; k < 11; k++) send(false, 0x10, appData(1400));
  send(true, 0x18, appData(120));
  send(true, 0x11, none);
  send(false, 0x11, none);
  send(true, 0x10, none);
  return out;
}

/** Writes the capture until it holds at least `bytes`; returns its packet count. */
export function makeFlowsCapture(file: string, bytes: number): { packets: number; flows: number } {
  const fd = fs.openSync(file, 'w');
  const buf = Buffer.alloc(8 << 20);
  let used = 0;
  let written = 0;
  const flush = () => {
    fs.writeSync(fd, buf, 0, used);
    written += used;
    used = 0;
  };
  const put = (b: Buffer) => {
    if (used + b.length > buf.length) flush();
    b.copy(buf, used);
    used += b.length;
  };
  put(sectionHeader({ hardware: 'bench', os: 'Linux', userappl: 'tracedump bench (synthetic)' }));
  put(interfaceDescription('eth0', 262144));
  const opts = new Map<number, Buffer>();
  let packets = 0;
  let nextFlow = 0;
  let us = 1_700_000_000_000_000;
  const active: { packets: [boolean, Buffer][]; at: number; pid: number }[] = [];
  while (written + used < bytes || active.length) {
    while (active.length < CONCURRENT && written + used < bytes) {
      const pid = 1000 + (nextFlow % 50);
      active.push({ packets: flowPackets(nextFlow++), at: 0, pid });
    }
    for (let k = active.length - 1; k >= 0; k--) {
      const f = active[k];
      const [fromClient, ip] = f.packets[f.at++];
      us += 100; // 1 GB in about 100 s: some 80 Mbit/s
      let o = opts.get(f.pid);
      if (!o) {
        o = processOptions(f.pid, f.pid, `pid=${f.pid} tid=${f.pid} comm=app${f.pid % 5} exe=/usr/bin/app${f.pid % 5}`);
        opts.set(f.pid, o);
      }
      const p: SllPacket = { sec: Math.floor(us / 1e6), nsec: (us % 1e6) * 1000, len: ip.length, ifindex: 2, protocol: ETH_P_IP, hatype: 1, pkttype: fromClient ? 4 : 0, data: ip };
      const block = Buffer.alloc(8 + 20 + ip.length + 20 + 8 + o.length + 8 + 8);
      put(block.subarray(0, writeEnhancedPacket(block, 0, p, 0, o)));
      packets++;
      if (f.at === f.packets.length) active.splice(k, 1);
    }
  }
  flush();
  fs.closeSync(fd);
  return { packets, flows: nextFlow };
}

/** Runs argv with stdout to /dev/null: elapsed ms and the peak RSS (VmHWM) in KiB. */
export function measure(argv: string[]): Promise<{ ms: number; peakKiB: number; status: number | null }> {
  return new Promise((resolve) => {
    const start = process.hrtime.bigint();
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'inherit'] });
    let peak = 0;
    const sample = () => {
      try {
        const m = /VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) peak = Math.max(peak, Number(m[1]));
      } catch {
        /* gone */
      }
    };
    const timer = setInterval(sample, 50);
    child.on('exit', (status) => {
      clearInterval(timer);
      resolve({ ms: Number(process.hrtime.bigint() - start) / 1e6, peakKiB: peak, status });
    });
  });
}

export interface FlowsBenchRow {
  size: string;
  packets: number;
  flows: number;
  tracedump: { ms: number; peakKiB: number };
  /** The same run with V8's old space capped at 64 MiB: it ends well when what is kept is bounded. */
  capped: { ms: number; peakKiB: number; status: number | null };
  tshark: { ms: number; peakKiB: number } | undefined;
  /** `tracedump objects` and `tracedump stats` on the same file, and the tshark pass objects makes (its JSON, to /dev/null). */
  objects?: { ms: number; peakKiB: number; status: number | null };
  stats?: { ms: number; peakKiB: number; status: number | null };
  tsharkJson?: { ms: number; peakKiB: number };
}

/** The flows workload at each size (bytes), tshark beside it when installed. */
export async function flowsBench(cli: string, cliModule: string, dir: string, sizes: number[]): Promise<FlowsBenchRow[]> {
  const rows: FlowsBenchRow[] = [];
  const haveTshark = (process.env.PATH ?? '').split(':').some((d) => fs.existsSync(path.join(d, 'tshark')));
  for (const size of sizes) {
    const file = path.join(dir, `flows-${size}.pcapng`);
    const made = makeFlowsCapture(file, size);
    try {
      const td = await measure([cli, 'flows', '--json', file]);
      if (td.status !== 0) throw new Error(`tracedump flows exited ${td.status}`);
      const capped = await measure([process.execPath, '--max-old-space-size=64', cliModule, 'flows', '--json', file]);
      const ts = haveTshark ? await measure(['tshark', '-r', file, '-q', '-z', 'conv,tcp', '-z', 'conv,udp']) : undefined;
      const row: FlowsBenchRow = { size: `${(fs.statSync(file).size / 1e6).toFixed(0)} MB`, packets: made.packets, flows: made.flows, tracedump: td, capped, tshark: ts };
      if (haveTshark) {
        row.objects = await measure([cli, 'objects', '--json', file]);
        row.stats = await measure([cli, 'stats', '--json', file]);
        row.tsharkJson = await measure(['tshark', ...TSHARK_OBJECTS_ARGS(file)]);
      }
      rows.push(row);
    } finally {
      fs.rmSync(file, { force: true });
    }
  }
  return rows;
}
