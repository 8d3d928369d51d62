// Synthetic tracer events shaped like src/native.ts's, for the endpoint table and pipeline tests.
import type { Endpoint, ExitEvent, FilterRule, PendingEvent, SocketEvent } from '../../src/native';

export interface Who {
  pid: number;
  tid?: number;
  comm?: string;
}

const protoName = (p: number): SocketEvent['proto'] => (p === 6 ? 'tcp' : p === 136 ? 'udplite' : 'udp');
const familyOf = (a: string): 4 | 6 => (a.includes(':') ? 6 : 4);

/** Entry of a call whose local port is picked inside it: pending rules for its destinations. */
export function pendingEvent(who: Who, inode: number, proto: number, dests: Endpoint[], time = 0): PendingEvent {
  return {
    kind: 'pending',
    ruleGeneration: 0,
    time,
    pid: who.pid,
    tid: who.tid ?? who.pid,
    inode,
    comm: who.comm ?? 'app',
    call: proto === 6 ? 'connect' : 'sendto',
    fd: 3,
    family: familyOf(dests[0]?.address ?? '0.0.0.0'),
    proto: protoName(proto),
    local: null,
    remotes: dests,
    result: null,
    rules: dests.map((d) => ({ kind: 'pending', proto, local: null, remote: d })),
  };
}

export function flowRule(proto: number, local: Endpoint, remote: Endpoint): FilterRule {
  return { kind: 'flow', proto, local, remote };
}

export function bindRule(proto: number, local: Endpoint): FilterRule {
  return { kind: 'bind', proto, local, remote: null };
}

/** A socket call's event with the rules the stop path added. */
export function socketEvent(who: Who, inode: number, rules: FilterRule[], time = 0): SocketEvent {
  const r = rules[0];
  return {
    kind: 'socket',
    ruleGeneration: 0,
    time,
    pid: who.pid,
    tid: who.tid ?? who.pid,
    inode,
    comm: who.comm ?? 'app',
    call: r?.kind === 'bind' ? 'bind' : 'connect',
    fd: 3,
    family: familyOf(r?.local?.address ?? '0.0.0.0'),
    proto: protoName(r?.proto ?? 6),
    local: r?.local ?? null,
    remotes: r?.remote ? [r.remote] : [],
    result: 0,
    rules,
  };
}

export function exitEvent(who: Who, time = 0): ExitEvent {
  return { kind: 'exit', time, pid: who.pid, tid: who.tid ?? who.pid, comm: who.comm ?? 'app', code: 0, signal: null, core: false };
}

export const ep = (address: string, port: number): Endpoint => ({ address, port });
