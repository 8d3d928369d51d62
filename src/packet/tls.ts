// The TLS handshake's first messages as they cross the wire in clear: the ClientHello (server
// name, offered ALPN protocols and versions) and the ServerHello (the version chosen, and the
// ALPN protocol where TLS 1.2 still shows it). Parses the start of one direction's byte stream
// (TLS over TCP) or a QUIC CRYPTO stream (a bare handshake message).

export const TLS_CONTENT_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;
const HANDSHAKE_SERVER_HELLO = 2;
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
const EXT_SUPPORTED_VERSIONS = 43;

export interface ClientHello {
  /** The server_name extension's host name, if any. */
  sni: string | undefined;
  /** ALPN protocols offered, in the client's order. */
  alpn: string[];
  /** The highest version offered (supported_versions, else the legacy field). */
  version: number;
}

export interface ServerHello {
  /** The version chosen (supported_versions, else the legacy field). */
  version: number;
  /** The ALPN protocol chosen, where the ServerHello carries it (TLS 1.2 and earlier). */
  alpn: string | undefined;
}

/** 'TLSv13' style names, as Zeek's ssl.log writes them. */
export function tlsVersionName(v: number): string {
  if (v === 0x0300) return 'SSLv3';
  if (v >= 0x0301 && v <= 0x0304) return `TLSv1${v - 0x0301}`;
  if (v === 0xfeff) return 'DTLSv10';
  if (v === 0xfefd) return 'DTLSv12';
  if (v === 0xfefc) return 'DTLSv13';
  return `unknown-0x${v.toString(16).padStart(4, '0')}`;
}

/** GREASE values (RFC 8701) are placeholders, never a real version. */
const isGrease = (v: number) => (v & 0x0f0f) === 0x0a0a && v >> 8 === (v & 0xff);

export type Parsed<T> = { done: true; value: T | undefined } | { done: false };
const more = { done: false } as const;
const none = { done: true, value: undefined } as const;

/**
 * The first handshake message of a TLS-over-TCP byte stream, joined across records. Not done
 * while the stream is shorter than the message; done without a value when the stream is no
 * TLS handshake (or the message is not of `type`).
 */
function firstHandshake(stream: Buffer, type: number): Parsed<Buffer> {
  const body: Buffer[] = [];
  let have = 0;
  let at = 0;
  for (let records = 0; records < 64; records++) {
    if (stream.length < at + 5) return more;
    const ct = stream[at];
    const major = stream[at + 1];
    const len = stream.readUInt16BE(at + 3);
    if (ct !== TLS_CONTENT_HANDSHAKE || major !== 3 || len === 0 || len > 18432) return none;
    if (stream.length < at + 5 + len) {
      // a partial record still tells the message type
      if (records === 0 && stream[at + 5] !== type && stream.length > at + 5) return none;
      return more;
    }
    body.push(stream.subarray(at + 5, at + 5 + len));
    have += len;
    at += 5 + len;
    const msg = body.length === 1 ? body[0] : Buffer.concat(body, have);
    if (msg[0] !== type) return none;
    if (msg.length >= 4) {
      const need = 4 + msg.readUIntBE(1, 3);
      if (msg.length >= need) return { done: true, value: msg.subarray(0, need) };
    }
  }
  return none;
}

/** Calls fn(type, data) for each extension of a hello's extension block at `at`; false if malformed. */
function eachExtension(m: Buffer, at: number, fn: (type: number, data: Buffer) => void): boolean {
  if (at === m.length) return true; // no extensions
  if (at + 2 > m.length) return false;
  const end = at + 2 + m.readUInt16BE(at);
  if (end > m.length) return false;
  at += 2;
  while (at + 4 <= end) {
    const type = m.readUInt16BE(at);
    const len = m.readUInt16BE(at + 2);
    if (at + 4 + len > end) return false;
    fn(type, m.subarray(at + 4, at + 4 + len));
    at += 4 + len;
  }
  return true;
}

function alpnList(d: Buffer): string[] {
  const out: string[] = [];
  if (d.length < 2) return out;
  const end = Math.min(d.length, 2 + d.readUInt16BE(0));
  for (let at = 2; at < end; ) {
    const len = d[at];
    if (at + 1 + len > end) break;
    out.push(d.subarray(at + 1, at + 1 + len).toString('latin1'));
    at += 1 + len;
  }
  return out;
}

function serverName(d: Buffer): string | undefined {
  if (d.length < 2) return undefined;
  const end = Math.min(d.length, 2 + d.readUInt16BE(0));
  for (let at = 2; at + 3 <= end; ) {
    const kind = d[at];
    const len = d.readUInt16BE(at + 1);
    if (at + 3 + len > end) break;
    if (kind === 0) {
      const name = d.subarray(at + 3, at + 3 + len);
      // a host name: printable ASCII (IDNs travel as punycode)
      if (name.every((b) => b > 0x20 && b < 0x7f)) return name.toString('latin1');
      return undefined;
    }
    at += 3 + len;
  }
  return undefined;
}

/**
 * What a ClientHello and a ServerHello begin with alike: the message (cut to its length), its
 * legacy version, and the offset past the random and the session id.
 */
function helloStart(msg: Buffer, type: number): { m: Buffer; version: number; at: number } | undefined {
  if (msg.length < 4 + 38 || msg[0] !== type) return undefined;
  const m = msg.subarray(0, Math.min(msg.length, 4 + msg.readUIntBE(1, 3)));
  const at = 4 + 2 + 32;
  return { m, version: m.readUInt16BE(4), at: at + 1 + m[at] };
}

/** A ClientHello handshake message (type, 3-byte length, body). */
export function parseClientHello(msg: Buffer): ClientHello | undefined {
  const start = helloStart(msg, HANDSHAKE_CLIENT_HELLO);
  if (!start) return undefined;
  const { m } = start;
  let { version, at } = start;
  if (at + 2 > m.length) return undefined;
  at += 2 + m.readUInt16BE(at); // cipher suites
  if (at + 1 > m.length) return undefined;
  at += 1 + m[at]; // compression methods
  if (at > m.length) return undefined;
  let sni: string | undefined;
  let alpn: string[] = [];
  const ok = eachExtension(m, at, (type, d) => {
    if (type === EXT_SERVER_NAME) sni = serverName(d);
    else if (type === EXT_ALPN) alpn = alpnList(d);
    else if (type === EXT_SUPPORTED_VERSIONS && d.length >= 1) {
      for (let i = 1; i + 2 <= Math.min(d.length, 1 + d[0]); i += 2) {
        const v = d.readUInt16BE(i);
        if (!isGrease(v) && v > version && v !== 0x7f00) version = v;
      }
    }
  });
  return ok ? { sni, alpn, version } : undefined;
}

/** A ServerHello handshake message. */
export function parseServerHello(msg: Buffer): ServerHello | undefined {
  const start = helloStart(msg, HANDSHAKE_SERVER_HELLO);
  if (!start) return undefined;
  const { m } = start;
  let { version } = start;
  const at = start.at + 2 + 1; // cipher suite, compression method
  if (at > m.length) return undefined;
  let alpn: string | undefined;
  const ok = eachExtension(m, at, (type, d) => {
    if (type === EXT_SUPPORTED_VERSIONS && d.length === 2) version = d.readUInt16BE(0);
    else if (type === EXT_ALPN) alpn = alpnList(d)[0];
  });
  return ok ? { version, alpn } : undefined;
}

/** The ClientHello at the start of a client's TLS-over-TCP stream. */
export function clientHelloOfStream(stream: Buffer): Parsed<ClientHello> {
  const h = firstHandshake(stream, HANDSHAKE_CLIENT_HELLO);
  return h.done ? { done: true, value: h.value && parseClientHello(h.value) } : h;
}

/** The ServerHello at the start of a server's TLS-over-TCP stream. */
export function serverHelloOfStream(stream: Buffer): Parsed<ServerHello> {
  const h = firstHandshake(stream, HANDSHAKE_SERVER_HELLO);
  return h.done ? { done: true, value: h.value && parseServerHello(h.value) } : h;
}

/** The client random (hex) of a TLS ClientHello starting at `at` (a TCP payload), if it is one. */
export function clientHelloRandom(data: Buffer, at: number): string | undefined {
  // record: type 22 (handshake), version 3.x, length; handshake: type 1 (ClientHello), length
  // (3), client_version (2), random (32)
  if (data.length < at + 43 || data[at] !== TLS_CONTENT_HANDSHAKE || data[at + 1] !== 3 || data[at + 5] !== HANDSHAKE_CLIENT_HELLO) return undefined;
  return data.toString('hex', at + 11, at + 43);
}
