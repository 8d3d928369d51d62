// Sockets whose packets the capture lacks in part or whole, said as they are seen and counted
// for the summary: sockets found late in the program's fd tables ('found': received over a
// Unix socket, made by io_uring, taken with pidfd_getfd), whose packets from before the find
// are not in the capture; raw sockets, whose packets nothing ties to the program; ports the
// program shares with another process (SO_REUSEPORT), whose received packets may be either's.
// (Sockets passed on by tracedump's caller, 'inherited', are captured whole from the start.)
import type { SocketEvent } from '../native';
import type { SharedPort } from '../tracker/endpoints';
import type { SocketHolder } from '../tracker/socket-holders';
import { hostPort } from '../text/endpoint';
import { quoteName } from '../text/quote';
import { type GapFigures, plural } from './summary';

const PROTOCOLS: Record<number, string> = { 6: 'TCP', 17: 'UDP', 136: 'UDP-Lite', 1: 'ICMP echo', 58: 'ICMPv6 echo' };

/** Messages for the first few found sockets; the rest are only counted. */
const MAX_MESSAGES = 5;

export class GapReport {
  readonly figures: GapFigures = { found: 0, missedSegments: 0, unknown: 0, raw: 0, shared: 0 };

  /**
   * A port of the program another process's socket holds too: marks the owner (its received
   * packets get a comment in pcapng) and returns the message.
   */
  noteShared(shared: SharedPort, holders: SocketHolder[]): string {
    this.figures.shared++;
    const proto = PROTOCOLS[shared.proto] ?? `protocol ${shared.proto}`;
    const who = holders.length
      ? holders.map((h) => `pid ${h.pid} (${quoteName(h.comm)})`).join(', ')
      : `a socket of no process found (inode ${shared.others.join(', ')})`;
    shared.owner.shared = `${proto} port ${shared.port} is shared with ${who}: this packet may be that process's`;
    return (
      `${proto} port ${shared.port} is shared with ${who} (SO_REUSEPORT): the kernel gives the packets ` +
      'to either; all are in the capture, the received ones marked with a comment (pcapng)'
    );
  }

  /** Notes a socket event; returns the message to show for it, if any. */
  note(e: SocketEvent): string | undefined {
    if (e.proto === 'raw') {
      this.figures.raw++;
      if (this.figures.raw > MAX_MESSAGES) return undefined;
      const what = e.protocol === 1 ? 'ICMP' : e.protocol === 58 ? 'ICMPv6' : `IP protocol ${e.protocol}`;
      return (
        `pid ${e.pid} (${e.comm}): raw ${what} socket fd ${e.fd}: its packets are not captured ` +
        '(a raw socket has no port that ties them to the program; a ping socket, SOCK_DGRAM, would be captured)'
      );
    }
    if (e.call !== 'found') return undefined;
    const f = this.figures;
    f.found++;
    const before = e.exchangedBefore;
    if (typeof before === 'number') f.missedSegments += before;
    else f.unknown++;
    if (f.found > MAX_MESSAGES) return undefined;
    const remote = e.remotes[0] ? ` to ${endpoint(e.remotes[0])}` : '';
    const missed =
      typeof before === 'number'
        ? `${plural(before, 'packet')} it exchanged before that are not in the capture`
        : 'datagrams it exchanged before that are not in the capture';
    const more = f.found === MAX_MESSAGES ? ' (further ones are counted in the summary)' : '';
    return (
      `pid ${e.pid} (${e.comm}): ${e.proto.toUpperCase()} socket fd ${e.fd} ${endpoint(e.local)}${remote} ` +
      `came without a traced call (passed over a Unix socket, or made by io_uring); found now, ${missed}${more}`
    );
  }
}

function endpoint(e: { address: string; port: number } | null): string {
  return e ? hostPort(e.address, e.port) : '?';
}
