// HTTP exchanges from tshark's HTTP and HTTP/2 layers: one object per request and its response,
// with sizes on the wire and decoded, and when the response began and ended. HTTP/1.x
// responses name their request's frame (http.request_in); HTTP/2 messages their stream.
import zlib from 'node:zlib';
import type { Flow } from '../flows/flow';
import { type ObjectRecord, objectBase } from './object-record';
import { type Layers, all, field, first, num, str } from './tshark';
import type { WalkedFrame } from './flow-walk';

/** An exchange under way. */
interface Exchange {
  flow: Flow;
  /** The client is the flow's originator. */
  clientIsOrig: boolean;
  record: ObjectRecord;
  /** HTTP/2: response DATA bytes kept to measure the decoded size (content-encoded bodies only). */
  body?: Buffer[];
  done: boolean;
}

const sec = (us: number) => us / 1e6;

/** Sizes of a content-encoded body tshark decoded: "Content-encoded entity body (gzip): 104 bytes -> 70000 bytes". */
const ENCODED_LABEL = /^Content-encoded entity body \(([^)]*)\): (\d+) bytes -> (\d+) bytes/;

export class HttpObjects {
  // HTTP/1.x requests waiting for their response, by the request's frame number
  private readonly requests = new Map<number, Exchange>();
  // per flow, HTTP/1.x requests whose response has not begun (in order)
  private readonly awaitingFirstByte = new Map<Flow, Exchange[]>();
  // HTTP/2 exchanges by flow and stream
  private readonly streams = new Map<Flow, Map<number, Exchange>>();
  /** Flows that had HTTP decoded in them (their TLS is not opaque). */
  readonly decoded = new WeakSet<Flow>();

  constructor(private readonly emit: (r: ObjectRecord, flow: Flow) => void) {}

  /** A packet tshark dissected (its frame as the flow walk saw it). */
  frame(layers: Layers, frameNumber: number, at: WalkedFrame): void {
    for (const h of all(layers.http)) this.http1(h as Layers, frameNumber, at);
    for (const h2 of all(layers.http2)) for (const s of all(field(h2, 'http2.stream'))) this.http2(s as Layers, at);
  }

  /** A packet of a flow: the first response byte of the oldest HTTP/1.x request waiting for one. */
  packet(flow: Flow, fromOrig: boolean, payloadLen: number, us: number): void {
    if (payloadLen === 0) return;
    const waiting = this.awaitingFirstByte.get(flow);
    if (!waiting?.length || waiting[0].clientIsOrig === fromOrig) return;
    const x = waiting.shift() as Exchange;
    x.record.resp_first_ts = sec(us);
    if (!waiting.length) this.awaitingFirstByte.delete(flow);
  }

  /** A flow ended: its exchanges without an end are written as they are (complete: false). */
  ended(flow: Flow): void {
    for (const [n, x] of this.requests) if (x.flow === flow) this.finish(x, false, n);
    this.awaitingFirstByte.delete(flow);
    const streams = this.streams.get(flow);
    if (streams) for (const x of streams.values()) this.finish(x, false);
    this.streams.delete(flow);
  }

  private finish(x: Exchange, complete: boolean, requestFrame?: number): void {
    if (x.done) return;
    x.done = true;
    if (requestFrame !== undefined) this.requests.delete(requestFrame);
    x.record.complete = complete ? 'yes' : 'no';
    if (x.body) {
      const decoded = decodedLength(Buffer.concat(x.body), x.record.resp_content_encoding as string | undefined);
      if (decoded !== undefined) x.record.resp_body_decoded_bytes = decoded;
    } else if (x.record.resp_body_decoded_bytes === undefined && x.record.resp_body_bytes !== undefined && !x.record.resp_content_encoding) {
      x.record.resp_body_decoded_bytes = x.record.resp_body_bytes;
    }
    this.emit(x.record, x.flow);
  }

  private base(flow: Flow, us: number, version: string): ObjectRecord {
    const r = objectBase(flow, us, 'http');
    r.version = version;
    return r;
  }

  // ---- HTTP/1.x ----

  private http1(h: Layers, frameNumber: number, at: WalkedFrame): void {
    let request: Layers | undefined;
    let response: Layers | undefined;
    let firstLine = '';
    let encoded: RegExpExecArray | undefined;
    for (const [k, v] of Object.entries(h)) {
      if (v && typeof v === 'object' && !Array.isArray(v)) {
        if ('http.request.method' in v) [request, firstLine] = [v as Layers, k];
        else if ('http.response.code' in v) [response, firstLine] = [v as Layers, k];
      }
      encoded ??= ENCODED_LABEL.exec(k) ?? undefined;
    }
    this.decoded.add(at.flow);
    const lineBytes = firstLine.replace(/\\r\\n$/, '').length + 2;
    const headerLines = all(h[request ? 'http.request.line' : 'http.response.line']) as string[];
    const headerBytes = lineBytes + headerLines.reduce((n, l) => n + l.length, 0) + 2;
    const contentLength = num(field(h['http.content_length_header_tree'], 'http.content_length'));
    const bodyBytes = contentLength ?? chunkedLength(h) ?? (encoded ? Number(encoded[2]) : fileDataLength(h));
    if (request) {
      const r = this.base(at.flow, at.us, str(request['http.request.version'])?.replace(/^HTTP\//, '') ?? '1.1');
      r.method = str(request['http.request.method']) ?? '';
      const full = str(h['http.request.full_uri']);
      r.scheme = full?.startsWith('https:') ? 'https' : 'http';
      const host = str(h['http.host']);
      if (host) r.host = host;
      r.path = str(request['http.request.uri']) ?? '';
      const type = str(h['http.content_type']);
      if (type) r.req_content_type = type;
      const enc = str(h['http.content_encoding']);
      if (enc) r.req_content_encoding = enc;
      r.req_header_bytes = headerBytes;
      r.req_body_bytes = bodyBytes ?? 0;
      const x: Exchange = { flow: at.flow, clientIsOrig: at.fromOrig, record: r, done: false };
      this.requests.set(frameNumber, x);
      const waiting = this.awaitingFirstByte.get(at.flow);
      if (waiting) waiting.push(x);
      else this.awaitingFirstByte.set(at.flow, [x]);
      return;
    }
    if (!response) return;
    const requestFrame = num(h['http.request_in']);
    const x = requestFrame === undefined ? undefined : this.requests.get(requestFrame);
    if (!x) return; // a response to a request before the file began
    const r = x.record;
    r.status = num(response['http.response.code']) ?? 0;
    const type = str(h['http.content_type']);
    if (type) r.resp_content_type = type;
    const enc = str(h['http.content_encoding']);
    if (enc) r.resp_content_encoding = enc;
    r.resp_header_bytes = headerBytes;
    if (bodyBytes !== undefined) r.resp_body_bytes = bodyBytes;
    if (encoded) r.resp_body_decoded_bytes = Number(encoded[3]);
    r.resp_first_ts ??= sec(at.us);
    r.resp_last_ts = sec(at.us);
    this.finish(x, true, requestFrame);
  }

  // ---- HTTP/2 ----

  private http2(s: Layers, at: WalkedFrame): void {
    const type = num(s['http2.type']);
    const id = num(s['http2.streamid']);
    if (type === undefined || id === undefined || id === 0) return;
    this.decoded.add(at.flow);
    let streams = this.streams.get(at.flow);
    if (!streams) this.streams.set(at.flow, (streams = new Map()));
    const endStream = str(field(s['http2.flags_tree'], 'http2.flags.end_stream')) === '1';
    const length = num(s['http2.length']) ?? 0;
    if (type === 1) {
      // HEADERS: a request (":method") or a response (":status"), or trailers
      const headers = headerList(s);
      const method = headers.get(':method');
      if (method !== undefined) {
        const r = this.base(at.flow, at.us, '2');
        r.method = method;
        r.scheme = headers.get(':scheme') ?? 'https';
        const host = headers.get(':authority') ?? headers.get('host');
        if (host) r.host = host;
        r.path = headers.get(':path') ?? '';
        const t = headers.get('content-type');
        if (t) r.req_content_type = t;
        const e = headers.get('content-encoding');
        if (e) r.req_content_encoding = e;
        r.req_header_bytes = length;
        r.req_body_bytes = 0;
        const x: Exchange = { flow: at.flow, clientIsOrig: at.fromOrig, record: r, done: false };
        streams.set(id, x);
        return;
      }
      const x = streams.get(id);
      if (!x) return;
      const r = x.record;
      const status = headers.get(':status');
      if (status !== undefined && (r.status === undefined || Number(r.status) < 200)) {
        r.status = Number(status);
        const t = headers.get('content-type');
        if (t) r.resp_content_type = t;
        const e = headers.get('content-encoding');
        if (e) {
          r.resp_content_encoding = e;
          x.body = [];
        }
        r.resp_header_bytes = (Number(r.resp_header_bytes) || 0) + length;
        r.resp_body_bytes = 0;
        r.resp_first_ts ??= sec(at.us);
      }
      if (endStream && x.clientIsOrig !== at.fromOrig) this.endStream(streams, id, x, at.us);
      return;
    }
    const x = streams.get(id);
    if (!x) return;
    const r = x.record;
    if (type === 0) {
      // DATA: its payload is the frame's length less any padding
      const padded = str(field(s['http2.flags_tree'], 'http2.flags.padded')) === '1';
      const body = length - (padded ? (num(s['http2.pad_length']) ?? 0) + 1 : 0);
      const fromClient = x.clientIsOrig === at.fromOrig;
      if (fromClient) r.req_body_bytes = (Number(r.req_body_bytes) || 0) + body;
      else {
        r.resp_body_bytes = (Number(r.resp_body_bytes) || 0) + body;
        r.resp_first_ts ??= sec(at.us);
        r.resp_last_ts = sec(at.us);
        const data = str(s['http2.data.data']);
        if (x.body && data) x.body.push(Buffer.from(data.replace(/:/g, ''), 'hex'));
      }
      if (endStream && !fromClient) this.endStream(streams, id, x, at.us);
    } else if (type === 3) {
      // RST_STREAM: the exchange ends here (complete if the response was all there)
      const expected = r.resp_body_bytes;
      this.endStream(streams, id, x, at.us, expected !== undefined && r.status !== undefined);
    }
  }

  private endStream(streams: Map<number, Exchange>, id: number, x: Exchange, us: number, complete = true): void {
    x.record.resp_last_ts ??= sec(us);
    streams.delete(id);
    this.finish(x, complete);
  }
}

/** An HTTP/2 HEADERS frame's decoded header list: name -> value (the first of repeated names). */
function headerList(s: Layers): Map<string, string> {
  const out = new Map<string, string>();
  for (const h of all(s['http2.header'])) {
    const name = str(field(h, 'http2.header.name'));
    const value = str(field(h, 'http2.header.value'));
    if (name !== undefined && value !== undefined && !out.has(name)) out.set(name, value);
  }
  return out;
}

/** The sum of a chunked body's chunk sizes, found anywhere under the HTTP layer. */
function chunkedLength(h: Layers): number | undefined {
  let sum: number | undefined;
  const visit = (o: unknown): void => {
    if (!o || typeof o !== 'object') return;
    for (const [k, v] of Object.entries(o as Layers)) {
      if (k === 'http.chunk_size') for (const c of all(v)) sum = (sum ?? 0) + (Number(c) || 0);
      else visit(v);
    }
  };
  visit(h);
  return sum;
}

/** A body tshark printed as text (no Content-Length, not chunked): its length. */
function fileDataLength(h: Layers): number | undefined {
  const data = first(h['http.file_data']);
  return typeof data === 'string' ? Buffer.byteLength(data, 'latin1') : undefined;
}

/** The size of a content-encoded body once decoded (undefined: an encoding Node cannot undo, or a damaged body). */
function decodedLength(body: Buffer, encoding: string | undefined): number | undefined {
  try {
    switch ((encoding ?? '').trim().toLowerCase()) {
      case '':
      case 'identity':
        return body.length;
      case 'gzip':
      case 'x-gzip':
        return zlib.gunzipSync(body).length;
      case 'deflate':
        return zlib.inflateSync(body).length;
      case 'br':
        return zlib.brotliDecompressSync(body).length;
      default:
        return undefined;
    }
  } catch {
    return undefined;
  }
}
