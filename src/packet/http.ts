// The start of an HTTP/1.x request in clear: its method, target and Host header, from the first
// bytes a client sends on a connection.

export interface HttpRequestHead {
  method: string;
  target: string;
  version: string;
  /** The Host header (without a port), else the authority of an absolute target. */
  host: string | undefined;
}

const METHOD = /^[A-Z][A-Z-]{0,19}$/;
/** Enough for a request line and its headers; a longer head is not waited for. */
export const HTTP_HEAD_MAX = 8192;

export type HeadParse = { done: true; value: HttpRequestHead | undefined } | { done: false };

/** Strips a port (and IPv6 brackets) from a host[:port] authority. */
function hostOnly(authority: string): string {
  const a = authority.trim().toLowerCase();
  if (a.startsWith('[')) return a.slice(1, a.indexOf(']') > 0 ? a.indexOf(']') : undefined);
  const colon = a.lastIndexOf(':');
  return colon > 0 && /^\d*$/.test(a.slice(colon + 1)) ? a.slice(0, colon) : a;
}

/**
 * The request head at the start of a client's stream. Not done while the head may still be
 * coming; done without a value when the stream is not an HTTP/1.x request.
 */
export function httpRequestHead(stream: Buffer): HeadParse {
  const lineEnd = stream.indexOf('\r\n');
  if (lineEnd < 0) {
    // not yet a whole line: is it still the start of one?
    const sp = stream.indexOf(0x20);
    const first = stream.subarray(0, sp < 0 ? Math.min(stream.length, 20) : sp).toString('latin1');
    if (!/^[A-Z-]*$/.test(first) || stream.length >= HTTP_HEAD_MAX) return { done: true, value: undefined };
    return { done: false };
  }
  const parts = stream.subarray(0, lineEnd).toString('latin1').split(' ');
  if (parts.length !== 3 || !METHOD.test(parts[0]) || !/^HTTP\/\d\.\d$/.test(parts[2])) return { done: true, value: undefined };
  const [method, target, version] = parts;
  const headEnd = stream.indexOf('\r\n\r\n');
  if (headEnd < 0 && stream.length < HTTP_HEAD_MAX) return { done: false };
  const head = stream.subarray(lineEnd + 2, headEnd < 0 ? stream.length : headEnd).toString('latin1');
  let host: string | undefined;
  for (const line of head.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0 && line.slice(0, colon).trim().toLowerCase() === 'host') {
      host = hostOnly(line.slice(colon + 1));
      break;
    }
  }
  if (!host) {
    const m = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]+)/i.exec(target);
    if (m) host = hostOnly(m[1].replace(/^.*@/, ''));
  }
  return { done: true, value: { method, target, version, host: host || undefined } };
}
