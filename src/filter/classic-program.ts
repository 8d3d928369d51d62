// The two classic programs of the fallback filter. Both drop the loopback outgoing copy and
// pass what only userspace can judge (ICMP errors, fragments, IPv6 extension headers).
//  - wide: every TCP/UDP/UDP-Lite packet (swapped in by the stop path when a rule is added);
//  - exact: packets whose source or destination port lies in the program's local port
//    intervals, per protocol. Each port field is searched by a balanced tree of `jge` nodes
//    whose leaves are short sorted chains (a single port costs one `jeq`, an interval two
//    comparisons), in blocks of at most 112 intervals that end in their own `ret`/miss
//    instructions, so no jump inside a block needs a trampoline. Where the ports do not fit
//    4,096 instructions, intervals are merged (widening the filter, never narrowing it) by the
//    choice that adds the fewest ports for the instructions saved (see planIntervals).
import { ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, ICMP_ERRORS, IPV6_AH, IPV6_EXTENSIONS, IPV6_FRAGMENT } from '../packet/protocols';
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
/** Sorted, disjoint, non-adjacent [lo, hi] port intervals per wire protocol. */
export type IntervalsByProto = Map<number, Array<[number, number]>>;

const M_PROTO = 0;
const M_SPORT = 1;
const M_DPORT = 2;
const TRANSPORT = [6, 17, 136];
/** Intervals per leaf chain of a search tree, and per block (its own exits). A block holds at
 *  most 2 * BLOCK + BLOCK / CHAIN + 1 instructions, so every jump inside it stays below 256. */
const CHAIN = 16;
const BLOCK = 112;

function prologue(a: ClassicAssembler, cfg: ClassicConfig): void {
  a.op(OP.ldW, AD_PKTTYPE).jump(OP.jeq, 4, undefined, 'not_lo_out');
  a.op(OP.ldW, AD_IFINDEX).jump(OP.jeq, cfg.loopbackIfindex, 'reject', undefined);
  a.label('not_lo_out');
  a.op(OP.ldW, AD_PROTOCOL).jump(OP.jeq, 0x0800, 'ipv4', undefined).jump(OP.jeq, 0x86dd, 'ipv6', 'reject');
  // IPv4: later fragments, ICMP errors and echoes go to userspace; TCP/UDP get their ports stored
  a.label('ipv4');
  a.op(OP.ldH, 6).jump(OP.jset, 0x1fff, 'pass', undefined);
  a.op(OP.ldB, 9).op(OP.st, M_PROTO);
  a.jump(OP.jeq, 1, undefined, 'v4_transport');
  a.op(OP.ldxMsh, 0).op(OP.ldIndB, 0);
  // errors, and echoes (ping sockets): userspace decides
  for (const t of [...ICMP_ERRORS, ICMP_ECHO_REPLY]) a.jump(OP.jeq, t, 'pass', undefined);
  a.jump(OP.jeq, ICMP_ECHO_REQUEST, 'pass', 'reject');
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
  a.op(OP.ldB, 40).jump(OP.jeq, 128, 'pass', undefined).jump(OP.jeq, 129, 'pass', undefined);
  a.jump(OP.jgt, 4, 'reject', undefined).jump(OP.jge, 1, 'pass', 'reject');
  a.label('v6_ext');
  for (const h of [...IPV6_EXTENSIONS, IPV6_FRAGMENT, IPV6_AH]) a.jump(OP.jeq, h, 'pass', undefined);
  for (const p of TRANSPORT) a.jump(OP.jeq, p, 'v6_ports', undefined);
  a.goto('reject');
  a.label('v6_ports');
  a.op(OP.ldH, 40).op(OP.st, M_SPORT).op(OP.ldH, 42).op(OP.st, M_DPORT);
}

function epilogue(a: ClassicAssembler, cfg: ClassicConfig): void {
  a.label('reject').ret(0);
  a.label('pass').ret(cfg.snaplen);
}

export function buildWideClassic(cfg: ClassicConfig): ClassicInsn[] {
  const a = new ClassicAssembler();
  prologue(a, cfg);
  a.label('lookup').goto('pass');
  epilogue(a, cfg);
  return a.assemble();
}

/** Sorted runs of consecutive ports: [lo, hi] intervals that pass exactly these ports. */
export function portRuns(ports: number[]): Array<[number, number]> {
  const sorted = Uint32Array.from(ports).sort();
  const iv: Array<[number, number]> = [];
  for (const p of sorted) {
    const last = iv[iv.length - 1];
    if (last && p <= last[1] + 1) last[1] = p;
    else iv.push([p, p]);
  }
  return iv;
}

/** Instructions of one tree over `items` intervals of comparison cost `cost` (trampolines of
 *  far outer jumps estimated from the average cost). */
function treeSize(items: number, cost: number): number {
  if (items === 0) return 1;
  const blocks = Math.ceil(items / BLOCK);
  const perItem = cost / items + 1 / CHAIN;
  // an outer node jumps over its left part: a trampoline when that is more than 255 ahead
  const tramps = (nb: number): number => {
    if (nb <= 1) return 0;
    const left = Math.ceil(nb / 2);
    return (left * BLOCK * perItem + 2 * left > 255 ? 1 : 0) + tramps(left) + tramps(nb - left);
  };
  return cost + Math.ceil(items / CHAIN) + 2 * blocks - 1 + tramps(blocks);
}

/** Instructions besides the trees: prologue, returns, dispatch; and per protocol present. */
const FIXED = 50;
const PER_PROTO = 3;
/** The prologue's jumps to the returns at the end, through trampolines once the trees are long. */
const PROLOGUE_FAR = 15;

/** Instructions of the exact program over protocols with these (intervals, comparisons). */
function programSize(trees: Array<[number, number]>): number {
  let n = FIXED;
  let behind = 0; // instructions between the dispatch and this protocol's trees
  for (const [items, cost] of trees) {
    if (!items) continue;
    if (behind > 255) n++; // the dispatch's jump needs a trampoline
    const size = PER_PROTO + 2 * treeSize(items, cost);
    n += size;
    behind += size;
  }
  return behind > 200 ? n + PROLOGUE_FAR : n;
}

/** Instructions the exact program over `iv` takes (an estimate: far jumps are counted from
 *  average interval costs). */
export function exactSize(iv: IntervalsByProto): number {
  const trees: Array<[number, number]> = [];
  for (const p of TRANSPORT) {
    const list = iv.get(p) ?? [];
    let cost = 0;
    for (const [lo, hi] of list) cost += lo === hi ? 1 : 2;
    trees.push([list.length, cost]);
  }
  return programSize(trees);
}

/**
 * The intervals of the exact program: the runs of the ports in use when they fit `maxInsns`;
 * otherwise runs are merged into wider intervals, adding as few ports as possible:
 *  1. for a price `lambda` per instruction, the best grouping of each sorted list of runs (a
 *     group costs its span in ports plus `lambda` times its instructions) is a shortest path
 *     found in one linear pass; `lambda` is bisected to the highest price whose grouping is
 *     still too large. Those groupings are optimal for their size, but the size jumps between
 *     prices (with equal gaps, from nothing merged to everything merged), so
 *  2. from there, neighbouring intervals are merged one pair at a time, the pair that adds the
 *     fewest ports per instruction saved first (a heap), until the program fits.
 * O(n log n) for the sort and the heap, O(n) per bisection step.
 */
export function planIntervals(ports: PortsByProto, maxInsns = BPF_MAXINSNS): IntervalsByProto {
  const runs: IntervalsByProto = new Map();
  for (const p of TRANSPORT) {
    const list = ports.get(p);
    if (list?.length) runs.set(p, portRuns(list));
  }
  if (exactSize(runs) <= maxInsns) return runs;
  return mergeToFit(groupAtPrice(runs, maxInsns), maxInsns);
}

// Instructions a merge saves in both trees, besides the comparisons: its share of the chain and block nodes.
const SHARE = 2 * (1 / CHAIN + 2 / BLOCK);

/** Step 1 of planIntervals: the optimal grouping at the highest price that does not fit yet. */
function groupAtPrice(runs: IntervalsByProto, maxInsns: number): IntervalsByProto {
  const single = 2 + SHARE;
  const multi = 4 + SHARE;
  const lists = [...runs].map(([proto, iv]) => ({ proto, iv, from: new Int32Array(iv.length) }));
  // the groupings at price lambda (in each list's `from`: the first run of the group ending at
  // run i), and the program size they make
  const solve = (lambda: number): number => {
    const trees: Array<[number, number]> = [];
    for (const { iv, from } of lists) {
      const m = iv.length;
      let f = 0; // the least cost covering the runs before i
      let best = Infinity; // min over j <= i of (cost before j) - lo(j)
      let bestFrom = 0;
      for (let i = 0; i < m; i++) {
        const lo = iv[i][0];
        const hi = iv[i][1];
        const alone = f + (hi - lo + 1) + lambda * (lo === hi ? single : multi);
        const joined = best + hi + 1 + lambda * multi; // runs bestFrom..i
        const joinFrom = bestFrom;
        if (f - lo < best) {
          best = f - lo;
          bestFrom = i;
        }
        if (joined < alone) {
          f = joined;
          from[i] = joinFrom;
        } else {
          f = alone;
          from[i] = i;
        }
      }
      let items = 0;
      let cost = 0;
      for (let i = m - 1; i >= 0; i = from[i] - 1) {
        items++;
        cost += from[i] === i && iv[i][0] === iv[i][1] ? 1 : 2;
      }
      trees.push([items, cost]);
    }
    return programSize(trees);
  };
  // doubled until it fits, then bisected (to 1/1000 of a port per instruction, or a near fit)
  let lo = 0;
  let hi = 0.25;
  while (solve(hi) > maxInsns && hi < 2 ** 24) {
    lo = hi;
    hi *= 2;
  }
  for (let step = 0; step < 40 && hi - lo > 1e-3; step++) {
    const mid = (lo + hi) / 2;
    const size = solve(mid);
    if (size > maxInsns) lo = mid;
    else hi = mid;
  }
  solve(lo);
  const out: IntervalsByProto = new Map();
  for (const { proto, iv, from } of lists) {
    const groups: Array<[number, number]> = [];
    for (let i = iv.length - 1; i >= 0; i = from[i] - 1) groups.push([iv[from[i]][0], iv[i][1]]);
    out.set(proto, groups.reverse());
  }
  return out;
}

/** Step 2 of planIntervals: merges neighbours, the fewest ports per instruction saved first, until the program fits. */
function mergeToFit(runs: IntervalsByProto, maxInsns: number): IntervalsByProto {
  // all runs in one list; groups are named by their first run and linked within a protocol
  const protos = [...runs.keys()];
  const total = protos.reduce((n, p) => n + runs.get(p)!.length, 0);
  const lo = new Float64Array(total);
  const hi = new Float64Array(total);
  const protoOf = new Uint8Array(total);
  const next = new Int32Array(total);
  const prev = new Int32Array(total);
  const stamp = new Uint32Array(total); // bumped when the pair (group, its next) changes
  const trees: Array<[number, number]> = protos.map(() => [0, 0]);
  let at = 0;
  protos.forEach((p, pi) => {
    const iv = runs.get(p)!;
    iv.forEach(([a, b], k) => {
      lo[at] = a;
      hi[at] = b;
      protoOf[at] = pi;
      prev[at] = k === 0 ? -1 : at - 1;
      next[at] = k === iv.length - 1 ? -1 : at + 1;
      trees[pi][0]++;
      trees[pi][1] += a === b ? 1 : 2;
      at++;
    });
  });
  const cost = (g: number) => (lo[g] === hi[g] ? 1 : 2);
  // ports a merge adds per instruction it saves
  const price = (g: number) => {
    const h = next[g];
    return (lo[h] - hi[g] - 1) / (2 * (cost(g) + cost(h) - 2) + SHARE);
  };
  // a binary heap of candidate merges: (price, group, stamp)
  let heapPrice = new Float64Array(total * 2 + 8);
  let heapGroup = new Int32Array(total * 2 + 8);
  let heapStamp = new Uint32Array(total * 2 + 8);
  let size = 0;
  const less = (i: number, j: number) => heapPrice[i] < heapPrice[j] || (heapPrice[i] === heapPrice[j] && heapGroup[i] < heapGroup[j]);
  const swap = (i: number, j: number) => {
    const p = heapPrice[i];
    heapPrice[i] = heapPrice[j];
    heapPrice[j] = p;
    const g = heapGroup[i];
    heapGroup[i] = heapGroup[j];
    heapGroup[j] = g;
    const s = heapStamp[i];
    heapStamp[i] = heapStamp[j];
    heapStamp[j] = s;
  };
  const push = (g: number) => {
    if (size === heapPrice.length) {
      const grow = <T extends Float64Array | Int32Array | Uint32Array>(a: T): T => {
        const b = new (a.constructor as new (n: number) => T)(a.length * 2);
        b.set(a);
        return b;
      };
      heapPrice = grow(heapPrice);
      heapGroup = grow(heapGroup);
      heapStamp = grow(heapStamp);
    }
    let i = size++;
    heapPrice[i] = price(g);
    heapGroup[i] = g;
    heapStamp[i] = stamp[g];
    while (i > 0 && less(i, (i - 1) >> 1)) {
      swap(i, (i - 1) >> 1);
      i = (i - 1) >> 1;
    }
  };
  const pop = () => {
    size--;
    swap(0, size);
    for (let i = 0; ; ) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < size && less(l, m)) m = l;
      if (r < size && less(r, m)) m = r;
      if (m === i) break;
      swap(i, m);
      i = m;
    }
  };
  for (let g = 0; g < total; g++) if (next[g] >= 0) push(g);
  const dead = new Uint8Array(total);
  while (size > 0 && programSize(trees) > maxInsns) {
    const g = heapGroup[0];
    const s = heapStamp[0];
    pop();
    if (dead[g] || s !== stamp[g] || next[g] < 0) continue;
    const h = next[g];
    const tree = trees[protoOf[g]];
    tree[0]--;
    tree[1] += 2 - cost(g) - cost(h);
    hi[g] = hi[h];
    dead[h] = 1;
    next[g] = next[h];
    if (next[g] >= 0) prev[next[g]] = g;
    stamp[g]++;
    if (next[g] >= 0) push(g);
    const f = prev[g];
    if (f >= 0) {
      stamp[f]++;
      push(f);
    }
  }
  const out: IntervalsByProto = new Map();
  protos.forEach((p) => out.set(p, []));
  for (let g = 0; g < total; g++) if (!dead[g]) out.get(protos[protoOf[g]])!.push([lo[g], hi[g]]);
  return out;
}

/** Ports the intervals pass, per protocol summed. */
export function portsPassed(iv: IntervalsByProto): number {
  let n = 0;
  for (const list of iv.values()) for (const [lo, hi] of list) n += hi - lo + 1;
  return n;
}

/** The exact program; its intervals are widened until it fits BPF_MAXINSNS. */
export function buildExactClassic(ports: PortsByProto, cfg: ClassicConfig): ClassicInsn[] {
  return buildExactClassicPlan(ports, cfg).program;
}

/** The exact program and the intervals it passes. */
export function buildExactClassicPlan(ports: PortsByProto, cfg: ClassicConfig): { program: ClassicInsn[]; intervals: IntervalsByProto } {
  // the estimate leaves out the trampolines of far outer-tree jumps: shrink and retry on overshoot
  for (let budget = BPF_MAXINSNS; ; ) {
    const intervals = planIntervals(ports, budget);
    const program = emitExact(intervals, cfg);
    if (program.length <= BPF_MAXINSNS || budget < 100) return { program: validated(program), intervals };
    budget -= program.length - BPF_MAXINSNS + 2;
  }
}

function emitExact(intervals: IntervalsByProto, cfg: ClassicConfig): ClassicInsn[] {
  const protos = TRANSPORT.filter((p) => (intervals.get(p) ?? []).length > 0);
  const a = new ClassicAssembler();
  // (The prologue's returns stay at the end: the kernel's check that scratch memory is stored
  // before it is loaded follows the fall-through after a `ret`, so code placed after them
  // would be refused.)
  prologue(a, cfg);
  a.label('lookup');
  a.op(OP.ldMem, M_PROTO);
  for (const p of protos) a.jump(OP.jeq, p, `proto${p}`, undefined);
  a.ret(0);
  for (const p of protos) {
    const iv = intervals.get(p)!;
    a.label(`proto${p}`);
    a.op(OP.ldMem, M_SPORT);
    tree(a, iv, `p${p}s`, `proto${p}_dport`, cfg.snaplen);
    a.label(`proto${p}_dport`);
    a.op(OP.ldMem, M_DPORT);
    tree(a, iv, `p${p}d`, undefined, cfg.snaplen);
  }
  epilogue(a, cfg);
  return a.assemble(false);
}

// A search of A over sorted disjoint intervals: passes when A is inside one, else goes to
// `miss` (undefined: rejects). Outer `jge` nodes split the intervals into blocks; in a block,
// `jge` nodes split them into chains, and a chain compares A with its intervals in order.
function tree(a: ClassicAssembler, iv: Array<[number, number]>, name: string, miss: string | undefined, snaplen: number): void {
  if (iv.length === 0) {
    if (miss) a.goto(miss);
    else a.ret(0);
    return;
  }
  // items [lo, hi) split in two at a multiple of `unit` (all parts full but the last)
  const split = (lo: number, hi: number, unit: number) => lo + Math.ceil((hi - lo) / unit / 2) * unit;
  const chain = (lo: number, hi: number, pass: string, out: string) => {
    for (let i = lo; i < hi; i++) {
      const [l, h] = iv[i];
      const last = i + 1 === hi;
      if (l === h) a.jump(OP.jeq, l, pass, last ? out : undefined);
      else {
        // above this interval: on to the next one; below it: in none (they are sorted)
        a.jump(OP.jgt, h, last ? out : `${name}.${i + 1}`, undefined);
        a.jump(OP.jge, l, pass, out);
        if (!last) a.label(`${name}.${i + 1}`);
      }
    }
  };
  const chains = (lo: number, hi: number, pass: string, out: string) => {
    if (hi - lo <= CHAIN) return chain(lo, hi, pass, out);
    const mid = split(lo, hi, CHAIN);
    a.jump(OP.jge, iv[mid][0], `${name}c${mid}`, undefined);
    chains(lo, mid, pass, out);
    a.label(`${name}c${mid}`);
    chains(mid, hi, pass, out);
  };
  const node = (lo: number, hi: number) => {
    if (hi - lo <= BLOCK) {
      const pass = `${name}P${lo}`;
      const out = `${name}M${lo}`;
      chains(lo, hi, pass, out);
      a.label(pass).ret(snaplen);
      a.label(out);
      if (miss) a.goto(miss);
      else a.ret(0);
      return;
    }
    const mid = split(lo, hi, BLOCK);
    a.jump(OP.jge, iv[mid][0], `${name}b${mid}`, undefined);
    node(lo, mid);
    a.label(`${name}b${mid}`);
    node(mid, hi);
  };
  node(0, iv.length);
}
