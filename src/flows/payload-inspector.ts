// What the first bytes of a flow say about it: a TLS ClientHello (server name, ALPN) and
// ServerHello (version), an HTTP/1.x request's Host, a QUIC Initial's ClientHello. Each
// direction's stream start is kept only until it has been read (a few KiB at most).
import { httpRequestHead } from '../packet/http';
import { cryptoStreamPrefix, isQuicInitial, openClientInitial } from '../packet/quic';
import { clientHelloOfStream, parseClientHello, serverHelloOfStream, tlsVersionName } from '../packet/tls';

/** Bytes of a stream start kept for reading at most. */
const STREAM_MAX = 16384;
/** Segments or datagrams looked at per direction before giving up. */
const PACKETS_MAX = 12;

export type NameSource = 'sni' | 'quic-sni' | 'http-host' | 'dns';

export interface Inspection {
  service: string | undefined;
  serverName: string | undefined;
  source: NameSource | undefined;
  tlsVersion: string | undefined;
  /** ALPN protocols the client offered. */
  alpn: string[] | undefined;
}

/**
 * A TCP direction's bytes contiguous from its first sequence number (in order or not). The
 * first segment is read in place; segments are copied only when the start must wait for more.
 */
class StreamStart {
  private base: number | undefined;
  private parts: { offset: number; data: Buffer }[] | undefined;
  private contiguous: Buffer = EMPTY;
  /** The last segment, when it is the whole stream start so far (a view, not yet kept). */
  private view: Buffer | undefined;

  /** seq of the first payload byte (the SYN's seq + 1 when the SYN was seen). */
  setBase(seq: number): void {
    this.base ??= seq >>> 0;
  }

  /** A segment; true when the contiguous start grew (read `bytes` then, and keep() if not done). */
  add(seq: number, payload: Buffer): boolean {
    this.base ??= seq >>> 0;
    const off = ((seq >>> 0) - this.base + 2 ** 32) % 2 ** 32;
    if (off >= STREAM_MAX || payload.length === 0) return false;
    if (off === 0 && !this.parts) {
      this.view = payload.subarray(0, STREAM_MAX);
      return true;
    }
    this.keep();
    (this.parts ??= []).push({ offset: off, data: Buffer.from(payload.subarray(0, STREAM_MAX - off)) });
    const before = this.contiguous.length;
    this.contiguous = cryptoStreamPrefix(this.parts);
    return this.contiguous.length > before;
  }

  /** The segment read in place is needed later: copied. */
  keep(): void {
    if (!this.view) return;
    const data = Buffer.from(this.view);
    this.parts = [{ offset: 0, data }];
    this.contiguous = data;
    this.view = undefined;
  }

  get bytes(): Buffer {
    return this.view ?? this.contiguous;
  }
}

const EMPTY = Buffer.alloc(0);

export class PayloadInspector {
  readonly result: Inspection = { service: undefined, serverName: undefined, source: undefined, tlsVersion: undefined, alpn: undefined };
  private readonly streams: [StreamStart, StreamStart] | undefined;
  private readonly looked = [0, 0];
  private readonly open = [true, true];
  private quic: { dcid: Buffer; frames: { offset: number; data: Buffer }[] } | undefined;

  constructor(tcp: boolean) {
    this.streams = tcp ? [new StreamStart(), new StreamStart()] : undefined;
  }

  /** Whether nothing more will be learnt from this flow's payloads. */
  get finished(): boolean {
    return !this.open[0] && !this.open[1];
  }

  /** A TCP SYN from one side: its data starts at seq + 1. */
  syn(fromOrig: boolean, seq: number): void {
    this.streams?.[fromOrig ? 0 : 1].setBase(seq + 1);
  }

  /** A packet's payload; seq for TCP. */
  add(fromOrig: boolean, payload: Buffer, seq: number): void {
    const side = fromOrig ? 0 : 1;
    if (!this.open[side] || payload.length === 0) return;
    if (++this.looked[side] > PACKETS_MAX) {
      this.open[side] = false;
      return;
    }
    if (this.streams) {
      const s = this.streams[side];
      if (s.add(seq, payload)) {
        this.readTcp(side, s.bytes);
        if (this.open[side]) s.keep(); // more is needed: the segment is kept
      }
    } else {
      this.readUdp(side, payload);
    }
  }

  private readTcp(side: number, bytes: Buffer): void {
    const r = this.result;
    if (side === 0) {
      const hello = clientHelloOfStream(bytes);
      if (hello.done && hello.value) {
        r.service = 'ssl';
        if (hello.value.sni) [r.serverName, r.source] = [hello.value.sni, 'sni'];
        r.alpn = hello.value.alpn;
        this.open[0] = false;
        return;
      }
      if (!hello.done) return;
      const head = httpRequestHead(bytes);
      if (!head.done) return;
      if (head.value) {
        r.service = 'http';
        if (head.value.host) [r.serverName, r.source] = [head.value.host, 'http-host'];
      }
      this.open[0] = false;
      this.open[1] = false; // nothing is read from the server's side but a ServerHello
      return;
    }
    const hello = serverHelloOfStream(bytes);
    if (!hello.done) return;
    if (hello.value) r.tlsVersion = tlsVersionName(hello.value.version);
    this.open[1] = false;
  }

  private readUdp(side: number, datagram: Buffer): void {
    if (side === 1) {
      if (!this.quic) this.open[1] = false;
      return; // the server's Initial is sealed with keys of its own: nothing read from it
    }
    if (!isQuicInitial(datagram)) {
      if (!this.quic) this.open[0] = false;
      return;
    }
    const initial = openClientInitial(datagram, this.quic?.dcid);
    if (!initial) return;
    this.quic ??= { dcid: initial.dcid, frames: [] };
    this.quic.frames.push(...initial.crypto.map((f) => ({ offset: f.offset, data: Buffer.from(f.data) })));
    const r = this.result;
    r.service = 'quic';
    const stream = cryptoStreamPrefix(this.quic.frames);
    if (stream.length < 4 || stream.length < 4 + stream.readUIntBE(1, 3)) return;
    const hello = parseClientHello(stream);
    if (hello) {
      if (hello.sni) [r.serverName, r.source] = [hello.sni, 'quic-sni'];
      r.alpn = hello.alpn;
      r.tlsVersion = tlsVersionName(0x0304); // QUIC carries TLS 1.3 only
    }
    this.open[0] = false;
    this.open[1] = false;
    this.quic.frames = [];
  }
}
