// Community ID v1 (github.com/corelight/community-id-spec): one hash per flow that Zeek,
// Suricata, Wireshark and others compute alike, to join records across tools.
import * as crypto from 'node:crypto';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, icmpCounterpart } from '../packet/protocols';

const WITH_PORTS = new Set([IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP]);

// crypto.hash (Node 20.12 and later) hashes in one call, several times cheaper than a Hash object.
const oneShot = (crypto as { hash?: (algorithm: string, data: Buffer, encoding: 'base64') => string }).hash;
const sha1Base64 = (b: Buffer): string => (oneShot ? oneShot('sha1', b, 'base64') : crypto.createHash('sha1').update(b).digest('base64'));

/** Address bytes (latin1 strings of 4 or 16 characters) compared as unsigned bytes. */
function lessThan(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0; // latin1 code units are the bytes
}

/**
 * The Community ID of a flow as seen in one of its packets (either direction gives the same
 * ID). For ICMP, sport and dport are the message's type and code.
 */
export function communityId(proto: number, src: string, dst: string, sport: number, dport: number, seed = 0): string {
  let p1 = sport;
  let p2 = dport;
  let oneWay = false;
  if (proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6) {
    // a request/response pair: the other half's type stands in for the destination port
    const pair = icmpCounterpart(proto, sport);
    if (pair === undefined) oneWay = true;
    else p2 = pair;
  } else if (!WITH_PORTS.has(proto)) {
    p1 = p2 = -1; // no ports in the hash
  }
  let a = src;
  let b = dst;
  const order = lessThan(a, b);
  if (!oneWay && (order > 0 || (order === 0 && p1 > p2))) {
    [a, b] = [b, a];
    [p1, p2] = [p2, p1];
  }
  const parts = [a.length + b.length + 4 + (p1 >= 0 ? 4 : 0)];
  const buf = Buffer.alloc(parts[0]);
  buf.writeUInt16BE(seed & 0xffff, 0);
  buf.write(a, 2, 'latin1');
  buf.write(b, 2 + a.length, 'latin1');
  let at = 2 + a.length + b.length;
  buf[at++] = proto;
  buf[at++] = 0;
  if (p1 >= 0) {
    buf.writeUInt16BE(p1, at);
    buf.writeUInt16BE(p2, at + 2);
  }
  return `1:${sha1Base64(buf)}`;
}
