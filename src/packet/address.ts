// Textual IP addresses to the raw bytes the dissector sees (latin1 strings), and back.
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

export function formatAddress(bytes: string): string {
  if (bytes.length === 4) return [...bytes].map((c) => c.charCodeAt(0)).join('.');
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push(((bytes.charCodeAt(i) << 8) | bytes.charCodeAt(i + 1)).toString(16));
  // compress the longest run of zero words
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) [best, bestLen] = [i, j - i];
    i = j;
  }
  if (best < 0) return words.join(':');
  return `${words.slice(0, best).join(':')}::${words.slice(best + bestLen).join(':')}`;
}

export function isWildcard(bytes: string): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes.charCodeAt(i) !== 0) return false;
  return true;
}
