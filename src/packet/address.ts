// Textual IP addresses to the raw bytes the dissector sees (latin1 strings), and bytes to text.
import { isIPv4, isIPv6 } from 'node:net';

function v4Bytes(a: string): string {
  return String.fromCharCode(...a.split('.').map((x) => Number(x)));
}

export interface AddressBytes {
  readonly family: 4 | 6;
  readonly bytes: string;
}

// Every socket event names its addresses as text, and a program talks to few addresses: the
// parse is kept (bounded) rather than done for each rule of each event.
const parsed = new Map<string, AddressBytes>();
const PARSED_MAX = 4096;

/** Raw address bytes and the wire family; IPv4-mapped IPv6 is IPv4 on the wire. */
export function addressBytes(address: string): AddressBytes {
  let r = parsed.get(address);
  if (r) return r;
  r = parseAddress(address);
  if (parsed.size >= PARSED_MAX) parsed.clear();
  parsed.set(address, r);
  return r;
}

function parseAddress(address: string): AddressBytes {
  if (isIPv4(address)) return { family: 4, bytes: v4Bytes(address) };
  if (!isIPv6(address)) throw new Error(`not an IP address: ${address}`);
  let text = address.split('%')[0];
  let tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    tail = [...v4Bytes(text.slice(lastColon + 1))].map((c) => c.charCodeAt(0));
    text = text.slice(0, lastColon + 1) + '0:0';
  }
  const [head, rest] = text.split('::');
  const groups = (s: string | undefined) => (s ? s.split(':').filter((g) => g !== '') : []);
  const h = groups(head);
  const r = rest === undefined ? [] : groups(rest);
  const words = [...h, ...Array(8 - h.length - r.length).fill('0'), ...r].map((g) => parseInt(g, 16));
  const bytes: number[] = [];
  for (const w of words) bytes.push(w >> 8, w & 0xff);
  if (tail.length) bytes.splice(12, 4, ...tail);
  const isMapped = bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  if (isMapped) return { family: 4, bytes: String.fromCharCode(...bytes.slice(12)) };
  return { family: 6, bytes: String.fromCharCode(...bytes) };
}

/** Dotted-quad text of the 4 bytes at o. */
export function ipv4Text(b: Buffer, o: number): string {
  return `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
}

/** RFC 5952 text: lowercase, the longest run (≥ 2) of zero groups as ::, IPv4-mapped as ::ffff:a.b.c.d. */
export function ipv6Text(b: Buffer, o: number): string {
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push(b.readUInt16BE(o + 2 * i));
  if (w[0] === 0 && w[1] === 0 && w[2] === 0 && w[3] === 0 && w[4] === 0 && w[5] === 0xffff)
    return `::ffff:${ipv4Text(b, o + 12)}`;
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = w.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** Text of address bytes held as a latin1 string (4 or 16 characters). */
export function formatAddress(bytes: string): string {
  const b = Buffer.from(bytes, 'latin1');
  return b.length === 4 ? ipv4Text(b, 0) : ipv6Text(b, 0);
}

export function isWildcard(bytes: string): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes.charCodeAt(i) !== 0) return false;
  return true;
}
