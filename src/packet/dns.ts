// DNS messages: the question, the answers (addresses and CNAMEs) and the CNAME chain, and the
// addresses an answer gives for the name asked: what the program itself resolved, for the
// capture file's name resolution and the flows' server names.
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

export interface DnsRecord {
  name: string;
  type: number;
  ttl: number;
  /** A/AAAA: the address bytes; CNAME: the target name. */
  address?: Buffer;
  target?: string;
}

export interface DnsMessage {
  id: number;
  response: boolean;
  rcode: number;
  question: { name: string; type: number } | undefined;
  answers: DnsRecord[];
}

export const DNS_TYPE_A = TYPE_A;
export const DNS_TYPE_AAAA = TYPE_AAAA;
export const DNS_TYPE_CNAME = 5;

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

/** A name anywhere in the message, compression pointers followed (bounded). */
function readCompressedName(m: Buffer, at: number): { name: string; end: number } | undefined {
  const labels: string[] = [];
  let end = -1;
  for (let guard = 0; guard < 128 && at < m.length; guard++) {
    const len = m[at];
    if (len === 0) return { name: labels.join('.'), end: end < 0 ? at + 1 : end };
    if ((len & 0xc0) === 0xc0) {
      if (at + 2 > m.length) return undefined;
      if (end < 0) end = at + 2;
      at = ((len & 0x3f) << 8) | m[at + 1];
      continue;
    }
    if (len & 0xc0 || at + 1 + len > m.length) return undefined;
    labels.push(m.subarray(at + 1, at + 1 + len).toString('latin1'));
    at += 1 + len;
  }
  return undefined;
}

/** A DNS message (a UDP payload); undefined when it is not one. */
export function parseDns(m: Buffer): DnsMessage | undefined {
  if (m.length < 12) return undefined;
  const flags = m.readUInt16BE(2);
  const qd = m.readUInt16BE(4);
  const an = m.readUInt16BE(6);
  if (qd > 1 || (flags & 0x7800) !== 0) return undefined; // one question, a standard query
  let at = 12;
  let question: DnsMessage['question'];
  if (qd === 1) {
    const q = readName(m, at);
    if (!q || q.end + 4 > m.length) return undefined;
    question = { name: q.name.toLowerCase(), type: m.readUInt16BE(q.end) };
    at = q.end + 4;
  }
  const answers: DnsRecord[] = [];
  for (let i = 0; i < an && i < 64; i++) {
    // where the record goes on is known without following the owner's pointers (a looping
    // owner name still leaves its address usable)
    const end = skipName(m, at);
    if (end < 0 || end + 10 > m.length) break;
    const owner = readCompressedName(m, at)?.name ?? '';
    at = end;
    const type = m.readUInt16BE(at);
    const ttl = m.readUInt32BE(at + 4);
    const rdlen = m.readUInt16BE(at + 8);
    const rdata = at + 10;
    if (rdata + rdlen > m.length) break;
    const r: DnsRecord = { name: owner.toLowerCase(), type, ttl };
    if ((type === TYPE_A && rdlen === 4) || (type === TYPE_AAAA && rdlen === 16)) r.address = Buffer.from(m.subarray(rdata, rdata + rdlen));
    else if (type === DNS_TYPE_CNAME) r.target = readCompressedName(m, rdata)?.name.toLowerCase();
    answers.push(r);
    at = rdata + rdlen;
  }
  return { id: m.readUInt16BE(0), response: (flags & 0x8000) !== 0, rcode: flags & 0x000f, question, answers };
}

/**
 * The CNAME chain from the question's name to the owner of the address records: [qname,
 * cname1, ...] (just [qname] without CNAMEs).
 */
export function cnameChain(msg: DnsMessage): string[] {
  if (!msg.question) return [];
  const chain = [msg.question.name];
  const next = new Map(msg.answers.filter((r) => r.target).map((r) => [r.name, r.target as string]));
  for (let n = next.get(chain[0]); n && chain.length < 16 && !chain.includes(n); n = next.get(n)) chain.push(n);
  return chain;
}

/** A and AAAA answers of a DNS response in an IP packet, named by the question. */
export function resolvedNames(ip: Buffer): ResolvedName[] {
  const m = dnsPayload(ip);
  const msg = m && parseDns(m);
  if (!msg || !msg.response || msg.rcode !== 0 || !msg.question || msg.question.name === '') return [];
  const name = msg.question.name;
  return msg.answers.filter((r) => r.address).map((r) => ({ address: r.address as Buffer, name }));
}
