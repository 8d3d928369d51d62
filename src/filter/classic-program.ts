// The two classic programs of the fallback filter. Both drop the loopback outgoing copy and
// pass what only userspace can judge (ICMP errors, fragments, IPv6 extension headers).
//  - wide: every TCP/UDP/UDP-Lite packet (swapped in by the stop path when a rule is added);
//  - exact: packets whose source or destination port lies in the program's local port
//    intervals, per protocol, searched as balanced interval trees. Intervals are merged
//    (widening the filter, never narrowing it) until the program fits the kernel's limit.
import { AD_IFINDEX, AD_PKTTYPE, AD_PROTOCOL, BPF_MAXINSNS, ClassicAssembler, type ClassicInsn, OP, validate } from './classic';

function validated(p: ClassicInsn[]): ClassicInsn[] {
  validate(p);
  return p;
}

export interface ClassicConfig {
  snaplen: number;
  loopbackIfindex: number;
}

/** Local ports in use per wire protocol (6, 17, 136). */
export type PortsByProto = Map<number, number[]>;

const M_PROTO = 0;
const M_SPORT = 1;
const M_DPORT = 2;
const TRANSPORT = [6, 17, 136];
/** Intervals to try first in one exact program (3 insns each, searched twice). */
export const MAX_INTERVALS = 600;

function prologue(a: ClassicAssembler, cfg: ClassicConfig): void {
  a.op(OP.ldW, AD_PKTTYPE).jump(OP.jeq, 4, undefined, 'not_lo_out');
  a.op(OP.ldW, AD_IFINDEX).jump(OP.jeq, cfg.loopbackIfindex, 'reject', undefined);
  a.label('not_lo_out');
  a.op(OP.ldW, AD_PROTOCOL).jump(OP.jeq, 0x0800, 'ipv4', undefined).jump(OP.jeq, 0x86dd, 'ipv6', 'reject');
  // IPv4: later fragments and ICMP errors go to userspace; TCP/UDP get their ports stored
  a.label('ipv4');
  a.op(OP.ldH, 6).jump(OP.jset, 0x1fff, 'pass', undefined);
  a.op(OP.ldB, 9).op(OP.st, M_PROTO);
  a.jump(OP.jeq, 1, undefined, 'v4_transport');
  a.op(OP.ldxMsh, 0).op(OP.ldIndB, 0);
  for (const t of [3, 4, 11]) a.jump(OP.jeq, t, 'pass', undefined);
  a.jump(OP.jeq, 12, 'pass', 'reject');
  a.label('v4_transport');
  for (const p of TRANSPORT) a.jump(OP.jeq, p, 'v4_ports', undefined);
  a.goto('reject');
  a.label('v4_ports');
  a.op(OP.ldxMsh, 0).op(OP.ldIndH, 0).op(OP.st, M_SPORT).op(OP.ldIndH, 2).op(OP.st, M_DPORT);
  a.goto('lookup');
  // IPv6: the transport header must follow the fixed header; anything else to userspace
  a.label('ipv6');
  a.op(OP.ldB, 6).op(OP.st, M_PROTO);
  a.jump(OP.jeq, 58, undefined, 'v6_ext');
  a.op(OP.ldB, 40).jump(OP.jgt, 4, 'reject', undefined).jump(OP.jge, 1, 'pass', 'reject');
  a.label('v6_ext');
  for (const h of [0, 43, 44, 60]) a.jump(OP.jeq, h, 'pass', undefined);
  for (const p of TRANSPORT) a.jump(OP.jeq, p, 'v6_ports', undefined);
  a.goto('reject');
  a.label('v6_ports');
  a.op(OP.ldH, 40).op(OP.st, M_SPORT).op(OP.ldH, 42).op(OP.st, M_DPORT);
  a.label('lookup');
}

function epilogue(a: ClassicAssembler, cfg: ClassicConfig): void {
  a.label('reject').ret(0);
  a.label('pass').ret(cfg.snaplen);
}

export function buildWideClassic(cfg: ClassicConfig): ClassicInsn[] {
  const a = new ClassicAssembler();
  prologue(a, cfg);
  a.goto('pass');
  epilogue(a, cfg);
  return a.assemble();
}

/** Sorted, merged [lo, hi] intervals covering ports, widened until at most max remain. */
export function portIntervals(ports: number[], max: number): Array<[number, number]> {
  const sorted = [...new Set(ports)].sort((x, y) => x - y);
  let iv: Array<[number, number]> = [];
  for (const p of sorted) {
    const last = iv[iv.length - 1];
    if (last && p <= last[1] + 1) last[1] = p;
    else iv.push([p, p]);
  }
  while (iv.length > max) {
    // merge the pair of neighbours with the smallest gap
    let best = 0;
    for (let i = 1; i < iv.length - 1; i++) if (iv[i + 1][0] - iv[i][1] < iv[best + 1][0] - iv[best][1]) best = i;
    iv = [...iv.slice(0, best), [iv[best][0], iv[best + 1][1]], ...iv.slice(best + 2)];
  }
  return iv;
}

/** The exact program; its intervals are widened until it fits BPF_MAXINSNS. */
export function buildExactClassic(ports: PortsByProto, cfg: ClassicConfig): ClassicInsn[] {
  for (let max = MAX_INTERVALS; ; max = Math.floor(max * 0.8)) {
    const prog = tryExact(ports, cfg, max);
    if (prog.length <= BPF_MAXINSNS || max <= TRANSPORT.length) return validated(prog);
  }
}

function tryExact(ports: PortsByProto, cfg: ClassicConfig, maxIntervals: number): ClassicInsn[] {
  const protos = TRANSPORT.filter((p) => (ports.get(p) ?? []).length > 0);
  const total = protos.reduce((n, p) => n + ports.get(p)!.length, 0);
  const perProto = (p: number) =>
    portIntervals(ports.get(p)!, Math.max(1, Math.floor((maxIntervals * ports.get(p)!.length) / Math.max(1, total))));
  const a = new ClassicAssembler();
  prologue(a, cfg);
  a.op(OP.ldMem, M_PROTO);
  for (const p of protos) a.jump(OP.jeq, p, `proto${p}`, undefined);
  a.goto('reject');
  for (const p of protos) {
    const iv = perProto(p);
    a.label(`proto${p}`);
    a.op(OP.ldMem, M_SPORT);
    tree(a, iv, `p${p}s`, `proto${p}_dport`, cfg.snaplen);
    a.label(`proto${p}_dport`);
    a.op(OP.ldMem, M_DPORT);
    tree(a, iv, `p${p}d`, 'reject', cfg.snaplen);
  }
  epilogue(a, cfg);
  return a.assemble(false);
}

// A balanced search over intervals on A: passes when A is inside one, else goes to `miss`.
function tree(a: ClassicAssembler, iv: Array<[number, number]>, name: string, miss: string, snaplen: number): void {
  if (iv.length === 0) {
    a.goto(miss);
    return;
  }
  const mid = iv.length >> 1;
  const [lo, hi] = iv[mid];
  const left = iv.slice(0, mid);
  const right = iv.slice(mid + 1);
  const leftLabel = left.length ? `${name}l` : miss;
  const rightLabel = right.length ? `${name}r` : miss;
  a.jump(OP.jge, lo, undefined, leftLabel);
  a.jump(OP.jgt, hi, rightLabel, undefined);
  a.ret(snaplen);
  if (left.length) {
    a.label(leftLabel);
    tree(a, left, `${name}l`, miss, snaplen);
  }
  if (right.length) {
    a.label(rightLabel);
    tree(a, right, `${name}r`, miss, snaplen);
  }
}
