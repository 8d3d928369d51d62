// Socket and pending events arrive from the addon as arrays (native/addon.cc builds them so:
// an array costs C++ far less than an object set property by property); here they become the
// typed events the rest of tracedump reads. Other events arrive as objects already.
import type { Endpoint, FilterRule, PendingEvent, SocketEvent, TraceEvent } from './native';

type EndpointTuple = [address: string, port: number] | null;
type RuleTuple = [kind: FilterRule['kind'], proto: number, local: EndpointTuple, remote: EndpointTuple];

/** The addon's layout of a socket (0) or pending (1) event. */
export type SocketEventTuple = [
  kind: 0 | 1,
  time: number,
  pid: number,
  tid: number,
  inode: number,
  comm: string,
  threadName: string | undefined,
  call: SocketEvent['call'],
  fd: number,
  family: 4 | 6,
  proto: SocketEvent['proto'],
  local: EndpointTuple,
  remotes: EndpointTuple[],
  rules: RuleTuple[],
  ruleGeneration: number,
  result: number | null,
  errno: string | undefined,
];

export type NativeEvent = Exclude<TraceEvent, SocketEvent | PendingEvent> | SocketEventTuple;

function endpoint(t: EndpointTuple): Endpoint | null {
  return t === null ? null : { address: t[0], port: t[1] };
}

function rule(t: RuleTuple): FilterRule {
  return { kind: t[0], proto: t[1], local: endpoint(t[2]), remote: endpoint(t[3]) };
}

function socketEvent(t: SocketEventTuple): SocketEvent | PendingEvent {
  // one literal for both kinds: one object shape
  const e = {
    kind: t[0] === 0 ? 'socket' : 'pending',
    time: t[1],
    pid: t[2],
    tid: t[3],
    inode: t[4],
    comm: t[5],
    threadName: t[6],
    call: t[7],
    fd: t[8],
    family: t[9],
    proto: t[10],
    local: endpoint(t[11]),
    remotes: t[12].map((r) => endpoint(r)!),
    rules: t[13].map(rule),
    ruleGeneration: t[14],
    result: t[15],
    errno: t[16],
  };
  return e as SocketEvent | PendingEvent;
}

export function decodeEvents(batch: NativeEvent[]): TraceEvent[] {
  const out: TraceEvent[] = new Array(batch.length);
  for (let i = 0; i < batch.length; i++) {
    const e = batch[i];
    out[i] = Array.isArray(e) ? socketEvent(e) : e;
  }
  return out;
}
