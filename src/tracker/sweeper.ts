// When to ask the kernel which sockets still exist (sock_diag), and what follows from it: the
// endpoint table learns which sockets are gone, and their kernel rules are released after
// their grace. UDP dumps are cheap and decide UDP packets, so they run often and on demand;
// a TCP dump walks the kernel's whole connection hash (~6 ms here), so it runs rarely (exact
// 4-tuples and new-SYN detection keep TCP precise meanwhile).
import type { LiveSockets, NativeRuleSet } from '../native';
import { type EndpointTable, type SharedPort, tcpFlowKey } from './endpoints';

export const SWEEP = {
  udpEveryMs: 250,
  tcpEveryMs: 2000,
  /** A process's sockets are closed before its exit is reported: sweep then, at most this often. */
  afterExitMs: 100,
  /** Packets waiting for proof that their UDP socket was alive: at most this often. */
  onDemandMs: 10,
};

const TCP = [6];
const MPTCP = 262; // listed apart from TCP sockets, by a dump (~5 ms here) only made once one is traced
// datagram sockets, judged by sweeps: UDP, UDP-Lite and ping sockets (ICMP, ICMPv6)
const UDP = [17, 136, 1, 58];

export class Sweeper {
  private lastUdp = 0;
  private lastTcp = 0;
  private exitDue = false;
  /** Rules were released since the last look (the classic filter then rebuilds). */
  released = false;

  constructor(
    private readonly table: EndpointTable,
    private readonly rules: NativeRuleSet,
    private readonly onError: (message: string) => void,
    /** The kernel's sockets of these protocols now (native liveSockets: sock_diag, /proc/net/icmp). */
    private readonly listSockets: (protocols: number[]) => LiveSockets,
    /**
     * Applies the tracer's events queued so far: run after each dump, so that a socket the dump
     * shows holding a port is known as the program's if one of its calls made it so.
     */
    private readonly pollEvents: () => void = () => {},
    /** A port of the program is held by another process's socket too (SO_REUSEPORT). */
    private readonly onShared: (shared: SharedPort) => void = () => {},
  ) {}

  processExited(): void {
    this.exitDue = true;
  }

  /** Sweeps if something is due at `now` (ms); returns whether it swept. */
  poke(now: number): boolean {
    let protocols: number[] | undefined;
    if (this.exitDue && now - Math.max(this.lastUdp, this.lastTcp) >= SWEEP.afterExitMs) {
      protocols = [...this.tcp(), ...UDP];
      this.exitDue = false;
    } else if (now - this.lastTcp >= SWEEP.tcpEveryMs) protocols = [...this.tcp(), ...UDP];
    else if (now - this.lastUdp >= SWEEP.udpEveryMs) protocols = UDP;
    else if (this.table.sweepWanted && now - this.lastUdp >= SWEEP.onDemandMs) protocols = UDP;
    if (!protocols) return false;
    this.sweep(protocols, now);
    return true;
  }

  /** The last sweep, after the capture ended: every socket is judged alive or gone. */
  final(now: number): void {
    this.sweep([...this.tcp(), ...UDP], now);
  }

  private tcp(): number[] {
    return this.table.mptcpSeen ? [...TCP, MPTCP] : TCP;
  }

  private sweep(all: number[], now: number): void {
    this.lastUdp = now;
    if (all.includes(6)) this.lastTcp = now;
    // a dump tells the table only of its own sockets: none of a protocol, no dump of it (an
    // idle program with no socket, or TCP only, costs no TCP, or no UDP, dumps)
    const protocols = all.filter((p) => this.table.holds(p === MPTCP ? 6 : p));
    if (protocols.length === 0) return;
    const seen = this.table.socketsSeen;
    let snap;
    try {
      snap = this.listSockets(protocols);
    } catch (err) {
      this.onError((err as Error).message);
      return;
    }
    this.pollEvents();
    const inodes = new Set<number>();
    const ports = new Map<string, Set<number>>();
    const s = snap.sockets;
    for (let i = 0; i < s.length; i += 3) {
      inodes.add(s[i]);
      const key = `${s[i + 1]}/${s[i + 2]}`;
      let holders = ports.get(key);
      if (!holders) ports.set(key, (holders = new Set()));
      holders.add(s[i]);
    }
    const finishing = protocols.includes(6) ? finishingFlows(snap.finishing) : undefined;
    const observed = { inodes, ports, finishing, before: snap.before, after: snap.after, seen };
    const expired = this.table.observe(observed, new Set(protocols));
    for (const shared of this.table.sharedPorts(observed, new Set(snap.listening))) this.onShared(shared);
    for (const inode of expired) this.rules.release(inode);
    if (expired.length) this.released = true;
  }
}

const V4_MAPPED = '\0'.repeat(10) + '\xff\xff';

/** TCP_TIME_WAIT (linux/tcp_states.h): nothing is left to send but an ACK to a FIN sent again. */
const TCP_TIME_WAIT = 6;

/**
 * The finishing TCP connections of a dump (native.ts LiveSockets) as flow keys; with
 * `exchanging`, only those still exchanging packets (not in TIME_WAIT).
 */
export function finishingFlows(records: Buffer | undefined, exchanging = false): Set<string> {
  const out = new Set<string>();
  if (!records) return out;
  const address = (at: number, family: number) => {
    if (family === 4) return records.toString('latin1', at, at + 4);
    const a = records.toString('latin1', at, at + 16);
    return a.startsWith(V4_MAPPED) ? a.slice(12) : a; // IPv4 on the wire
  };
  for (let i = 0; i + 40 <= records.length; i += 40) {
    const family = records[i];
    if (exchanging && records[i + 1] === TCP_TIME_WAIT) continue;
    out.add(tcpFlowKey(address(i + 8, family), records.readUInt16LE(i + 2), address(i + 24, family), records.readUInt16LE(i + 4)));
  }
  return out;
}
