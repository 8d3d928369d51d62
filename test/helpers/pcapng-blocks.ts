// The tests' one pcapng block walker, independent of src/ (it checks what the writer makes):
// each block's type, offset and body, the framing checked (lengths a multiple of 4, repeated
// at the end), either byte order.
import fs from 'node:fs';

export const PCAPNG_SHB = 0x0a0d0d0a;
export const PCAPNG_BYTE_ORDER = 0x1a2b3c4d;

export interface Block {
  /** Offset of the block in the file. */
  at: number;
  type: number;
  len: number;
  /** The bytes between the length and the trailing length. */
  body: Buffer;
}

export interface Blocks {
  blocks: Block[];
  littleEndian: boolean;
  /** What is wrong with the framing (the walk stops at the first problem). */
  problems: string[];
}

export function pcapngBlocks(fileOrData: string | Buffer): Blocks {
  const b = typeof fileOrData === 'string' ? fs.readFileSync(fileOrData) : fileOrData;
  const out: Blocks = { blocks: [], littleEndian: true, problems: [] };
  if (b.length < 12 || b.readUInt32LE(0) !== PCAPNG_SHB) {
    out.problems.push('no section header block first');
    return out;
  }
  out.littleEndian = b.readUInt32LE(8) === PCAPNG_BYTE_ORDER;
  const u32 = (o: number) => (out.littleEndian ? b.readUInt32LE(o) : b.readUInt32BE(o));
  for (let at = 0; at < b.length; ) {
    if (at + 12 > b.length) {
      out.problems.push(`stray ${b.length - at} bytes at ${at}`);
      break;
    }
    const type = u32(at);
    const len = u32(at + 4);
    if (len < 12 || len % 4 !== 0 || at + len > b.length) {
      out.problems.push(`block of type ${type} at ${at}: bad length ${len}`);
      break;
    }
    if (u32(at + len - 4) !== len) {
      out.problems.push(`block of type ${type} at ${at}: trailing length differs`);
      break;
    }
    out.blocks.push({ at, type, len, body: b.subarray(at + 8, at + len - 4) });
    at += len;
  }
  return out;
}

/** The blocks of a file that must be well formed: throws naming the problem. */
export function wellFormedBlocks(file: string): Block[] {
  const r = pcapngBlocks(file);
  if (r.problems.length) throw new Error(`${file}: ${r.problems.join('; ')}`);
  return r.blocks;
}
