// The flows open at one time, and when each ends: a TCP connection 5 s after it is complete
// (both FINs, or a RST) or after an unanswered SYN (Zeek's close and attempt delays), a new SYN
// on a closed 4-tuple starts another (Zeek's reuse; tshark's new stream), any flow after
// `idle` without a packet or `active` in all (nfstream's timeouts). Time is the packets' own
// (reading a file) or the wall clock (live: expire() is called on a timer).
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_UDP } from '../packet/protocols';
import { parseDns } from '../packet/dns';
import { DNS_PORTS, DnsNames } from './dns-names';
import { Flow, type FlowOptions, icmpCounterpart } from './flow';
import type { FlowPacket } from './flow-packet';
import type { FlowRecord } from './flow-record';

/** Zeek's tcp_close_delay and tcp_attempt_delay. */
const CLOSE_DELAY_US = 5e6;
const ATTEMPT_DELAY_US = 5e6;

export interface FlowTableOptions extends FlowOptions {
  /** A flow without packets this long ends (µs). */
  idleUs: number;
  /** A flow ends after this long in all, and the next packet starts a new one (µs). */
  activeUs: number;
}

export interface FlowEnd {
  flow: Flow;
  record: FlowRecord;
}

const portKey = (addr: string, port: number) => `${addr}${String.fromCharCode(port >> 8, port & 0xff)}`;

/** The flow key of a packet: both directions of a TCP/UDP flow and of an ICMP pair share it. */
export function flowKey(p: FlowPacket): string {
  const proto = String.fromCharCode(p.proto);
  if (p.proto === IPPROTO_ICMP || p.proto === IPPROTO_ICMPV6) {
    const pair = icmpCounterpart(p.proto, p.sport);
    if (pair === undefined) return `${proto}>${portKey(p.src, p.sport)}${portKey(p.dst, p.dport)}`; // one-way
    const a = portKey(p.src, Math.min(p.sport, pair));
    const b = portKey(p.dst, Math.min(p.sport, pair));
    return a < b ? `${proto}${a}${b}` : `${proto}${b}${a}`;
  }
  const a = portKey(p.src, p.sport);
  const b = portKey(p.dst, p.dport);
  return a < b ? `${proto}${a}${b}` : `${proto}${b}${a}`;
}

export class FlowTable {
  private readonly flows = new Map<string, Flow>();
  readonly dns = new DnsNames();
  /** Packets that are not TCP, UDP or ICMP over IP (no flow): counted. */
  otherPackets = 0;
  private lastSweepUs = 0;

  constructor(
    private readonly options: FlowTableOptions,
    private readonly onEnd: (end: FlowEnd) => void,
  ) {}

  get open(): number {
    return this.flows.size;
  }

  /** The flows open now (for a live view). */
  openFlows(): IterableIterator<Flow> {
    return this.flows.values();
  }

  add(p: FlowPacket): void {
    if (p.us - this.lastSweepUs >= 1e6) this.expire(p.us);
    const dns = p.proto === IPPROTO_UDP && (DNS_PORTS.has(p.sport) || DNS_PORTS.has(p.dport)) ? parseDns(p.payload) : undefined;
    if (dns) this.dns.learn(dns);
    const key = flowKey(p);
    let flow = this.flows.get(key);
    if (flow && this.endsBefore(flow, p)) {
      this.end(flow);
      flow = undefined;
    }
    if (!flow) {
      flow = new Flow(key, p, this.options, this.dns);
      this.flows.set(key, flow);
    }
    if (dns) flow.dnsService = true;
    flow.add(p);
  }

  /** Whether `flow` is over before packet p (a new TCP connection on its 4-tuple, or a timeout). */
  private endsBefore(flow: Flow, p: FlowPacket): boolean {
    if (this.expired(flow, p.us)) return true;
    return !!flow.tcp && flow.tcp.isReuse(flow.fromOrig(p), p.tcpFlags, p.seq);
  }

  private expired(flow: Flow, nowUs: number): boolean {
    if (nowUs - flow.lastUs >= this.options.idleUs) return true;
    if (nowUs - flow.firstUs >= this.options.activeUs) return true;
    if (flow.closedUs !== undefined && nowUs - Math.max(flow.closedUs, flow.lastUs) >= CLOSE_DELAY_US) return true;
    return !!flow.tcp && flow.tcp.attemptOnly && nowUs - flow.firstUs >= ATTEMPT_DELAY_US;
  }

  /** Ends the flows whose time is up at nowUs (µs). */
  expire(nowUs: number): void {
    this.lastSweepUs = nowUs;
    for (const flow of this.flows.values()) if (this.expired(flow, nowUs)) this.end(flow);
  }

  /** Ends every open flow (the end of the input), oldest first. */
  flush(): void {
    const all = [...this.flows.values()].sort((a, b) => a.firstUs - b.firstUs);
    for (const flow of all) this.end(flow);
  }

  private end(flow: Flow): void {
    this.flows.delete(flow.key);
    this.onEnd({ flow, record: flow.record() });
  }
}
