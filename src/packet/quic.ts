// The client's QUIC Initial packets, decrypted with the Initial keys every observer can derive
// from the connection ID (RFC 9001 section 5.2 for QUIC v1, RFC 9369 for v2), and the TLS
// ClientHello their CRYPTO frames carry: the server name and ALPN of a QUIC connection.
import { createCipheriv, createDecipheriv, createHmac } from 'node:crypto';

export const QUIC_V1 = 0x00000001;
export const QUIC_V2 = 0x6b3343cf;

interface VersionParams {
  salt: Buffer;
  /** HKDF label prefix for key, iv and hp ("quic" / "quicv2"). */
  label: string;
  /** Long header packet type of Initial packets. */
  initialType: number;
}

const VERSIONS = new Map<number, VersionParams>([
  [QUIC_V1, { salt: Buffer.from('38762cf7f55934b34d179ae6a4c80cadccbb7f0a', 'hex'), label: 'quic', initialType: 0 }],
  [QUIC_V2, { salt: Buffer.from('0dede3def700a6db819381be6e269dcbf9bd2ed9', 'hex'), label: 'quicv2', initialType: 1 }],
]);

/** HKDF-Expand-Label (RFC 8446 section 7.1) for outputs of at most one SHA-256 block. */
function expandLabel(secret: Buffer, label: string, length: number): Buffer {
  const full = Buffer.from(`tls13 ${label}`, 'latin1');
  const info = Buffer.concat([Buffer.from([length >> 8, length & 0xff, full.length]), full, Buffer.from([0, 1])]);
  return createHmac('sha256', secret).update(info).digest().subarray(0, length);
}

export interface InitialKeys {
  key: Buffer;
  iv: Buffer;
  hp: Buffer;
}

/** The client's Initial keys for a version and the Destination Connection ID of its first Initial. */
export function clientInitialKeys(version: number, dcid: Buffer): InitialKeys | undefined {
  const v = VERSIONS.get(version);
  if (!v) return undefined;
  const initial = createHmac('sha256', v.salt).update(dcid).digest(); // HKDF-Extract
  const client = expandLabel(initial, 'client in', 32);
  return { key: expandLabel(client, `${v.label} key`, 16), iv: expandLabel(client, `${v.label} iv`, 12), hp: expandLabel(client, `${v.label} hp`, 16) };
}

/** A QUIC variable-length integer at `at`: value and length, or undefined past the end. */
function varint(b: Buffer, at: number): { value: number; len: number } | undefined {
  if (at >= b.length) return undefined;
  const len = 1 << (b[at] >> 6);
  if (at + len > b.length) return undefined;
  let value = b[at] & 0x3f;
  for (let i = 1; i < len; i++) value = value * 256 + b[at + i];
  return { value, len };
}

export interface QuicInitial {
  version: number;
  dcid: Buffer;
  /** CRYPTO frame data by stream offset. */
  crypto: { offset: number; data: Buffer }[];
}

/** Whether a UDP payload starts with a long-header Initial packet of a version we know. */
export function isQuicInitial(p: Buffer): boolean {
  if (p.length < 7 || (p[0] & 0xc0) !== 0xc0) return false;
  const v = VERSIONS.get(p.readUInt32BE(1));
  return !!v && ((p[0] >> 4) & 3) === v.initialType;
}

/**
 * The first packet of a UDP payload, when it is a client Initial: decrypted (header protection
 * removed, AEAD opened) and its CRYPTO frames returned. `dcid` is the connection ID the keys
 * come from (the client's first Initial's); by default this packet's own.
 */
export function openClientInitial(p: Buffer, dcid?: Buffer): QuicInitial | undefined {
  if (!isQuicInitial(p)) return undefined;
  const version = p.readUInt32BE(1);
  let at = 5;
  const dcidLen = p[at];
  if (dcidLen > 20 || at + 1 + dcidLen >= p.length) return undefined;
  const ownDcid = p.subarray(at + 1, at + 1 + dcidLen);
  at += 1 + dcidLen;
  const scidLen = p[at];
  if (scidLen > 20) return undefined;
  at += 1 + scidLen;
  const token = varint(p, at);
  if (!token) return undefined;
  at += token.len + token.value;
  const length = varint(p, at);
  if (!length) return undefined;
  at += length.len;
  const pnOffset = at;
  const end = pnOffset + length.value;
  if (end > p.length || length.value < 4 + 16 + 16) return undefined;
  const keys = clientInitialKeys(version, dcid ?? ownDcid);
  if (!keys) return undefined;
  // header protection: the sample starts 4 bytes past the packet number's offset
  const sample = p.subarray(pnOffset + 4, pnOffset + 20);
  const mask = createCipheriv('aes-128-ecb', keys.hp, null).update(sample);
  const first = p[0] ^ (mask[0] & 0x0f);
  const pnLen = (first & 3) + 1;
  const header = Buffer.from(p.subarray(0, pnOffset + pnLen));
  header[0] = first;
  let pn = 0;
  for (let i = 0; i < pnLen; i++) {
    header[pnOffset + i] ^= mask[1 + i];
    pn = pn * 256 + header[pnOffset + i];
  }
  const nonce = Buffer.from(keys.iv);
  for (let i = 0; i < 6; i++) nonce[11 - i] ^= Math.floor(pn / 2 ** (8 * i)) & 0xff;
  const sealed = p.subarray(pnOffset + pnLen, end - 16);
  let plain: Buffer;
  try {
    const d = createDecipheriv('aes-128-gcm', keys.key, nonce);
    d.setAAD(header);
    d.setAuthTag(p.subarray(end - 16, end));
    plain = Buffer.concat([d.update(sealed), d.final()]);
  } catch {
    return undefined; // not ours to open (a server's Initial, a later connection ID)
  }
  const crypto = cryptoFrames(plain);
  return crypto && { version, dcid: Buffer.from(dcid ?? ownDcid), crypto };
}

/** The CRYPTO frames of an Initial packet's payload (PADDING, PING, ACK and CONNECTION_CLOSE skipped). */
function cryptoFrames(b: Buffer): QuicInitial['crypto'] | undefined {
  const out: QuicInitial['crypto'] = [];
  let at = 0;
  const skip = (n: number) => {
    for (let i = 0; i < n; i++) {
      const v = varint(b, at);
      if (!v) return false;
      at += v.len;
    }
    return true;
  };
  while (at < b.length) {
    const type = b[at++];
    if (type === 0x00 || type === 0x01) continue; // PADDING, PING
    if (type === 0x06) {
      const off = varint(b, at);
      if (!off) return undefined;
      at += off.len;
      const len = varint(b, at);
      if (!len || at + len.len + len.value > b.length) return undefined;
      at += len.len;
      out.push({ offset: off.value, data: b.subarray(at, at + len.value) });
      at += len.value;
    } else if (type === 0x02 || type === 0x03) {
      // ACK: largest, delay, range count, first range, then count (gap, length) pairs
      if (!skip(2)) return undefined;
      const count = varint(b, at);
      if (!count) return undefined;
      at += count.len;
      if (!skip(1 + 2 * count.value + (type === 0x03 ? 3 : 0))) return undefined;
    } else if (type === 0x1c) {
      if (!skip(2)) return undefined;
      const reason = varint(b, at);
      if (!reason) return undefined;
      at += reason.len + reason.value;
    } else {
      return out; // no other frame may be in an Initial: stop at what cannot be read
    }
  }
  return out;
}

/** The bytes of a CRYPTO stream that are contiguous from offset 0. */
export function cryptoStreamPrefix(frames: { offset: number; data: Buffer }[]): Buffer {
  const sorted = [...frames].sort((a, b) => a.offset - b.offset);
  const parts: Buffer[] = [];
  let have = 0;
  for (const f of sorted) {
    if (f.offset > have) break;
    if (f.offset + f.data.length <= have) continue;
    parts.push(f.data.subarray(have - f.offset));
    have = f.offset + f.data.length;
  }
  return Buffer.concat(parts, have);
}
