// The controller's copy of the kernel filter's rules, fed by tracer events, deciding exactly
// which captured packets belong to the traced program and to which of its processes.
// The kernel filter is a superset (pending destinations, rules kept for a grace period);
// this table has the last word, judged at each packet's capture time.
import { addressBytes, isWildcard } from '../packet/address';
import type { Endpoint, FilterRule, TraceEvent } from '../native';
import { type Dissected, type Endpoints, IPPROTO_TCP, TCP_ACK, TCP_RST, TCP_SYN } from '../packet/dissect';
import { ENTRY_ONLY_SEND_MS, QUEUED_SEND_MS, type SendWindows, addSendWindow, inSendWindow } from './send-windows';

export interface Owner {
  pid: number;
  tid: number;
  comm: string;
  inode: number;
  /** Set once another process's socket is seen on its port: what to say on the packets it receives. */
  shared?: string;
}

export interface GracePolicy {
  /** How long a closed TCP socket's exact flow keeps matching (FIN/ACK tail, TIME_WAIT). */
  tcpFlowMs: number;
  /** Margin for packets captured before a socket was seen gone but judged after. */
  closedMarginMs: number;
  /**
   * The same for a TCP socket whose connection the kernel no longer finishes (no orphan, no
   * TIME_WAIT): longer, as a connection's last packets come in bursts the judge may lag behind.
   */
  tcpDoneMs: number;
}

export const DEFAULT_GRACE: GracePolicy = { tcpFlowMs: 60_000, closedMarginMs: 2_000, tcpDoneMs: 10_000 };

/** A sock_diag snapshot: which sockets existed between `before` and `after` (realtime ms). */
export interface SocketSnapshot {
  inodes: Set<number>;
  /**
   * socketsSeen when the dump began: sockets that came into the table after it (events taken
   * after the dump) may have been bound after the dump read past them, and are not judged.
   */
  seen?: number;
  /** "proto/port" -> inodes holding that local port. */
  ports?: Map<string, Set<number>>;
  /**
   * With a TCP dump: the TCP connections the kernel is still finishing without a socket
   * (tcpFlowKey): a gone socket's flow is kept while its connection is among them.
   */
  finishing?: Set<string>;
  before: number;
  after: number;
}

interface SocketState {
  owner: Owner;
  /**
   * Realtime ms from which packets can be its own: the entry of the call that gave it its
   * first rules (less the clock slack). A 4-tuple or port reused by a later socket of the
   * program belongs to the older socket for packets before this, to the newer one after.
   */
  since: number;
  /** Wire protocol of the socket (6, 17, 136; 1 and 58 for ping sockets). */
  proto: number;
  /** The table's socket count when it came in: a sweep judges only sockets it could see. */
  added: number;
  /** [wire protocol, local port] of its rules (the classic filter matches on these). */
  localPorts: Array<[number, number]>;
  tcpFlows: string[];
  flows: string[];
  binds: string[];
  /** Realtime ms at which the socket was first seen gone (it closed before that). */
  goneAt: number | undefined;
  /** Realtime ms at which it was last seen alive. */
  lastAlive: number;
  /** Realtime ms at which a connection of it was last seen still finishing (after it was gone). */
  finishingAt: number;
  /**
   * When it was seen gone, the other sockets that held its local port (their inodes). One of
   * the program's own (a fresh socket per query, given the port again) takes nothing from it:
   * packets before that one's time are still this one's. Judged when asked, as events come.
   */
  portHolders: number[] | undefined;
  /** Its port rules (from bind) hold for packets up to this time: then it connected. */
  bindsUntil: number | undefined;
  /**
   * A TCP socket's first SYN judged by its port rule, before its flow rule came (a connect
   * from a bound port): [the flow's key, its sequence number], taken as that flow's first SYN.
   */
  bindSyn: [string, number] | undefined;
  /** Sequence number of the first SYN of each TCP flow: its own connection attempt. */
  synSeq: Array<number | undefined> | undefined;
  superseded: boolean;
  /** UDP: when its traced send calls ran (send-windows.ts); from the first one on, every datagram it sends is inside one. */
  sendWindows: SendWindows | undefined;
  /** UDP: [time, allowance] pairs of datagrams from its port sent outside its windows (another socket's): the first few met. */
  foreignSends: number[] | undefined;
  /** Another process's socket was seen on its port (SO_REUSEPORT): said once. */
  shared: boolean;
}

/** A port of the program that a socket outside it holds too (SO_REUSEPORT): packets to it may be either's. */
export interface SharedPort {
  owner: Owner;
  proto: number;
  port: number;
  /** The inodes of the other sockets. */
  others: number[];
}

interface FailedConnect {
  remotes: Set<string>;
  from: number;
  to: number;
  owner: Owner;
}
const FAILED_CONNECT_MEMORY_MS = 30_000;
/** Flow changes noted for the native path before it is told to forget everything instead. */
const MAX_FLOW_CHANGES = 4096;
const CLOCK_SLACK_MS = 2;
/**
 * A call's events carry the time of its stop (native/tracer.cc), which precedes every packet
 * of the call; only the µs rounding of event times needs room. A socket's rules must not
 * reach back further: the packets just before its first call are another socket's (one that
 * released the port the kernel then gave this one).
 */
const SINCE_SLACK_MS = 0.01;
const SEND_CALLS: ReadonlySet<string> = new Set(['sendto', 'sendmsg', 'sendmmsg']);
/** Foreign datagrams remembered per socket: the earliest few decide. */
const MAX_FOREIGN_SENDS = 8;

const ALL_PROTOCOLS: ReadonlySet<number> = new Set([6, 17, 136, 1, 58]);

/**
 * Owner, nobody (undefined), or not yet: 'pending' (a call in flight decides it) or 'recheck'
 * (a UDP packet newer than the last proof that its socket was alive: the next sweep decides).
 */
/** Which end of a packet's (or a quoted packet's) endpoints belongs to this host. */
export type LocalSide = 'src' | 'dst' | 'both';

export type Verdict = Owner | 'pending' | 'recheck' | undefined;

// A key is the protocol and port as two UTF-16 code units, then the raw address bytes (4 or
// 16, which tell the family): short to build and to hash, for every packet.
function key(proto: number, bytes: string, port: number): string {
  return String.fromCharCode(proto, port) + bytes;
}

function endpointKey(proto: number, e: Endpoint): { key: string; any: boolean; family: 4 | 6 } {
  const { family, bytes } = addressBytes(e.address);
  return { key: key(proto, bytes, e.port), any: isWildcard(bytes), family };
}

const ANY4 = '\0'.repeat(4);
const ANY6 = '\0'.repeat(16);

function anyKey(family: number, proto: number, port: number): string {
  return key(proto, family === 4 ? ANY4 : ANY6, port);
}

/**
 * A packet's keys into the table, made once per packet: a packet waiting for an event is
 * judged again with the same keys.
 */
export interface PacketKeys {
  /** Source and destination endpoints. */
  a: string;
  b: string;
  /** The flow both ways round. */
  ab: string;
  ba: string;
}

/** A call in flight that picks its local port: its destinations' keys, and when it entered. */
interface PendingCall {
  keys: string[];
  since: number;
  /** The socket of the call. */
  inode: number;
}

/** The call a pending event (or a socket event's merged entry) begins; none without pending rules. */
function pendingCall(rules: readonly FilterRule[], since: number, inode: number): PendingCall | undefined {
  const keys: string[] = [];
  for (const r of rules) if (r.kind === 'pending' && r.remote) keys.push(endpointKey(r.proto, r.remote).key);
  return keys.length ? { keys, since, inode } : undefined;
}

/** A flow's key from its two endpoint keys: a rule's local then remote, a packet's either way. */
function flowKey(from: string, to: string): string {
  return `${from}|${to}`;
}

/** A flow key's two ends: raw address bytes (4 or 16 latin1 characters) and port each. */
export function flowKeyEnds(k: string): [{ bytes: string; port: number }, { bytes: string; port: number }] {
  const n = addressLength(k);
  return [
    { bytes: k.slice(2, 2 + n), port: k.charCodeAt(1) },
    { bytes: k.slice(5 + n), port: k.charCodeAt(4 + n) },
  ];
}

/** The same flow the other way round (a packet's keys.ba of a packet whose keys.ab is k). */
export function reversedFlowKey(k: string): string {
  const n = addressLength(k);
  return flowKey(k.slice(3 + n), k.slice(0, 2 + n));
}

// A flow key is two endpoint keys (protocol, port, then the address bytes) and a '|'.
function addressLength(flow: string): number {
  return (flow.length - 5) / 2;
}

/** A TCP connection's key as its socket's flow rule has it (addresses as raw bytes, IPv4 as 4). */
export function tcpFlowKey(local: string, localPort: number, remote: string, remotePort: number): string {
  return flowKey(key(IPPROTO_TCP, local, localPort), key(IPPROTO_TCP, remote, remotePort));
}

export function packetKeys(d: Endpoints): PacketKeys {
  const a = key(d.proto, d.src, d.sport);
  const b = key(d.proto, d.dst, d.dport);
  return { a, b, ab: flowKey(a, b), ba: flowKey(b, a) };
}

/**
 * packetKeys for a stream of packets: one flow's packets come in runs, both ways round, and
 * share their keys (strings already flattened and hashed) instead of making four new ones
 * each.
 */
export class PacketKeyCache {
  // the last flow made, as its packet had it (-1: none yet)
  private proto = -1;
  private src = '';
  private dst = '';
  private sport = 0;
  private dport = 0;
  private forward: PacketKeys = { a: '', b: '', ab: '', ba: '' };
  private reverse: PacketKeys = this.forward;

  keysOf(d: Endpoints): PacketKeys {
    if (this.proto === d.proto) {
      if (this.sport === d.sport && this.dport === d.dport && this.src === d.src && this.dst === d.dst) return this.forward;
      if (this.sport === d.dport && this.dport === d.sport && this.src === d.dst && this.dst === d.src) return this.reverse;
    }
    const k = packetKeys(d);
    this.proto = d.proto;
    this.src = d.src;
    this.dst = d.dst;
    this.sport = d.sport;
    this.dport = d.dport;
    this.forward = k;
    this.reverse = { a: k.b, b: k.a, ab: k.ba, ba: k.ab };
    return k;
  }
}

/** The sockets holding one key, oldest first: the one whose time a packet falls in. */
type Holders = SocketState[];

function hold(map: Map<string, Holders>, key: string, s: SocketState): void {
  const list = map.get(key);
  if (!list) map.set(key, [s]);
  else if (!list.includes(s)) {
    list.push(s);
    list.sort((x, y) => x.since - y.since);
  }
}

function unhold(map: Map<string, Holders>, key: string, s: SocketState): void {
  const list = map.get(key);
  const i = list ? list.indexOf(s) : -1;
  if (i < 0) return;
  if (list!.length === 1) map.delete(key);
  else list!.splice(i, 1);
}

/**
 * The holder a packet captured at tsMs belongs to: the newest that existed by then. None
 * before the first: the key was someone else's until the kernel gave it to that socket.
 */
function holderAt(list: Holders | undefined, tsMs: number): SocketState | undefined {
  return list && list[holderIndexAt(list, tsMs)];
}

/** holderAt's place in the list (-1: none). */
function holderIndexAt(list: Holders, tsMs: number): number {
  let i = list.length - 1;
  while (i >= 0 && list[i].since > tsMs) i--;
  return i;
}

export class EndpointTable {
  private readonly flows = new Map<string, Holders>();
  private readonly binds = new Map<string, Holders>();
  private readonly pending = new Map<string, number>();
  private readonly pendingByTid = new Map<number, PendingCall>();
  // TCP connects that failed inside the call: the socket lost its port before the exit stop
  // could read it, so their SYNs (and the RST or ICMP error answering them) are recognised by
  // destination and time instead.
  private failedConnects: FailedConnect[] = [];
  private readonly sockets = new Map<number, SocketState>();

  /**
   * Whether the program may still exchange packets once all its processes are gone: one of
   * its sockets is alive (another process holds it), or one of its TCP connections is still
   * finishing (`exchanging`: the kernel's connections other than TIME_WAIT, as flow keys).
   */
  stillExchanging(liveInodes: Set<number>, exchanging: Set<string>): boolean {
    for (const [inode, s] of this.sockets) {
      if (liveInodes.has(inode)) return true;
      if (s.tcpFlows.some((k) => exchanging.has(k))) return true;
    }
    return false;
  }
  private readonly heldByProto = new Map<number, number>();

  /** The highest rule generation among the events applied (classic filter mode). */
  generation = 0;

  /** Grows when a process's program may have changed (exec, fork, attach): what the file says of its packets. */
  programVersion = 0;

  // Socket states whose inode a newer socket state took (their flows are still held), by inode.
  private readonly replacedByInode = new Map<number, SocketState[]>();

  // The TCP flow keys (local end first) whose verdicts may have changed since the reader of
  // knownFlowSpan last asked (takeFlowChanges); undefined until it watches. Past
  // MAX_FLOW_CHANGES it is told to forget everything instead.
  private flowChanges: string[] | undefined;
  private flowChangesAll = false;

  /** A packet waits for a sweep ('recheck'): sweep soon. */
  sweepWanted = false;

  /** An MPTCP socket was seen: sweeps must also list MPTCP sockets (a dump of their own). */
  mptcpSeen = false;

  /**
   * Grows whenever a verdict may have changed (an event, a sweep, a SYN taken as a flow's
   * first): a packet judged at the same version is judged the same again.
   */
  version = 0;

  /**
   * confirmUdp: judge UDP packets by sweeps, not just rules: a packet counts when its socket was
   * seen alive after it, or, once the socket is gone, when no other socket took its port —
   * so a program that takes a released UDP port at once is never mistaken for the traced one.
   */
  constructor(
    private readonly grace: GracePolicy = DEFAULT_GRACE,
    private readonly confirmUdp = false,
    /** See send-windows.ts: how long after a send call a loopback datagram may be stamped. */
    private readonly loopbackSendTailMs = 0,
  ) {}

  /** Local ports of every socket in the table, per wire protocol. */
  localPorts(): Map<number, number[]> {
    const out = new Map<number, number[]>();
    for (const s of this.sockets.values())
      for (const [proto, port] of s.localPorts) {
        let list = out.get(proto);
        if (!list) out.set(proto, (list = []));
        list.push(port);
      }
    return out;
  }

  /** Sockets that had rules, over the whole run. */
  socketsSeen = 0;

  /**
   * Whether the socket with this inode sent a packet from `port` (its local port): the
   * program's side of a loopback packet, which the kernel hands over as received either way.
   * False when the socket is no longer in the table.
   */
  sentFrom(inode: number, proto: number, port: number): boolean {
    const s = this.sockets.get(inode);
    if (!s) return false;
    for (const [p, local] of s.localPorts) if (p === proto && local === port) return true;
    return false;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  apply(e: TraceEvent): void {
    this.version++;
    if (e.kind === 'exec' || e.kind === 'attach' || (e.kind === 'spawn' && !e.thread)) this.programVersion++;
    switch (e.kind) {
      case 'pending': {
        this.generation = Math.max(this.generation, e.ruleGeneration);
        // a thread is in one call at a time: an earlier one of it that never ended here was
        // interrupted and is entered again now (a restarted call has no exit event)
        this.endPending(e.tid);
        const call = pendingCall(e.rules, e.time, e.inode);
        if (!call) return;
        for (const k of call.keys) this.pending.set(k, (this.pending.get(k) ?? 0) + 1);
        this.pendingByTid.set(e.tid, call);
        return;
      }
      case 'socket': {
        this.generation = Math.max(this.generation, e.ruleGeneration);
        if (e.proto === 'mptcp') this.mptcpSeen = true;
        // The call this ends: its pending event's, applied before, or merged into this one (both
        // came in one delivery: the same as that event applied just before, nothing judged between).
        const call = e.entry ? pendingCall(e.entry.rules, e.entry.time, e.inode) : this.pendingByTid.get(e.tid);
        // its packets may precede the event: from the call's entry on (a pending call's)
        const entry = call?.since ?? e.time;
        this.noteFailedConnect(e, call);
        this.endPending(e.tid);
        // a socket found at an attach existed before anyone looked
        if (e.rules.length) this.addRules(e, e.call === 'existing' ? -Infinity : entry - SINCE_SLACK_MS);
        if (SEND_CALLS.has(e.call) && e.proto !== 'tcp' && e.proto !== 'mptcp') this.noteSend(e, entry);
        return;
      }
      case 'exit':
        this.endPending(e.tid);
        return;
      case 'exec':
        // a thread that execs takes the pid: the old leader (tid = pid) is gone mid-call
        if (e.formerTid !== e.pid) this.endPending(e.pid);
        return;
    }
  }

  /** A send call on a UDP socket: it may have sent from its entry to its exit (send-windows.ts). */
  private noteSend(e: Extract<TraceEvent, { kind: 'socket' }>, entry: number): void {
    const s = this.sockets.get(e.inode);
    if (!s || s.goneAt !== undefined) return;
    addSendWindow((s.sendWindows ??= []), entry, e.result === null ? entry + ENTRY_ONLY_SEND_MS : e.time);
  }

  private noteFailedConnect(e: Extract<TraceEvent, { kind: 'socket' }>, p: PendingCall | undefined): void {
    if (!p || e.call !== 'connect' || e.proto !== 'tcp' || e.result === null || e.result >= 0) return;
    if (e.errno === 'EINPROGRESS' || (e.local && e.local.port !== 0)) return;
    const now = e.time;
    this.failedConnects = this.failedConnects.filter((f) => now - f.to < FAILED_CONNECT_MEMORY_MS);
    this.failedConnects.push({
      remotes: new Set(p.keys),
      from: p.since - CLOCK_SLACK_MS,
      to: now + CLOCK_SLACK_MS,
      owner: { pid: e.pid, tid: e.tid, comm: e.comm, inode: e.inode, shared: undefined },
    });
  }

  private judgeFailedConnect(d: Dissected, a: string, b: string, tsMs: number): Owner | undefined {
    for (const f of this.failedConnects) {
      if (tsMs < f.from || tsMs > f.to) continue;
      const syn = (d.tcpFlags & (TCP_SYN | TCP_ACK)) === TCP_SYN;
      if (f.remotes.has(b) && (syn || d.icmpError)) return f.owner; // our SYN, or an error quoting it
      if (f.remotes.has(a) && d.tcpFlags & TCP_RST) return f.owner; // the refusal
    }
    return undefined;
  }

  private endPending(tid: number): void {
    const keys = this.pendingByTid.get(tid)?.keys;
    if (!keys) return;
    this.pendingByTid.delete(tid);
    for (const k of keys) {
      const n = (this.pending.get(k) ?? 1) - 1;
      if (n <= 0) this.pending.delete(k);
      else this.pending.set(k, n);
    }
  }

  private addRules(e: Extract<TraceEvent, { kind: 'socket' }>, since: number): void {
    let s = this.sockets.get(e.inode);
    if (!s || s.goneAt !== undefined) {
      const proto = e.rules.find((r) => r.local)?.proto ?? 0;
      // every field set here: one object shape for all sockets (the judging code stays optimised)
      s = {
        owner: { pid: e.pid, tid: e.tid, comm: e.comm, inode: e.inode, shared: undefined },
        since,
        proto,
        added: this.socketsSeen,
        localPorts: [],
        tcpFlows: [],
        flows: [],
        binds: [],
        goneAt: undefined,
        lastAlive: -Infinity, // confirmed by the next sweep
        finishingAt: -Infinity,
        portHolders: undefined,
        bindsUntil: undefined,
        bindSyn: undefined,
        synSeq: undefined,
        superseded: false,
        sendWindows: undefined,
        foreignSends: undefined,
        shared: false,
      };
      const replaced = this.sockets.get(e.inode);
      if (replaced) {
        this.countHeld(replaced.proto, -1);
        // its flows stay held (their grace), but sentFrom(inode) answers for the new socket now
        let older = this.replacedByInode.get(e.inode);
        if (!older) this.replacedByInode.set(e.inode, (older = []));
        older.push(replaced);
        this.inodeChanged(e.inode, replaced);
      }
      this.sockets.set(e.inode, s);
      this.countHeld(proto, 1);
      this.socketsSeen++;
    }
    for (const r of e.rules) {
      if (!r.local) continue;
      const local = endpointKey(r.proto, r.local);
      s.localPorts.push([r.proto, r.local.port]);
      if (r.kind === 'flow' && r.remote) {
        s.bindsUntil ??= e.time; // connected: from now on only its 4-tuple is its traffic
        const k = flowKey(local.key, endpointKey(r.proto, r.remote).key);
        hold(this.flows, k, s);
        (r.proto === IPPROTO_TCP ? s.tcpFlows : s.flows).push(k);
      } else if (r.kind === 'bind') {
        const keys = [local.key];
        // a dual-stack socket bound to [::] also receives IPv4
        if (local.any && local.family === 6) keys.push(anyKey(4, r.proto, r.local.port));
        for (const k of keys) {
          hold(this.binds, k, s);
          s.binds.push(k);
        }
        // a datagram port: a sweep soon tells whether another process holds it too
        if (r.proto !== IPPROTO_TCP) this.sweepWanted = true;
      }
    }
    // its flows have a new holder; its own (sentFrom) may answer otherwise
    this.flowsChanged(s.tcpFlows);
  }

  /** Whose packet this is: an owner, 'pending' (decided when a call in flight ends), or nobody. */
  /**
   * local: which end of the packet's endpoints is on this host ('src' for a packet sent here,
   * 'dst' for one received, 'both' on loopback). Port rules (binds) match only that end: a
   * listener on *:443 must not claim another program's connection to some remote :443.
   */
  judge(d: Dissected, tsMs: number, local: LocalSide = 'both', keys: PacketKeys = packetKeys(d)): Verdict {
    const { a, b } = keys;
    // the flow as its rule has it: local end first
    let ruleKey = keys.ab;
    let holders = this.flows.get(ruleKey);
    if (!holders) holders = this.flows.get((ruleKey = keys.ba));
    const flow = holderAt(holders, tsMs);
    if (flow) {
      const v = this.judgeFlow(flow, ruleKey, d, tsMs);
      if (v) return v;
    }
    if (this.binds.size) {
      // a first SYN sent from a bound port: remembered as its flow's own
      const syn = d.proto === IPPROTO_TCP && (d.tcpFlags & (TCP_SYN | TCP_ACK)) === TCP_SYN ? d.tcpSeq : undefined;
      const v =
        (local !== 'dst' &&
          (this.judgeBind(a, tsMs, local, syn, keys.ab) ??
            this.judgeBind(anyKey(d.family, d.proto, d.sport), tsMs, local, syn, keys.ab))) ||
        (local !== 'src' && (this.judgeBind(b, tsMs) ?? this.judgeBind(anyKey(d.family, d.proto, d.dport), tsMs)));
      if (v) return v;
    }
    if (this.pending.size && (this.pending.has(b) || this.pending.has(a))) return 'pending';
    if (d.proto === IPPROTO_TCP && this.failedConnects.length) return this.judgeFailedConnect(d, a, b, tsMs);
    return undefined;
  }

  /**
   * For a TCP packet that is not a SYN, judged `owner`'s by a flow rule: the capture times
   * [since, until) over which judge() gives `owner` to every packet of the same direction that
   * is not a SYN either, until takeFlowChanges names its flow (or all) or programVersion moves
   * (undefined when its verdict came from elsewhere). Those packets need no judging: the native
   * path writes them (capture/native-path.ts).
   */
  knownFlowSpan(keys: PacketKeys, tsMs: number, owner: Owner): [number, number] | undefined {
    // judge()'s lookup: the rule of this direction first, then the other way round
    let holders = this.flows.get(keys.ab);
    if (!holders) holders = this.flows.get(keys.ba);
    if (!holders) return undefined;
    const i = holderIndexAt(holders, tsMs);
    const s = holders[i];
    if (!s || s.superseded || s.owner !== owner) return undefined;
    return [s.since, i + 1 < holders.length ? holders[i + 1].since : Infinity];
  }

  /**
   * The owner by a port rule (bind) of key, if it held at tsMs. sentOn: the packet left from
   * this port, on loopback ('both') or a real interface ('src').
   */
  private judgeBind(k: string, tsMs: number, sentOn?: LocalSide, syn?: number, synFlow?: string): Owner | 'recheck' | undefined {
    const s = holderAt(this.binds.get(k), tsMs);
    if (!s || (s.bindsUntil !== undefined && tsMs > s.bindsUntil)) return undefined;
    if (s.proto !== IPPROTO_TCP && this.confirmUdp) return this.judgeUdpPort(s, tsMs, sentOn);
    if (!this.alive(s, tsMs)) return undefined;
    if (syn !== undefined && s.bindSyn === undefined) s.bindSyn = [synFlow!, syn];
    return s.owner;
  }

  /** A UDP packet on s's port: its send windows first (send-windows.ts), then judgeUdp. */
  private judgeUdpPort(s: SocketState, tsMs: number, sentOn?: LocalSide): Owner | 'recheck' | undefined {
    const w = s.sendWindows;
    // Before its first send call a socket has sent nothing through a traced call; another
    // process on its port (SO_REUSEPORT) may well have: from a shared port, only windows count.
    if (s.shared && sentOn && (!w || tsMs < w[0])) return undefined;
    if (!w || tsMs < w[0]) return this.judgeUdp(s, tsMs);
    if (sentOn) {
      // Outside every send call of it: not its datagram. Inside one it may still be another's
      // (an entry-only window is long): judgeUdp decides.
      const tail = sentOn === 'both' ? this.loopbackSendTailMs : QUEUED_SEND_MS;
      if (inSendWindow(w, tsMs, tail)) return this.judgeUdp(s, tsMs);
      this.noteForeignSend(s, tsMs, tail);
      return undefined;
    }
    // received after another socket sent from the port: its only if seen alive after that
    if (tsMs <= s.lastAlive || !this.foreignSendBefore(s, tsMs)) return this.judgeUdp(s, tsMs);
    if (s.goneAt !== undefined) return undefined;
    this.sweepWanted = true;
    return 'recheck';
  }

  private judgeFlow(s: SocketState, key: string, d: Dissected, tsMs: number): Owner | 'recheck' | undefined {
    if (s.superseded) return undefined;
    if (d.proto !== IPPROTO_TCP) {
      if (this.confirmUdp) return this.judgeUdp(s, tsMs);
      return this.alive(s, tsMs) ? s.owner : undefined;
    }
    // A closed TCP socket keeps its FIN/ACK tail, but a SYN with another sequence number on
    // the same 4-tuple is a new connection (the old one was closed): not the program's.
    if ((d.tcpFlags & (TCP_SYN | TCP_ACK)) === TCP_SYN) {
      // by the flow's place in tcpFlows (a socket has one or two: a small array, no Map)
      const at = s.tcpFlows.indexOf(key);
      let first = (s.synSeq ??= [])[at];
      if (first === undefined && s.bindSyn?.[0] === key) first = s.synSeq[at] = s.bindSyn[1];
      // after the socket is gone it cannot send a first SYN either
      const afterGone = s.goneAt !== undefined && tsMs > s.goneAt;
      if (first === undefined && !afterGone) {
        s.synSeq[at] = d.tcpSeq;
        this.version++;
      } else if (first !== d.tcpSeq) {
        s.superseded = true;
        this.version++;
        this.flowsChanged(s.tcpFlows);
        return undefined;
      }
    }
    return s.owner;
  }

  private noteForeignSend(s: SocketState, tsMs: number, tail: number): void {
    const f = (s.foreignSends ??= []);
    if (f.length >= 2 * MAX_FOREIGN_SENDS) return;
    for (let i = 0; i < f.length; i += 2) if (f[i] === tsMs) return;
    f.push(tsMs, tail);
    this.version++; // received packets after it are judged again
  }

  /** Whether a datagram from s's port, sent by another socket, left before tsMs. */
  private foreignSendBefore(s: SocketState, tsMs: number): boolean {
    const f = s.foreignSends;
    if (!f) return false;
    // still outside its windows: an event applied since may have shown it was s's after all
    for (let i = 0; i < f.length; i += 2) if (f[i] <= tsMs && !inSendWindow(s.sendWindows!, f[i], f[i + 1])) return true;
    return false;
  }

  private judgeUdp(s: SocketState, tsMs: number): Owner | 'recheck' | undefined {
    if (tsMs <= s.lastAlive) return s.owner;
    if (s.goneAt === undefined) {
      this.sweepWanted = true;
      return 'recheck';
    }
    // closed somewhere between lastAlive and goneAt: ours unless another socket took the port
    return tsMs <= s.goneAt && !this.portTakenByOther(s) ? s.owner : undefined;
  }

  /** Whether a socket that is not the program's held s's port when s was seen gone. */
  private portTakenByOther(s: SocketState): boolean {
    const holders = s.portHolders;
    if (!holders) return false;
    for (const inode of holders) if (!this.isProgramSocket(inode)) return true;
    return false;
  }

  /** A socket of the program: in the table, or the socket of a call in flight (its port is picked inside the call). */
  private isProgramSocket(inode: number): boolean {
    if (this.sockets.has(inode)) return true;
    for (const call of this.pendingByTid.values()) if (call.inode === inode) return true;
    return false;
  }

  private alive(s: SocketState, tsMs: number): boolean {
    return s.goneAt === undefined || tsMs <= s.goneAt;
  }

  /**
   * Marks sockets of `protocols` missing from `liveInodes` (the sockets of those protocols
   * that exist now) as gone at `nowMs`, and returns the inodes whose grace has ended: their
   * kernel rules should be released.
   */
  sweep(liveInodes: Set<number>, nowMs: number, protocols: ReadonlySet<number> = ALL_PROTOCOLS): number[] {
    return this.observe({ inodes: liveInodes, before: nowMs, after: nowMs }, protocols);
  }

  /** sweep() with a snapshot: alive sockets are confirmed at `before`, gone ones at `after`. */
  observe(snap: SocketSnapshot, protocols: ReadonlySet<number> = ALL_PROTOCOLS): number[] {
    this.version++;
    this.sweepWanted = false;
    const expired: number[] = [];
    const nowMs = snap.after;
    for (const [inode, s] of this.sockets) {
      if (s.goneAt === undefined) {
        if (!protocols.has(s.proto) || (snap.seen !== undefined && s.added >= snap.seen)) continue;
        if (snap.inodes.has(inode)) {
          s.lastAlive = snap.before;
          continue;
        }
        s.goneAt = snap.after;
        const port = s.localPorts[0]?.[1];
        const holders = port === undefined ? undefined : snap.ports?.get(`${s.proto}/${port}`);
        const others = holders ? [...holders].filter((i) => i !== inode) : [];
        s.portHolders = others.length ? others : undefined;
        continue;
      }
      let grace = this.grace.closedMarginMs;
      let since = s.goneAt;
      if (s.tcpFlows.length && !s.superseded) {
        if (!snap.finishing || !protocols.has(IPPROTO_TCP)) grace = this.grace.tcpFlowMs;
        else {
          grace = this.grace.tcpDoneMs;
          // kept while the kernel still finishes its connection (TIME_WAIT: 60 s), then a margin
          if (s.tcpFlows.some((k) => snap.finishing!.has(k))) s.finishingAt = snap.after;
          since = Math.max(since, s.finishingAt);
        }
      }
      if (nowMs - since >= grace) {
        this.forget(inode, s);
        expired.push(inode);
      }
    }
    return expired;
  }

  /**
   * The program's bound sockets (listening, or unconnected datagram sockets) whose port a socket
   * outside the table holds too, new since the last call: the kernel spreads the packets to
   * that port among them (SO_REUSEPORT), so the ones received may be either's. listening: the
   * TCP listeners of the dump (a TCP port is shared only by another listener; the program's
   * own accepted connections hold it too).
   */
  sharedPorts(snap: SocketSnapshot, listening: ReadonlySet<number>): SharedPort[] {
    const out: SharedPort[] = [];
    if (!snap.ports) return out;
    for (const [inode, s] of this.sockets) {
      if (s.shared || s.goneAt !== undefined || s.binds.length === 0 || s.bindsUntil !== undefined) continue;
      if (snap.seen !== undefined && s.added >= snap.seen) continue;
      for (const [proto, port] of s.localPorts) {
        const holders = snap.ports.get(`${proto}/${port}`);
        if (!holders) continue;
        const others = [...holders].filter(
          (i) => i !== inode && !this.isProgramSocket(i) && (proto !== IPPROTO_TCP || listening.has(i)),
        );
        if (!others.length) continue;
        s.shared = true;
        this.flowsChanged(s.tcpFlows); // its owner is about to say so on its packets (report/gaps.ts)
        out.push({ owner: s.owner, proto, port, others });
        break;
      }
    }
    return out;
  }

  private forget(inode: number, s: SocketState): void {
    for (const k of [...s.tcpFlows, ...s.flows]) unhold(this.flows, k, s);
    for (const k of s.binds) unhold(this.binds, k, s);
    this.sockets.delete(inode);
    this.countHeld(s.proto, -1);
    this.inodeChanged(inode, s);
  }

  // The socket state of an inode was replaced or forgotten: the flows of every state that had
  // that inode (sentFrom(inode) answered for them) may be judged otherwise now.
  private inodeChanged(inode: number, s: SocketState): void {
    this.flowsChanged(s.tcpFlows);
    for (const older of this.replacedByInode.get(inode) ?? []) this.flowsChanged(older.tcpFlows);
  }

  /** From now on, the flows whose verdicts change are noted for takeFlowChanges (the native path's reader). */
  watchFlows(): void {
    this.flowChanges ??= [];
  }

  /**
   * The TCP flow keys (a rule's: local end first) whose knownFlowSpan may have changed since
   * the last call, or `all`: forget every span.
   */
  takeFlowChanges(): { keys: string[]; all: boolean } {
    const keys = this.flowChanges ?? [];
    const all = this.flowChangesAll;
    if (this.flowChanges) this.flowChanges = [];
    this.flowChangesAll = false;
    return { keys, all };
  }

  private flowsChanged(keys: readonly string[]): void {
    const c = this.flowChanges;
    if (!c || this.flowChangesAll || keys.length === 0) return;
    if (c.length + keys.length > MAX_FLOW_CHANGES) {
      this.flowChangesAll = true;
      c.length = 0;
    } else for (const k of keys) c.push(k);
  }

  private countHeld(proto: number, by: number): void {
    const n = (this.heldByProto.get(proto) ?? 0) + by;
    if (n > 0) this.heldByProto.set(proto, n);
    else this.heldByProto.delete(proto);
  }

  /** Whether the table holds a socket of this wire protocol (alive, or gone and in its grace). */
  holds(proto: number): boolean {
    return this.heldByProto.has(proto);
  }
}
