// One flow: its two ends (originator and responder, in Zeek's sense), packet and byte counts,
// the TCP connection state or the UDP/ICMP activity, the history, what its payloads said, the
// process behind it and the features. It becomes a record when it ends (flow-table.ts).
import { formatAddress } from '../packet/address';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, icmpCounterpart } from '../packet/protocols';
import { TCP_ACK, TCP_RST, TCP_SYN } from '../packet/dissect';
import { communityId } from './community-id';
import type { DnsName, DnsNames } from './dns-names';
import { FlowFeatures } from './features';
import type { FlowPacket, PacketProcess } from './flow-packet';
import type { FlowRecord } from './flow-record';
import { History, HistoryKind } from './history';
import { PayloadInspector } from './payload-inspector';
import { TcpConnection } from './tcp-connection';

// Zeek's likely_server_ports (its base scripts' analyzers): a first packet from one of these
// to another port is the responder's, and the roles are flipped.
const TCP_SERVER_PORTS = new Set([
  21, 2811, 22, 25, 587, 79, 80, 81, 631, 1080, 3128, 8000, 8080, 8888, 88, 135, 139, 445, 143, 389, 3268, 443, 465, 563, 585, 614, 636, 989, 990, 992,
  993, 995, 5223, 502, 514, 1434, 3306, 1883, 3389, 5222, 5269, 5432, 6379, 6666, 6667, 6668, 6669, 20000,
]);
const UDP_SERVER_PORTS = new Set([
  53, 137, 5353, 5355, 67, 4011, 88, 123, 161, 162, 389, 443, 514, 1812, 3389, 5060, 20000, 3544, 4789, 5072, 4754, 6081, 2123, 2152,
]);

const BASE62 = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** 32-bit FNV-1a of a string's code units, from a seed. */
function fnv32(text: string, seed: number): number {
  let h = seed;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

function base62(n: number, out: string[]): void {
  for (let w = n; w > 0; w = Math.floor(w / 62)) out.push(BASE62[w % 62]);
}

/**
 * A Zeek-style uid ("C" and base62 digits of 85 bits, least significant first, at most 16
 * characters), made from the flow's first packet time and its key: the same capture read twice,
 * or live and afterwards, gives the same uids.
 */
function flowUid(firstUs: number, key: string): string {
  const text = `${firstUs}|${key}`;
  const out = ['C'];
  base62(fnv32(text, 0x811c9dc5), out);
  // 53 more bits (what a number holds exactly) from two more hashes
  base62(fnv32(text, 0x9e3779b9) * 2 ** 21 + (fnv32(text, 0x85ebca6b) >>> 11), out);
  return out.join('');
}

export interface FlowOptions {
  /** Keep the classification features, with the first `splt` packets' sizes, directions and gaps. */
  features: boolean;
  splt: number;
}

export class Flow {
  origAddr: string;
  respAddr: string;
  origPort: number;
  respPort: number;
  readonly proto: number;
  readonly firstUs: number;
  lastUs: number;
  /** Per role (0 originator, 1 responder): packets, IP bytes, payload bytes. */
  pkts = [0, 0];
  ipBytes = [0, 0];
  payloadBytes = [0, 0];
  readonly history = new History();
  readonly tcp: TcpConnection | undefined;
  readonly inspector: PayloadInspector | undefined;
  features: FlowFeatures | undefined;
  process: PacketProcess | undefined;
  /** 0 when the program is the originator, 1 the responder; undefined when the file does not say. */
  appRole: 0 | 1 | undefined;
  /** The DNS names of both ends when the flow began. */
  names: [DnsName | undefined, DnsName | undefined];
  dnsService = false;
  /** Packet time (µs) at which the TCP connection was complete (closed or reset). */
  closedUs: number | undefined;
  /** The originator is the flow key's first end. */
  private origFirst: boolean;

  /** The next open flow whose key has the same hash (the table's chain). */
  sameHash: Flow | undefined;
  /** Its table ended it. */
  ended = false;

  constructor(
    readonly key: string,
    readonly keyHash: number,
    p: FlowPacket,
    options: FlowOptions,
    dns: DnsNames,
  ) {
    this.proto = p.proto;
    this.firstUs = this.lastUs = p.us;
    this.origAddr = p.src;
    this.respAddr = p.dst;
    this.origPort = p.sport;
    this.respPort = p.dport;
    this.origFirst = p.first;
    if (p.proto === IPPROTO_ICMP || p.proto === IPPROTO_ICMPV6) this.respPort = icmpCounterpart(p.proto, p.sport) ?? p.dport;
    if (p.proto === IPPROTO_TCP) this.tcp = new TcpConnection(this.history);
    if (p.proto === IPPROTO_TCP || p.proto === IPPROTO_UDP) this.inspector = new PayloadInspector(p.proto === IPPROTO_TCP);
    if (options.features) this.features = new FlowFeatures(options.splt);
    this.names = [dns.lookup(p.src), dns.lookup(p.dst)];
    if (this.shouldFlipAtStart(p)) this.flip();
  }

  private shouldFlipAtStart(p: FlowPacket): boolean {
    if (p.proto === IPPROTO_TCP) {
      if ((p.tcpFlags & (TCP_SYN | TCP_ACK)) === TCP_SYN) return false;
      if (!TCP_SERVER_PORTS.has(p.sport)) return false;
      return TCP_SERVER_PORTS.has(p.dport) ? !(p.tcpFlags & TCP_SYN) && p.sport < p.dport : true;
    }
    if (p.proto === IPPROTO_UDP) {
      const broadcast = p.dst === '\xff\xff\xff\xff';
      return !broadcast && UDP_SERVER_PORTS.has(p.sport) && !UDP_SERVER_PORTS.has(p.dport);
    }
    return false;
  }

  /** Swaps originator and responder (Zeek's FlipRoles; the history gets a '^'). */
  flip(): void {
    [this.origAddr, this.respAddr] = [this.respAddr, this.origAddr];
    [this.origPort, this.respPort] = [this.respPort, this.origPort];
    this.origFirst = !this.origFirst;
    this.pkts.reverse();
    this.ipBytes.reverse();
    this.payloadBytes.reverse();
    this.names.reverse();
    this.tcp?.flip();
    this.features?.flip();
    if (this.appRole !== undefined) this.appRole = this.appRole === 0 ? 1 : 0;
    this.history.flipped();
  }

  /**
   * Whether a packet (sent by the originator or not) went up, from the program: by its side of
   * the flow when the file says, else as the originator's.
   */
  fromApp(fromOrig: boolean): boolean {
    return this.appRole === undefined ? fromOrig : (this.appRole === 0) === fromOrig;
  }

  /** Whether a packet went from the originator. */
  fromOrig(p: FlowPacket): boolean {
    return p.first === this.origFirst;
  }

  add(p: FlowPacket): void {
    let fromOrig = this.fromOrig(p);
    if (this.appRole === undefined && p.direction) this.appRole = (p.direction === 'out') === fromOrig ? 0 : 1;
    if (!this.process) {
      const proc = p.process();
      if (proc.pid !== null) this.process = proc;
    }
    if (this.tcp) {
      const wasClosed = this.tcp.bothClosed;
      this.tcp.packet(fromOrig, p.tcpFlags, p.seq, p.ack, p.payloadLen, p.window, this.flipMidway);
      fromOrig = this.fromOrig(p);
      if (!wasClosed) this.lastUs = p.us; // once both ends closed, later packets do not extend it
      if (this.closedUs === undefined && this.tcp.closeComplete) this.closedUs = p.us;
      const inspector = this.inspector;
      if (inspector && !inspector.finished) {
        if (p.tcpFlags & TCP_SYN) inspector.syn(fromOrig, p.seq);
        if (!(p.tcpFlags & TCP_RST) && p.payloadLen > 0) inspector.add(fromOrig, p.payload, p.seq);
      }
    } else {
      this.lastUs = p.us;
      if (!this.isIcmp) this.history.check(fromOrig, HistoryKind.Data, 'D');
      if (this.inspector && !this.inspector.finished && p.payloadLen > 0) this.inspector.add(fromOrig, p.payload, 0);
    }
    const r = fromOrig ? 0 : 1;
    this.pkts[r]++;
    this.ipBytes[r] += p.ipLen;
    this.payloadBytes[r] += p.payloadLen;
    this.features?.add(p.us, fromOrig, p.ipLen, this.tcp ? p.tcpFlags : undefined);
  }

  /** A flip in the middle of the TCP state machine: the connection's endpoints swap too (flip() does). */
  private readonly flipMidway = (): void => this.flip();

  private get isIcmp(): boolean {
    return this.proto === IPPROTO_ICMP || this.proto === IPPROTO_ICMPV6;
  }

  /** Bytes each role sent, in Zeek's sense (TCP: sequence space; UDP, ICMP: payloads). */
  private sizes(): [number, number] {
    if (this.tcp) return [this.tcp.origBytes(), this.tcp.respBytes()];
    return [this.payloadBytes[0], this.payloadBytes[1]];
  }

  connState(): string {
    if (this.tcp) return this.tcp.connState();
    if (this.proto === IPPROTO_UDP) {
      const [o, r] = [this.pkts[0] > 0, this.pkts[1] > 0];
      return o ? (r ? 'SF' : 'S0') : r ? 'SHR' : 'OTH';
    }
    return 'OTH';
  }

  service(): string | undefined {
    const s = this.inspector?.result.service;
    if (this.dnsService) return s ? `dns,${s}` : 'dns';
    if (s === 'quic') return 'quic,ssl';
    return s;
  }

  /** The other end's name: what the program's own payloads said, else its DNS answer. */
  serverName(): { name: string; source: string } | undefined {
    const seen = this.inspector?.result;
    if (seen?.serverName) return { name: seen.serverName, source: seen.source as string };
    const dns = this.serverDns();
    return dns && { name: dns.name, source: 'dns' };
  }

  /** The program's own DNS answer for the other end (the responder's, unless the program answered). */
  serverDns(): DnsName | undefined {
    return this.names[this.appRole === 1 ? 0 : 1];
  }

  uid(): string {
    return flowUid(this.firstUs, this.key);
  }

  /** Its Community ID v1 (with the roles as they are now). */
  communityId(): string {
    const icmpType = this.origPort;
    return this.isIcmp
      ? communityId(this.proto, this.origAddr, this.respAddr, icmpType, icmpCounterpart(this.proto, icmpType) === undefined ? this.respPort : 0)
      : communityId(this.proto, this.origAddr, this.respAddr, this.origPort, this.respPort);
  }

  record(): FlowRecord {
    const r: FlowRecord = {};
    const us = this.firstUs;
    r.ts = us / 1e6; // the double nearest to the decimal seconds.micro, as the text would parse
    r.uid = this.uid();
    r['id.orig_h'] = formatAddress(this.origAddr);
    r['id.orig_p'] = this.origPort;
    r['id.resp_h'] = formatAddress(this.respAddr);
    r['id.resp_p'] = this.respPort;
    r.proto = this.proto === IPPROTO_TCP ? 'tcp' : this.proto === IPPROTO_UDP ? 'udp' : 'icmp';
    const service = this.service();
    if (service) r.service = service;
    const [ob, rb] = this.sizes();
    const durationUs = this.lastUs - this.firstUs;
    if (durationUs > 0) {
      r.duration = durationUs / 1e6;
      r.orig_bytes = ob;
      r.resp_bytes = rb;
    }
    r.conn_state = this.connState();
    r.missed_bytes = this.tcp ? this.tcp.missedBytes() : 0;
    if (this.history.text) r.history = this.history.text;
    r.orig_pkts = this.pkts[0];
    r.orig_ip_bytes = this.ipBytes[0];
    r.resp_pkts = this.pkts[1];
    r.resp_ip_bytes = this.ipBytes[1];
    r.community_id = this.communityId();
    const p = this.process;
    if (p?.pid != null) r.pid = p.pid;
    if (p?.tid != null) r.tid = p.tid;
    if (p?.comm != null) r.comm = p.comm;
    if (p?.exe != null) r.exe = p.exe;
    if (this.appRole !== undefined) {
      const app = this.appRole;
      r.app_dir = app === 0 ? 'orig' : 'resp';
      r.up_bytes = app === 0 ? ob : rb;
      r.down_bytes = app === 0 ? rb : ob;
      r.up_pkts = this.pkts[app];
      r.down_pkts = this.pkts[1 - app];
    }
    const named = this.serverName();
    if (named) {
      r.server_name = named.name;
      r.server_name_source = named.source;
    }
    const dns = this.serverDns();
    if (dns) r.dns_chain = dns.chain;
    const seen = this.inspector?.result;
    if (seen?.tlsVersion) r.tls_version = seen.tlsVersion;
    if (seen?.alpn?.length) r.alpn = seen.alpn;
    if (this.features) Object.assign(r, this.features.values());
    return r;
  }
}
