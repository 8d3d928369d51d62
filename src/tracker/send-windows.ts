// When an unconnected UDP socket can have sent a datagram. It has no peer, so it can only send
// with an address (sendto/sendmsg/sendmmsg), and each of those calls stops in the tracer: its
// datagrams leave after the entry stop and, on loopback, before the call returns. A datagram
// from its port outside every such window was sent by another socket that took the port after
// it closed — the one ambiguity port rules and sweeps alone cannot settle.

/** Float rounding of realtime ms (packet timestamps are ns, stop times µs-exact). */
const EPSILON_MS = 0.01;
/** Windows kept per socket (merged when they overlap): older ones are forgotten. */
const MAX_WINDOWS = 64;

/**
 * [start, end] pairs of realtime ms, sorted and disjoint, flat. end is the exit stop's time
 * when the call had one, else the entry's plus an allowance (see ENTRY_ONLY_SEND_MS).
 */
export type SendWindows = number[];

/**
 * A call seen only at its entry (the socket already had its port) may send for as long as it
 * runs, which the tracer does not see: a second is far beyond a UDP send's duration.
 */
export const ENTRY_ONLY_SEND_MS = 1_000;

/**
 * A packet leaving a real interface may wait in its queue discipline after the call returned;
 * loopback has none (noqueue), so there the exit stop bounds it exactly — its received copy
 * (the one kept) is stamped when it is queued, inside the call, as long as the capture socket
 * has timestamps on (native/capture.cc) and net.core.netdev_tstamp_prequeue is 1 (the default).
 */
export const QUEUED_SEND_MS = 1_000;

/** The allowance after a loopback send call: none, unless the kernel stamps packets late. */
export function loopbackSendTailMs(readSysctl: (name: string) => string | undefined): number {
  return readSysctl('net/core/netdev_tstamp_prequeue')?.trim() === '0' ? QUEUED_SEND_MS : 0;
}

export function addSendWindow(w: SendWindows, start: number, end: number): void {
  const n = w.length;
  if (n === 0 || start > w[n - 1] + EPSILON_MS) {
    if (n && start < w[n - 2]) return insertSorted(w, start, end);
    w.push(start, end);
    if (w.length > 2 * MAX_WINDOWS) w.splice(0, 2);
    return;
  }
  // overlaps (or touches) the last one: events arrive roughly in time order
  if (start < w[n - 2]) return insertSorted(w, start, end);
  w[n - 1] = Math.max(w[n - 1], end);
}

function insertSorted(w: SendWindows, start: number, end: number): void {
  const pairs: Array<[number, number]> = [[start, end]];
  for (let i = 0; i < w.length; i += 2) pairs.push([w[i], w[i + 1]]);
  pairs.sort((x, y) => x[0] - y[0]);
  w.length = 0;
  for (const [s, e] of pairs) {
    const n = w.length;
    if (n && s <= w[n - 1] + EPSILON_MS) w[n - 1] = Math.max(w[n - 1], e);
    else w.push(s, e);
  }
  if (w.length > 2 * MAX_WINDOWS) w.splice(0, w.length - 2 * MAX_WINDOWS);
}

/** Whether a datagram sent at tsMs fits one of the windows (each extended by `tailMs`). */
export function inSendWindow(w: SendWindows, tsMs: number, tailMs: number): boolean {
  for (let i = w.length - 2; i >= 0; i -= 2) {
    if (w[i] - EPSILON_MS > tsMs) continue;
    if (tsMs <= w[i + 1] + tailMs + EPSILON_MS) return true;
    // an earlier window may still reach this far with its tail
    if (tailMs === 0) return false;
  }
  return false;
}
