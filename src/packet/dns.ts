// The addresses a DNS answer gives for the name asked (A and AAAA records, CNAME chains
// followed to the name first asked): what the program itself resolved, for the capture
// file's name resolution.
import { walkIp } from './ip';
import { IPPROTO_UDP } from './protocols';

export interface ResolvedName {
  /** 4 or 16 bytes */
  address: Buffer;
  name: string;
}

const DNS_PORT = 53;
const TYPE_A = 1;
const TYPE_AAAA = 28;

/** The UDP payload of a DNS answer (source port 53) in an IP packet, else undefined. */
function dnsPayload(ip: Buffer): Buffer | undefined {
  const h = walkIp(ip);
  if (!h || h.truncated || h.proto !== IPPROTO_UDP || h.fragment) return undefined;
  if (ip.length < h.l4 + 8 || ip.readUInt16BE(h.l4) !== DNS_PORT) return undefined;
  return ip.subarray(h.l4 + 8);
}

/** Skips a (possibly compressed) name; returns the offset after it, or -1. */
function skipName(m: Buffer, at: number): number {
  for (let guard = 0; guard < 128 && at < m.length; guard++) {
    const len = m[at];
    if (len === 0) return at + 1;
    if ((len & 0xc0) === 0xc0) return at + 2 <= m.length ? at + 2 : -1;
    at += 1 + len;
  }
  return -1;
}

/**
 * Reads an uncompressed name (the question's). Labels are UTF-8 (IDNs travel as ASCII
 * punycode); a label with a NUL, a dot or a control byte is no host name and is refused.
 */
function readName(m: Buffer, at: number): { name: string; end: number } | undefined {
  const labels: string[] = [];
  for (let guard = 0; guard < 128 && at < m.length; guard++) {
    const len = m[at];
    if (len === 0) return { name: labels.join('.'), end: at + 1 };
    if (len & 0xc0 || at + 1 + len > m.length) return undefined;
    const label = m.subarray(at + 1, at + 1 + len);
    if (label.some((b) => b < 0x20 || b === 0x2e || b === 0x7f)) return undefined;
    labels.push(label.toString('utf8'));
    at += 1 + len;
  }
  return undefined;
}

/** A and AAAA answers of a DNS response in an IP packet, named by the question. */
export function resolvedNames(ip: Buffer): ResolvedName[] {
  const m = dnsPayload(ip);
  if (!m || m.length < 12) return [];
  const flags = m.readUInt16BE(2);
  if (!(flags & 0x8000) || (flags & 0x000f) !== 0) return []; // a response without error
  const qd = m.readUInt16BE(4);
  const an = m.readUInt16BE(6);
  if (qd !== 1 || an === 0) return [];
  const q = readName(m, 12);
  if (!q || q.name === '' || q.end + 4 > m.length) return [];
  const out: ResolvedName[] = [];
  let at = q.end + 4;
  for (let i = 0; i < an && i < 64; i++) {
    at = skipName(m, at);
    if (at < 0 || at + 10 > m.length) break;
    const type = m.readUInt16BE(at);
    const rdlen = m.readUInt16BE(at + 8);
    const rdata = at + 10;
    if (rdata + rdlen > m.length) break;
    if ((type === TYPE_A && rdlen === 4) || (type === TYPE_AAAA && rdlen === 16))
      out.push({ address: Buffer.from(m.subarray(rdata, rdata + rdlen)), name: q.name });
    at = rdata + rdlen;
  }
  return out;
}
