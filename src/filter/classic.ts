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

interface PendingInsn {
  code: number;
  k: number;
  jt?: string;
  jf?: string;
  ja?: string; // unconditional jump target
}

export class ClassicAssembler {
  private readonly insns: Array<PendingInsn | { label: string }> = [];

  label(name: string): this {
    this.insns.push({ label: name });
    return this;
  }
  op(code: number, k = 0): this {
    this.insns.push({ code, k });
    return this;
  }
  /** Conditional jump: jt/jf are labels, or undefined to fall through. */
  jump(code: number, k: number, jt?: string, jf?: string): this {
    this.insns.push({ code, k, jt, jf });
    return this;
  }
  goto(target: string): this {
    this.insns.push({ code: OP.ja, k: 0, ja: target });
    return this;
  }
  ret(k: number): this {
    return this.op(OP.ret, k >>> 0);
  }

  /** Lays the program out, inserting trampolines until every jump fits; validates it unless told not to. */
  assemble(check = true): ClassicInsn[] {
    // working list: instructions plus trampolines added for far conditional targets
    let list: Array<PendingInsn & { tramp?: boolean }> = [];
    const labelsAt = new Map<string, number>(); // label -> index in list
    const rebuild = (far: Set<string>) => {
      list = [];
      labelsAt.clear();
      this.insns.forEach((i, n) => {
        if ('label' in i) {
          labelsAt.set(i.label, list.length);
          return;
        }
        const at = list.length;
        list.push({ ...i });
        let trampolines = 0;
        for (const side of ['jt', 'jf'] as const) {
          const target = i[side];
          if (target && far.has(`${n}:${side}`)) {
            list[at][side] = `@t${n}${side}`;
            list.push({ code: OP.ja, k: 0, ja: target, tramp: true });
            labelsAt.set(`@t${n}${side}`, list.length - 1);
            trampolines++;
          }
        }
        // a fall-through side must now step over the trampolines
        if (trampolines && i.ja === undefined) {
          labelsAt.set(`@f${n}`, list.length);
          for (const side of ['jt', 'jf'] as const) if (!list[at][side]) list[at][side] = `@f${n}`;
        }
      });
    };
    const far = new Set<string>();
    for (let round = 0; round < 64; round++) {
      rebuild(far);
      // map list positions back to source instructions to name far jumps
      let grew = false;
      let src = -1;
      list.forEach((ins, pos) => {
        if (!ins.tramp) src = this.sourceIndex(src + 1);
        for (const side of ['jt', 'jf'] as const) {
          const t = ins[side];
          if (!t || t.startsWith('@t')) continue;
          const to = labelsAt.get(t);
          if (to === undefined) throw new Error(`classic BPF: undefined label ${t}`);
          const off = to - pos - 1;
          if (off < 0) throw new Error(`classic BPF: backward jump to ${t}`);
          if (off > 255 && !far.has(`${src}:${side}`)) {
            far.add(`${src}:${side}`);
            grew = true;
          }
        }
      });
      if (!grew) break;
    }
    const out = list.map((ins, pos) => {
      const rel = (t?: string) => {
        if (!t) return 0;
        const to = labelsAt.get(t);
        if (to === undefined) throw new Error(`classic BPF: undefined label ${t}`);
        return to - pos - 1;
      };
      if (ins.ja !== undefined) return { code: OP.ja, jt: 0, jf: 0, k: rel(ins.ja) };
      return { code: ins.code, jt: rel(ins.jt), jf: rel(ins.jf), k: ins.k >>> 0 };
    });
    if (check) validate(out);
    return out;
  }

  // index in this.insns of the next instruction (skipping labels) at or after `from`
  private sourceIndex(from: number): number {
    let i = from;
    while (i < this.insns.length && 'label' in this.insns[i]) i++;
    return i;
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
