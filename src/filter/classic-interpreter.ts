// A classic BPF interpreter for the instructions the fallback filter uses, so its programs
// can be tested on crafted packets without a kernel (the kernel test runs them too).
import { AD_IFINDEX, AD_PKTTYPE, AD_PROTOCOL, type ClassicInsn, OP } from './classic';

export interface PacketContext {
  /** Ethertype of the network layer (0x0800, 0x86dd). */
  protocol: number;
  pkttype: number;
  ifindex: number;
}

/** Returns the bytes the program keeps (0: rejected), as the kernel would. */
export function runClassic(prog: ClassicInsn[], pkt: Buffer, ctx: PacketContext): number {
  let A = 0;
  let X = 0;
  const M = new Uint32Array(16);
  const load = (k: number, size: 1 | 2 | 4): number | undefined => {
    if (k === AD_PROTOCOL) return ctx.protocol;
    if (k === AD_PKTTYPE) return ctx.pkttype;
    if (k === AD_IFINDEX) return ctx.ifindex;
    if (k < 0 || k + size > pkt.length) return undefined; // out of bounds: the kernel returns 0
    return size === 1 ? pkt[k] : size === 2 ? pkt.readUInt16BE(k) : pkt.readUInt32BE(k);
  };
  for (let pc = 0, steps = 0; pc < prog.length && steps < 100_000; pc++, steps++) {
    const { code, jt, jf, k } = prog[pc];
    let v: number | undefined;
    switch (code) {
      case OP.ldW:
        if ((v = load(k, 4)) === undefined) return 0;
        A = v;
        break;
      case OP.ldH:
        if ((v = load(k, 2)) === undefined) return 0;
        A = v;
        break;
      case OP.ldB:
        if ((v = load(k, 1)) === undefined) return 0;
        A = v;
        break;
      case OP.ldIndH:
        if ((v = load(X + k, 2)) === undefined) return 0;
        A = v;
        break;
      case OP.ldIndB:
        if ((v = load(X + k, 1)) === undefined) return 0;
        A = v;
        break;
      case OP.ldxMsh:
        if ((v = load(k, 1)) === undefined) return 0;
        X = (v & 0xf) * 4;
        break;
      case OP.ldMem:
        A = M[k];
        break;
      case OP.st:
        M[k] = A;
        break;
      case OP.andK:
        A = (A & k) >>> 0;
        break;
      case OP.ja:
        pc += k;
        break;
      case OP.jeq:
        pc += A === k ? jt : jf;
        break;
      case OP.jgt:
        pc += A > k ? jt : jf;
        break;
      case OP.jge:
        pc += A >= k ? jt : jf;
        break;
      case OP.jset:
        pc += A & k ? jt : jf;
        break;
      case OP.ret:
        return Math.min(k, pkt.length);
      default:
        throw new Error(`classic BPF interpreter: opcode 0x${code.toString(16)} at ${pc}`);
    }
  }
  throw new Error('classic BPF interpreter: fell off the end');
}
