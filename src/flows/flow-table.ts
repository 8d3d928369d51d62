// The flows open at one time, and when each ends: a TCP connection 5 s after it is complete
// (both FINs, or a RST) or after an unanswered SYN (Zeek's close and attempt delays), a new SYN
// on a closed 4-tuple starts another (Zeek's reuse; tshark's new stream), any flow after
// `idle` without a packet or `active` in all (nfstream's timeouts). Time is the packets' own
// (reading a file) or the wall clock (live: expire() is called on a timer).
import { IPPROTO_UDP } from '../packet/protocols';
import { parseDns } from '../packet/dns';
import { DNS_PORTS, DnsNames } from './dns-names';
import { Flow, type FlowOptions } from './flow';
import type { FlowPacket } from './flow-packet';
import type { FlowRecord } from './flow-record';

/** Zeek's tcp_close_delay and tcp_attempt_delay. */
const CLOSE_DELAY_US = 5e6;
const ATTEMPT_DELAY_US = 5e6;
/** Packet time between two looks for flows whose time is up (a record's content does not depend on it). */
const SWEEP_US = 10e6;

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

export class FlowTable {
  /** Open flows by key hash (flows whose keys share a hash are chained by `sameHash`). */
  private readonly flows = new Map<number, Flow>();
  readonly dns = new DnsNames();
  /** Packets that are not TCP, UDP or ICMP over IP (no flow): counted. */
  otherPackets = 0;
  private lastSweepUs = 0;

  constructor(
    private readonly options: FlowTableOptions,
    private readonly onEnd: (end: FlowEnd) => void,
  ) {}

  /** The flows open now (for a live view). */
  *openFlows(): IterableIterator<Flow> {
    for (const head of this.flows.values()) for (let f: Flow | undefined = head; f; f = f.sameHash) yield f;
  }

  private find(p: FlowPacket): Flow | undefined {
    for (let f = this.flows.get(p.keyHash); f; f = f.sameHash) if (p.keyIs(f.key)) return f;
    return undefined;
  }

  private insert(flow: Flow): void {
    flow.sameHash = this.flows.get(flow.keyHash);
    this.flows.set(flow.keyHash, flow);
  }

  private remove(flow: Flow): void {
    const head = this.flows.get(flow.keyHash);
    if (head === flow) {
      if (flow.sameHash) this.flows.set(flow.keyHash, flow.sameHash);
      else this.flows.delete(flow.keyHash);
    } else {
      for (let f = head; f; f = f.sameHash)
        if (f.sameHash === flow) {
          f.sameHash = flow.sameHash;
          break;
        }
    }
    flow.sameHash = undefined;
  }

  /** Adds a packet to its flow (made for it when none is open): that flow. */
  add(p: FlowPacket): Flow {
    if (p.us - this.lastSweepUs >= SWEEP_US) this.expire(p.us);
    const dns = p.proto === IPPROTO_UDP && (DNS_PORTS.has(p.sport) || DNS_PORTS.has(p.dport)) ? parseDns(p.payload) : undefined;
    if (dns) this.dns.learn(dns);
    let flow = this.find(p);
    if (flow && this.endsBefore(flow, p)) {
      this.end(flow);
      flow = undefined;
    }
    if (!flow) {
      flow = new Flow(p.key, p.keyHash, p, this.options, this.dns);
      this.insert(flow);
    }
    if (dns) flow.dnsService = true;
    flow.add(p);
    return flow;
  }

  /**
   * add(p) for a packet of `flow` (known to be of its key) done without looking it up: false,
   * with nothing done, when add(p) must take it (the flow ended or ends before p, or its first
   * payloads are still being read).
   */
  addKnown(flow: Flow, p: FlowPacket): boolean {
    if (flow.ended || (flow.inspector && !flow.inspector.finished)) return false;
    if (p.us - this.lastSweepUs >= SWEEP_US) {
      this.expire(p.us);
      if (flow.ended) return false;
    }
    if (this.endsBefore(flow, p)) return false;
    flow.add(p);
    return true;
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
    const due: Flow[] = [];
    for (const head of this.flows.values()) for (let f: Flow | undefined = head; f; f = f.sameHash) if (this.expired(f, nowUs)) due.push(f);
    for (const flow of due) this.end(flow);
  }

  /** Ends every open flow (the end of the input), oldest first. */
  flush(): void {
    const all = [...this.openFlows()].sort((a, b) => a.firstUs - b.firstUs);
    for (const flow of all) this.end(flow);
  }

  private end(flow: Flow): void {
    this.remove(flow);
    flow.ended = true;
    this.onEnd({ flow, record: flow.record() });
  }
}
