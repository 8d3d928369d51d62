// Crafted captures for the flow tests: IPv4 TCP conversations whose sequence and
// acknowledgment numbers follow the bytes sent, UDP and ICMP datagrams, written as a classic
// pcap of raw IP packets (LINKTYPE_RAW) that tshark and tracedump both read.
import fs from 'node:fs';
import { icmp, ip4, udp } from './unit-packets';

export const F = 0x01;
export const S = 0x02;
export const R = 0x04;
export const P = 0x08;
export const A = 0x10;

export interface Crafted {
  /** Seconds since the capture's start. */
  t: number;
  ip: Buffer;
}

function tcpSegment(sport: number, dport: number, seq: number, ack: number, flags: number, payload: Buffer, window = 65535): Buffer {
  const b = Buffer.alloc(20);
  b.writeUInt16BE(sport, 0);
  b.writeUInt16BE(dport, 2);
  b.writeUInt32BE(seq >>> 0, 4);
  b.writeUInt32BE(ack >>> 0, 8);
  b[12] = 5 << 4;
  b[13] = flags;
  b.writeUInt16BE(window, 14);
  return Buffer.concat([b, payload]);
}

/** A TCP conversation between a client (c) and a server (s): each packet's numbers follow what was sent. */
export class TcpConversation {
  private readonly seq = { c: 100000, s: 900000 };
  /** What each side acknowledges: the other's next byte. */
  private readonly acked = { c: 900000, s: 100000 };
  readonly packets: Crafted[] = [];

  constructor(
    private readonly client: [string, number],
    private readonly server: [string, number],
  ) {}

  /** A packet from `from` at time t with `flags` and a payload (bytes, or a count of 'a's). */
  send(t: number, from: 'c' | 's', flags: number, data: number | Buffer = 0): this {
    const to = from === 'c' ? 's' : 'c';
    const [src, dst] = from === 'c' ? [this.client, this.server] : [this.server, this.client];
    const payload = typeof data === 'number' ? Buffer.alloc(data, 0x61) : data;
    const ack = flags & A ? this.acked[from] : 0;
    this.packets.push({ t, ip: ip4(src[0], dst[0], 6, tcpSegment(src[1], dst[1], this.seq[from], ack, flags, payload)) });
    this.seq[from] += payload.length + (flags & S ? 1 : 0) + (flags & F ? 1 : 0);
    this.acked[to] = this.seq[from];
    return this;
  }
}

export function udpPacket(t: number, src: [string, number], dst: [string, number], data: Buffer | number): Crafted {
  const payload = typeof data === 'number' ? Buffer.alloc(data, 0x62) : data;
  return { t, ip: ip4(src[0], dst[0], 17, udp(src[1], dst[1], payload)) };
}

export function icmpPacket(t: number, src: string, dst: string, type: number, code: number, data = 0): Crafted {
  return { t, ip: ip4(src, dst, 1, icmp(type, code, Buffer.alloc(data, 0x63))) };
}

/** A pcap file (microseconds, LINKTYPE_RAW) of the packets, starting at `base` seconds since the epoch. */
export function writeCraftedPcap(file: string, packets: Crafted[], base = 1_700_000_000): void {
  const head = Buffer.alloc(24);
  head.writeUInt32LE(0xa1b2c3d4, 0);
  head.writeUInt16LE(2, 4);
  head.writeUInt16LE(4, 6);
  head.writeUInt32LE(262144, 16);
  head.writeUInt32LE(101, 20);
  const parts: Buffer[] = [head];
  for (const p of [...packets].sort((a, b) => a.t - b.t)) {
    const us = Math.round((base + p.t) * 1e6);
    const rec = Buffer.alloc(16);
    rec.writeUInt32LE(Math.floor(us / 1e6), 0);
    rec.writeUInt32LE(us % 1e6, 4);
    rec.writeUInt32LE(p.ip.length, 8);
    rec.writeUInt32LE(p.ip.length, 12);
    parts.push(rec, p.ip);
  }
  fs.writeFileSync(file, Buffer.concat(parts));
}
