// Crafted packets for the unit tests: IPv4/IPv6 headers (with options, fragments and
// extension headers), TCP/UDP headers, ICMP errors, and capture batches in the record layout of
// native/capture.h. Address parsing here is independent of src/net/address.ts on purpose.

export function v4(a: string): Buffer {
  const parts = a.split('.').map((x) => Number(x));
  if (parts.length !== 4 || parts.some((x) => !(x >= 0 && x <= 255))) throw new Error(`bad IPv4 ${a}`);
  return Buffer.from(parts);
}

/** Textual IPv6 (with ::, without embedded IPv4 or zone) to 16 bytes. */
export function v6(a: string): Buffer {
  const [head, tail] = a.split('::');
  const h = head ? head.split(':') : [];
  const t = tail === undefined ? [] : tail ? tail.split(':') : [];
  const fill = tail === undefined ? 0 : 8 - h.length - t.length;
  const words = [...h, ...Array<string>(fill).fill('0'), ...t];
  if (words.length !== 8) throw new Error(`bad IPv6 ${a}`);
  const b = Buffer.alloc(16);
  words.forEach((w, i) => b.writeUInt16BE(parseInt(w, 16), 2 * i));
  return b;
}

export const raw = (b: Buffer): string => b.toString('latin1');

export const DEFAULT_SEQ = 1000;

export function tcp(sport: number, dport: number, flags = 0x02, payload: Buffer = Buffer.alloc(0), seq = DEFAULT_SEQ): Buffer {
  const b = Buffer.alloc(20);
  b.writeUInt16BE(sport, 0);
  b.writeUInt16BE(dport, 2);
  b.writeUInt32BE(seq >>> 0, 4);
  b[12] = 5 << 4; // data offset
  b[13] = flags;
  b.writeUInt16BE(65535, 14); // window
  return Buffer.concat([b, payload]);
}

export function udp(sport: number, dport: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt16BE(sport, 0);
  b.writeUInt16BE(dport, 2);
  b.writeUInt16BE(8 + payload.length, 4);
  return Buffer.concat([b, payload]);
}

/** An ICMP or ICMPv6 message: type, code, 4 bytes of rest, then the quoted packet. */
export function icmp(type: number, code: number, quoted: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(8);
  b[0] = type;
  b[1] = code;
  return Buffer.concat([b, quoted]);
}

export interface Ip4Options {
  id?: number;
  /** Fragment offset in 8-byte units. */
  fragOffset?: number;
  moreFragments?: boolean;
  dontFragment?: boolean;
  /** IP options (padded to a multiple of 4). */
  options?: Buffer;
  ttl?: number;
}

export function ip4(src: string, dst: string, proto: number, payload: Buffer, o: Ip4Options = {}): Buffer {
  let opts = o.options ?? Buffer.alloc(0);
  if (opts.length % 4) opts = Buffer.concat([opts, Buffer.alloc(4 - (opts.length % 4))]);
  const hl = 20 + opts.length;
  const b = Buffer.alloc(hl);
  b[0] = 0x40 | (hl / 4);
  b.writeUInt16BE(hl + payload.length, 2);
  b.writeUInt16BE(o.id ?? 0x1234, 4);
  b.writeUInt16BE(((o.fragOffset ?? 0) & 0x1fff) | (o.moreFragments ? 0x2000 : 0) | (o.dontFragment ? 0x4000 : 0), 6);
  b[8] = o.ttl ?? 64;
  b[9] = proto;
  v4(src).copy(b, 12);
  v4(dst).copy(b, 16);
  // header checksum (tshark does not check it by default; keep it right anyway)
  let sum = 0;
  for (let i = 0; i < hl; i += 2) sum += b.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  b.writeUInt16BE(~sum & 0xffff, 10);
  opts.copy(b, 20);
  return Buffer.concat([b, payload]);
}

export interface Ext {
  /** Extension header type: 0 hop-by-hop, 43 routing, 60 destination options, 135/139/140, 44 fragment, 51 AH. */
  type: number;
  /** For 0/43/60: length in 8-byte units beyond the first (hdr ext len). */
  units?: number;
  /** For 44: fragment offset (8-byte units), M flag and identification. */
  fragOffset?: number;
  more?: boolean;
  id?: number;
}

/** An IPv6 packet; `next` is the protocol after the extension headers. */
export function ip6(src: string, dst: string, next: number, payload: Buffer, exts: Ext[] = []): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < exts.length; i++) {
    const e = exts[i];
    const nh = i + 1 < exts.length ? exts[i + 1].type : next;
    let h: Buffer;
    if (e.type === 44) {
      h = Buffer.alloc(8);
      h.writeUInt16BE(((e.fragOffset ?? 0) << 3) | (e.more ? 1 : 0), 2);
      h.writeUInt32BE(e.id ?? 0xabcdef01, 4);
    } else if (e.type === 51) {
      // AH: its length in 4-byte units less 2; 12 bytes of header and a 12-byte ICV
      h = Buffer.alloc(24);
      h[1] = 24 / 4 - 2;
    } else {
      const units = e.units ?? 0;
      h = Buffer.alloc(8 * (units + 1));
      h[1] = units;
      if (e.type !== 43) {
        h[2] = 1; // PadN option filling the rest
        h[3] = h.length - 4;
      }
    }
    h[0] = nh;
    parts.push(h);
  }
  const body = Buffer.concat([...parts, payload]);
  const b = Buffer.alloc(40);
  b[0] = 0x60;
  b.writeUInt16BE(body.length, 4);
  b[6] = exts.length ? exts[0].type : next;
  b[7] = 64;
  v6(src).copy(b, 8);
  v6(dst).copy(b, 24);
  return Buffer.concat([b, body]);
}

export const ETH_P_IP = 0x0800;
export const ETH_P_IPV6 = 0x86dd;
export const ARPHRD_ETHER = 1;
export const ARPHRD_LOOPBACK = 772;
export const PACKET_HOST = 0;
export const PACKET_OUTGOING = 4;

export interface Rec {
  /** Capture time in ms since the epoch (may have a fraction). */
  tsMs: number;
  data: Buffer;
  len?: number;
  ifindex?: number;
  hatype?: number;
  pkttype?: number;
  protocol?: number;
  /** Not wanted by -i/-f: the reader passes over it. */
  skip?: boolean;
}

/** One capture batch in the native record layout (28-byte little-endian header + packet). */
export function batch(recs: Rec[]): Buffer {
  const out: Buffer[] = [];
  for (const r of recs) {
    const h = Buffer.alloc(28);
    const sec = Math.floor(r.tsMs / 1000);
    const nsec = Math.round((r.tsMs - sec * 1000) * 1e6);
    h.writeUInt32LE(sec, 0);
    h.writeUInt32LE(nsec, 4);
    h.writeUInt32LE(r.data.length, 8);
    h.writeUInt32LE(r.len ?? r.data.length, 12);
    h.writeInt32LE(r.ifindex ?? 2, 16);
    h.writeUInt16LE(r.protocol ?? (r.data[0] >> 4 === 6 ? ETH_P_IPV6 : ETH_P_IP), 20);
    h.writeUInt16LE(r.hatype ?? ARPHRD_ETHER, 22);
    h[24] = r.pkttype ?? PACKET_HOST;
    h[25] = r.skip ? 1 : 0;
    out.push(h, r.data);
  }
  return Buffer.concat(out);
}

/** Records of a classic pcap file (any magic, little endian), for reading back what was written. */
export function readPcap(file: Buffer): {
  magic: number;
  snaplen: number;
  linktype: number;
  records: Array<{ sec: number; frac: number; caplen: number; len: number; data: Buffer }>;
} {
  const magic = file.readUInt32LE(0);
  const snaplen = file.readUInt32LE(16);
  const linktype = file.readUInt32LE(20);
  const records = [];
  let at = 24;
  while (at < file.length) {
    if (at + 16 > file.length) throw new Error(`truncated record header at ${at}`);
    const caplen = file.readUInt32LE(at + 8);
    if (at + 16 + caplen > file.length) throw new Error(`truncated record at ${at}`);
    records.push({
      sec: file.readUInt32LE(at),
      frac: file.readUInt32LE(at + 4),
      caplen,
      len: file.readUInt32LE(at + 12),
      data: file.subarray(at + 16, at + 16 + caplen),
    });
    at += 16 + caplen;
  }
  return { magic, snaplen, linktype, records };
}
