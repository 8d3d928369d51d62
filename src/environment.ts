// An environment as a process holds it: NAME=value entries in order, kept as bytes (a value
// need not be UTF-8), so that a command gets exactly what its caller gave, with only the
// entries tracedump sets on purpose changed (in place) or added (at the end).

const EQUALS = 0x3d;

export class Environment {
  private constructor(private readonly entries: Buffer[]) {}

  /** From an environment block: entries separated by NUL (/proc/PID/environ). */
  static fromBlock(block: Buffer): Environment {
    const entries: Buffer[] = [];
    let start = 0;
    for (let i = 0; i <= block.length; i++) {
      if (i < block.length && block[i] !== 0) continue;
      if (i > start) entries.push(Buffer.from(block.subarray(start, i)));
      start = i + 1;
    }
    return new Environment(entries);
  }

  static fromObject(env: NodeJS.ProcessEnv): Environment {
    return new Environment(Object.entries(env).flatMap(([k, v]) => (v === undefined ? [] : [Buffer.from(`${k}=${v}`)])));
  }

  clone(): Environment {
    return new Environment([...this.entries]);
  }

  private indexOf(name: string): number {
    const key = Buffer.from(`${name}=`);
    return this.entries.findIndex((e) => e.length >= key.length && key.equals(e.subarray(0, key.length)));
  }

  /** The value as bytes, or undefined. */
  raw(name: string): Buffer | undefined {
    const i = this.indexOf(name);
    return i < 0 ? undefined : this.entries[i].subarray(Buffer.byteLength(name) + 1);
  }

  /** The value as text (bytes that are not UTF-8 read as U+FFFD), or undefined. */
  get(name: string): string | undefined {
    return this.raw(name)?.toString('utf8');
  }

  has(name: string): boolean {
    return this.indexOf(name) >= 0;
  }

  /** Sets name: in its place when it is there, else at the end. */
  set(name: string, value: string | Buffer): this {
    const entry = Buffer.concat([Buffer.from(`${name}=`), typeof value === 'string' ? Buffer.from(value) : value]);
    const i = this.indexOf(name);
    if (i < 0) this.entries.push(entry);
    else this.entries[i] = entry;
    return this;
  }

  delete(name: string): this {
    const i = this.indexOf(name);
    if (i >= 0) this.entries.splice(i, 1);
    return this;
  }

  /** Names whose entries start with prefix. */
  namesStartingWith(prefix: string): string[] {
    const out: string[] = [];
    for (const e of this.entries) {
      const eq = e.indexOf(EQUALS);
      const name = e.subarray(0, eq < 0 ? e.length : eq).toString('latin1');
      if (name.startsWith(prefix)) out.push(name);
    }
    return out;
  }

  /** The entries, for execve. */
  toBuffers(): Buffer[] {
    return [...this.entries];
  }
}
