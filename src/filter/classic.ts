// Classic BPF for the fallback kernel filter: an assembler whose conditional jumps are
// relocated through `ja` trampolines when they outgrow their 8-bit offsets (the bug that
// capped the 2012 tracedump at ~113 ports), and the two programs the fallback uses.

export interface ClassicInsn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

export const BPF_MAXINSNS = 4096;

export const OP = {
  ldW: 0x20,
  ldH: 0x28,
  ldB: 0x30,
  ldIndH: 0x48,
  ldIndB: 0x50,
  ldxMsh: 0xb1, // X = 4 * (pkt[k] & 0xf)
  ldMem: 0x60,
  st: 0x02,
  ja: 0x05,
  jeq: 0x15,
  jgt: 0x25,
  jge: 0x35,
  jset: 0x45,
  andK: 0x54,
  ret: 0x06,
} as const;

// Ancillary loads (SKF_AD_OFF + x): skb->protocol, pkt_type, ifindex.
export const SKF_AD_OFF = 0xfffff000;
export const AD_PROTOCOL = SKF_AD_OFF + 0;
export const AD_PKTTYPE = SKF_AD_OFF + 4;
export const AD_IFINDEX = SKF_AD_OFF + 8;

const NONE = -1;

/**
 * Builds a program from instructions and labels. Labels are numbered as they are first named;
 * instructions are kept in flat arrays (code, k, jt/jf/ja label ids), so a layout pass is
 * linear and a 4,096-instruction program assembles in well under a millisecond.
 */
export class ClassicAssembler {
  private code: number[] = [];
  private k: number[] = [];
  private jt: number[] = []; // label id or NONE (fall through)
  private jf: number[] = [];
  private ja: number[] = []; // label id of an unconditional jump, or NONE
  private readonly labelIds = new Map<string, number>();
  private readonly labelNames: string[] = [];
  private labelAt: number[] = []; // label id -> index of the next instruction (NONE: not placed)

  private id(name: string | undefined): number {
    if (name === undefined) return NONE;
    let id = this.labelIds.get(name);
    if (id === undefined) {
      id = this.labelNames.length;
      this.labelIds.set(name, id);
      this.labelNames.push(name);
      this.labelAt.push(NONE);
    }
    return id;
  }
  private push(code: number, k: number, jt: number, jf: number, ja: number): this {
    this.code.push(code);
    this.k.push(k);
    this.jt.push(jt);
    this.jf.push(jf);
    this.ja.push(ja);
    return this;
  }

  label(name: string): this {
    const id = this.id(name);
    if (this.labelAt[id] !== NONE) throw new Error(`classic BPF: label ${name} placed twice`);
    this.labelAt[id] = this.code.length;
    return this;
  }
  op(code: number, k = 0): this {
    return this.push(code, k, NONE, NONE, NONE);
  }
  /** Conditional jump: jt/jf are labels, or undefined to fall through. */
  jump(code: number, k: number, jt?: string, jf?: string): this {
    return this.push(code, k, this.id(jt), this.id(jf), NONE);
  }
  goto(target: string): this {
    return this.push(OP.ja, 0, NONE, NONE, this.id(target));
  }
  ret(k: number): this {
    return this.op(OP.ret, k >>> 0);
  }

  /**
   * Lays the program out: a conditional jump whose target is more than 255 instructions ahead
   * goes through a `ja` trampoline placed right after it (its fall-through side then steps over
   * the trampoline), repeated until every jump fits; validates the result unless told not to.
   */
  assemble(check = true): ClassicInsn[] {
    const n = this.code.length;
    for (let l = 0; l < this.labelNames.length; l++)
      if (this.labelAt[l] === NONE) throw new Error(`classic BPF: undefined label ${this.labelNames[l]}`);
    for (let i = 0; i < n; i++)
      for (const t of [this.jt[i], this.jf[i], this.ja[i]])
        if (t !== NONE && this.labelAt[t] <= i) throw new Error(`classic BPF: backward jump to ${this.labelNames[t]}`);
    const farT = new Uint8Array(n);
    const farF = new Uint8Array(n);
    const pos = new Int32Array(n + 1); // position of source instruction i (n: the end)
    const target = (label: number) => pos[this.labelAt[label]];
    for (let round = 0; round < 64; round++) {
      let at = 0;
      for (let i = 0; i < n; i++) {
        pos[i] = at;
        at += 1 + farT[i] + farF[i];
      }
      pos[n] = at;
      let grew = false;
      for (let i = 0; i < n; i++) {
        if (this.jt[i] !== NONE && !farT[i] && target(this.jt[i]) - pos[i] - 1 > 255) {
          farT[i] = 1;
          grew = true;
        }
        if (this.jf[i] !== NONE && !farF[i] && target(this.jf[i]) - pos[i] - 1 > 255) {
          farF[i] = 1;
          grew = true;
        }
      }
      if (!grew) break;
    }
    const out: ClassicInsn[] = new Array(pos[n]);
    for (let i = 0; i < n; i++) {
      const p = pos[i];
      if (this.ja[i] !== NONE) {
        out[p] = { code: OP.ja, jt: 0, jf: 0, k: target(this.ja[i]) - p - 1 };
        continue;
      }
      const tramps = farT[i] + farF[i];
      // a far side jumps to its trampoline, a fall-through side over the trampolines
      const side = (label: number, far: number, slot: number) => (label === NONE ? tramps : far ? slot : target(label) - p - 1);
      out[p] = { code: this.code[i], jt: side(this.jt[i], farT[i], 0), jf: side(this.jf[i], farF[i], farT[i]), k: this.k[i] >>> 0 };
      if (farT[i]) out[p + 1] = { code: OP.ja, jt: 0, jf: 0, k: target(this.jt[i]) - (p + 1) - 1 };
      if (farF[i]) out[p + 1 + farT[i]] = { code: OP.ja, jt: 0, jf: 0, k: target(this.jf[i]) - (p + 1 + farT[i]) - 1 };
    }
    if (check) validate(out);
    return out;
  }
}

/** The kernel's rules that matter here: size, forward jumps in range, ends in a return. */
export function validate(p: ClassicInsn[]): void {
  if (p.length === 0 || p.length > BPF_MAXINSNS) throw new Error(`classic BPF: ${p.length} instructions (1..${BPF_MAXINSNS})`);
  p.forEach((i, n) => {
    const isCond = (i.code & 0x07) === 0x05 && i.code !== OP.ja;
    if (isCond && (i.jt > 255 || i.jf > 255 || n + 1 + Math.max(i.jt, i.jf) >= p.length))
      throw new Error(`classic BPF: jump out of range at ${n}`);
    if (i.code === OP.ja && n + 1 + i.k >= p.length) throw new Error(`classic BPF: ja out of range at ${n}`);
  });
  if ((p[p.length - 1].code & 0x07) !== 0x06) throw new Error('classic BPF: the program does not end in a return');
}

export function encodeClassic(p: ClassicInsn[]): Buffer {
  const b = Buffer.alloc(p.length * 8);
  p.forEach((i, n) => {
    b.writeUInt16LE(i.code, n * 8);
    b.writeUInt8(i.jt, n * 8 + 2);
    b.writeUInt8(i.jf, n * 8 + 3);
    b.writeUInt32LE(i.k >>> 0, n * 8 + 4);
  });
  return b;
}
