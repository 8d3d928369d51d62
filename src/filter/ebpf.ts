// A small typed eBPF assembler: instructions with symbolic jump targets, encoded to the
// kernel's struct bpf_insn layout (8 bytes; LD_IMM64 takes two slots).

export type Reg = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10;
export type Size = 'b' | 'h' | 'w' | 'dw';

const CLS = { LD: 0x00, LDX: 0x01, ST: 0x02, STX: 0x03, ALU: 0x04, JMP: 0x05, ALU64: 0x07 } as const;
const SIZE: Record<Size, number> = { w: 0x00, h: 0x08, b: 0x10, dw: 0x18 };
const MODE = { IMM: 0x00, ABS: 0x20, IND: 0x40, MEM: 0x60 } as const;
const SRC_K = 0x00;
const SRC_X = 0x08;

export const ALU = { add: 0x00, sub: 0x10, mul: 0x20, or: 0x40, and: 0x50, lsh: 0x60, rsh: 0x70, mov: 0xb0 } as const;
export const JMP = { ja: 0x00, jeq: 0x10, jgt: 0x20, jge: 0x30, jset: 0x40, jne: 0x50, jlt: 0xa0, jle: 0xb0 } as const;
const CALL = 0x80;
const EXIT = 0x90;
const PSEUDO_MAP_FD = 1;

export const HELPER_MAP_LOOKUP_ELEM = 1;

interface Insn {
  code: number;
  dst: number;
  src: number;
  off: number;
  imm: number;
  target?: string; // a label: off is filled in by assemble()
  wide?: number; // LD_IMM64: the upper 32 bits in the second slot
}

export class EbpfAssembler {
  private readonly insns: Insn[] = [];
  private readonly labels = new Map<string, number>();

  get length(): number {
    return this.insns.reduce((n, i) => n + (i.wide !== undefined ? 2 : 1), 0);
  }

  label(name: string): this {
    if (this.labels.has(name)) throw new Error(`eBPF: label ${name} defined twice`);
    this.labels.set(name, this.insns.length);
    return this;
  }

  /** dst = imm (64-bit ALU) */
  movImm(dst: Reg, imm: number): this {
    return this.push({ code: CLS.ALU64 | ALU.mov | SRC_K, dst, src: 0, off: 0, imm });
  }
  /** dst = src */
  movReg(dst: Reg, src: Reg): this {
    return this.push({ code: CLS.ALU64 | ALU.mov | SRC_X, dst, src, off: 0, imm: 0 });
  }
  aluImm(op: keyof typeof ALU, dst: Reg, imm: number): this {
    return this.push({ code: CLS.ALU64 | ALU[op] | SRC_K, dst, src: 0, off: 0, imm });
  }
  /** dst = *(size *)(src + off) */
  load(size: Size, dst: Reg, src: Reg, off: number): this {
    return this.push({ code: CLS.LDX | MODE.MEM | SIZE[size], dst, src, off, imm: 0 });
  }
  /** *(size *)(dst + off) = src */
  store(size: Size, dst: Reg, off: number, src: Reg): this {
    return this.push({ code: CLS.STX | MODE.MEM | SIZE[size], dst, src, off, imm: 0 });
  }
  /** *(size *)(dst + off) = imm */
  storeImm(size: Size, dst: Reg, off: number, imm: number): this {
    return this.push({ code: CLS.ST | MODE.MEM | SIZE[size], dst, src: 0, off, imm });
  }
  /** r0 = packet[off] in host order (legacy packet access; needs r6 = ctx; clobbers r1-r5) */
  loadAbs(size: Exclude<Size, 'dw'>, off: number): this {
    return this.push({ code: CLS.LD | MODE.ABS | SIZE[size], dst: 0, src: 0, off: 0, imm: off });
  }
  /** r0 = packet[reg + off] in host order */
  loadInd(size: Exclude<Size, 'dw'>, reg: Reg, off: number): this {
    return this.push({ code: CLS.LD | MODE.IND | SIZE[size], dst: 0, src: reg, off: 0, imm: off });
  }
  /** dst = the map with this fd (relocated by the kernel at load time) */
  loadMapFd(dst: Reg, fd: number): this {
    return this.push({ code: CLS.LD | MODE.IMM | SIZE.dw, dst, src: PSEUDO_MAP_FD, off: 0, imm: fd, wide: 0 });
  }
  jumpImm(op: keyof typeof JMP, dst: Reg, imm: number, target: string): this {
    return this.push({ code: CLS.JMP | JMP[op] | SRC_K, dst, src: 0, off: 0, imm, target });
  }
  jump(target: string): this {
    return this.push({ code: CLS.JMP | JMP.ja, dst: 0, src: 0, off: 0, imm: 0, target });
  }
  call(helper: number): this {
    return this.push({ code: CLS.JMP | CALL, dst: 0, src: 0, off: 0, imm: helper });
  }
  exit(): this {
    return this.push({ code: CLS.JMP | EXIT, dst: 0, src: 0, off: 0, imm: 0 });
  }

  /** Encodes the program; every jump target must be defined and lie ahead. */
  assemble(): Buffer {
    const slot: number[] = [];
    let n = 0;
    for (const i of this.insns) {
      slot.push(n);
      n += i.wide !== undefined ? 2 : 1;
    }
    const buf = Buffer.alloc(n * 8);
    this.insns.forEach((insn, idx) => {
      let off = insn.off;
      if (insn.target !== undefined) {
        const to = this.labels.get(insn.target);
        if (to === undefined) throw new Error(`eBPF: undefined label ${insn.target}`);
        const at = to < this.insns.length ? slot[to] : n;
        off = at - slot[idx] - 1;
        if (off < 0 || off > 0x7fff) throw new Error(`eBPF: jump to ${insn.target} out of range`);
      }
      const p = slot[idx] * 8;
      buf.writeUInt8(insn.code, p);
      buf.writeUInt8(((insn.src & 0xf) << 4) | (insn.dst & 0xf), p + 1);
      buf.writeInt16LE(off, p + 2);
      buf.writeInt32LE(insn.imm | 0, p + 4);
      if (insn.wide !== undefined) buf.writeInt32LE(insn.wide | 0, p + 12);
    });
    return buf;
  }

  private push(i: Insn): this {
    this.insns.push(i);
    return this;
  }
}
