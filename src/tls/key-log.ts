// TLS session keys of the traced program, from its own TLS library's key log (the NSS format
// that NSS, OpenSSL-based curl, GnuTLS, BoringSSL, Python's ssl and Node's --tls-keylog write):
// a launched command is pointed at a private key log; the lines are read as they are written
// and go into the capture (pcapng Decryption Secrets Blocks) and, with --keylog, to a file.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Environment } from '../environment';
import { TracedumpError } from '../errors';
import { type NativeFileGuard, native } from '../native';
import { KeyLogTail } from './key-log-tail';

export interface KeyLogOptions {
  /** --keylog FILE: every key line is also written there (NSS format, mode 0600). */
  copyTo?: string;
  /** The user the command runs as: owns the private key log and the --keylog file. */
  owner?: { uid: number; gid: number };
  /** The capture file can hold keys (pcapng); otherwise the first keys bring a hint. */
  fileHoldsKeys: boolean;
  /** The capture file's name, for that hint. */
  captureName?: string;
  warn: (message: string) => void;
}

// NSS key log: LABEL <client random, hex> <secret, hex>; comments start with '#'.
const KEY_LINE = /^[A-Z][A-Z0-9_]* [0-9a-fA-F]+ [0-9a-fA-F]+$/;
const MAX_REMEMBERED = 200_000;

export class TlsKeyLog {
  private readonly tails: KeyLogTail[] = [];
  private readonly seen = new Set<string>();
  private privateDir?: string;
  // Removes the private key log should tracedump be killed (SIGKILL) before close().
  private guard?: { fd: number; guard: NativeFileGuard };
  private copyFd?: number;
  private hinted = false;
  /** Key lines read so far. */
  lines = 0;

  private constructor(private readonly o: KeyLogOptions) {}

  // --keylog FILE, opened once the key logs read are known: FILE may be one of them (the
  // program writes it already), and then it is neither truncated nor written twice.
  private openCopy(): void {
    const to = this.o.copyTo;
    if (to === undefined || this.tails.some((t) => sameFile(t.path, to))) return;
    this.copyFd = openPrivate(to, this.o.owner, '--keylog');
  }

  /**
   * For a launched command: its environment with SSLKEYLOGFILE and NODE_OPTIONS --tls-keylog
   * pointing at a private key log (0700 directory, 0600 file, owned by the command's user). A
   * key log the user set already is kept and read instead.
   */
  static forLaunch(env: Environment, o: KeyLogOptions): { keys: TlsKeyLog; env: Environment } {
    const keys = new TlsKeyLog(o);
    const out = env.clone();
    try {
      let own: string | undefined;
      const ownLog = () => (own ??= keys.makePrivateLog());
      const userLog = env.get('SSLKEYLOGFILE');
      if (userLog) keys.follow(userLog, true);
      else out.set('SSLKEYLOGFILE', ownLog());
      const nodeLog = nodeKeyLogOf(env.get('NODE_OPTIONS'));
      if (nodeLog !== undefined) keys.follow(path.resolve(nodeLog), true);
      else {
        const file = userLog ? path.resolve(userLog) : ownLog();
        const arg = /[\s"'\\]/.test(file) ? `--tls-keylog="${file.replace(/(["\\])/g, '\\$1')}"` : `--tls-keylog=${file}`;
        // the user's own options stay as they were, byte for byte; ours follow
        const given = env.raw('NODE_OPTIONS');
        out.set('NODE_OPTIONS', given?.length ? Buffer.concat([given, Buffer.from(` ${arg}`)]) : arg);
      }
      keys.openCopy();
    } catch (err) {
      keys.close();
      throw err;
    }
    return { keys, env: out };
  }

  /**
   * For attached processes, whose environment cannot change: the key logs they were started
   * with (SSLKEYLOGFILE, NODE_OPTIONS --tls-keylog), read from where they stand now.
   */
  static forAttach(pids: number[], o: KeyLogOptions): TlsKeyLog {
    const keys = new TlsKeyLog(o);
    try {
      for (const pid of pids) {
        const env = environOf(pid);
        const cwd = cwdOf(pid);
        for (const file of [env.get('SSLKEYLOGFILE'), nodeKeyLogOf(env.get('NODE_OPTIONS'))])
          if (file) keys.follow(path.resolve(cwd ?? '/', file), true);
      }
      keys.openCopy();
    } catch (err) {
      keys.close();
      throw err;
    }
    return keys;
  }

  /** Paths of the key logs read (the private one first when there is one). */
  get files(): string[] {
    return this.tails.map((t) => t.path);
  }

  /** New key lines since the last call (each once), as a key log; undefined when none. */
  read(): Buffer | undefined {
    let fresh = '';
    for (const tail of this.tails)
      for (const line of tail.readLines()) {
        const l = line.trim();
        if (!KEY_LINE.test(l) || this.seen.has(l)) continue;
        if (this.seen.size >= MAX_REMEMBERED) this.seen.clear(); // bounded: a repeat is harmless
        this.seen.add(l);
        fresh += l + '\n';
        this.lines++;
      }
    if (!fresh) return undefined;
    const keyLog = Buffer.from(fresh, 'latin1');
    if (this.copyFd !== undefined) {
      try {
        fs.writeSync(this.copyFd, keyLog);
      } catch (err) {
        this.o.warn(`cannot write the key log ${this.o.copyTo}: ${(err as Error).message}`);
        fs.closeSync(this.copyFd);
        this.copyFd = undefined;
      }
    }
    if (!this.o.fileHoldsKeys) {
      if (!this.hinted && this.copyFd === undefined)
        this.o.warn(
          `the program logged TLS keys, but ${this.o.captureName ?? 'the capture'} is classic pcap, which cannot hold them; ` +
            'write pcapng (-w FILE.pcapng) or keep them with --keylog FILE',
        );
      this.hinted = true;
      return undefined;
    }
    return keyLog;
  }

  /** Stops reading; the private key log and its directory are removed. */
  close(): void {
    for (const t of this.tails) t.close();
    this.tails.length = 0;
    if (this.copyFd !== undefined) fs.closeSync(this.copyFd);
    this.copyFd = undefined;
    if (this.privateDir) fs.rmSync(this.privateDir, { recursive: true, force: true });
    this.privateDir = undefined;
    if (this.guard) {
      this.guard.guard.release();
      fs.closeSync(this.guard.fd);
      this.guard = undefined;
    }
  }

  private follow(file: string, fromEnd: boolean): void {
    const p = path.resolve(file);
    if (!this.tails.some((t) => t.path === p)) this.tails.push(new KeyLogTail(p, fromEnd));
  }

  private makePrivateLog(): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tracedump-tls-')); // mode 0700
    this.privateDir = dir;
    const file = path.join(dir, 'keys.log');
    fs.closeSync(openPrivate(file, this.o.owner, 'the private key log'));
    if (this.o.owner) fs.chownSync(dir, this.o.owner.uid, this.o.owner.gid);
    const fd = fs.openSync(file, fs.constants.O_RDONLY); // read-only: the guardian never cuts it
    try {
      this.guard = { fd, guard: new (native().FileGuard)(fd, [file, dir]) };
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    this.tails.unshift(new KeyLogTail(file, false));
    return file;
  }
}

/** The file a NODE_OPTIONS value gives --tls-keylog, if any (the last one: Node takes it). */
export function nodeKeyLogOf(nodeOptions: string | undefined): string | undefined {
  const words = nodeOptionWords(nodeOptions ?? '');
  let file: string | undefined;
  for (let i = 0; i < words.length; i++) {
    if (words[i].startsWith('--tls-keylog=')) file = words[i].slice('--tls-keylog='.length);
    else if (words[i] === '--tls-keylog' && i + 1 < words.length) file = words[++i];
  }
  return file;
}

// NODE_OPTIONS as Node splits it: words separated by white space; double quotes group, and
// inside them a backslash escapes the next character.
function nodeOptionWords(s: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quoted) {
      if (c === '\\' && i + 1 < s.length) word += s[++i];
      else if (c === '"') quoted = false;
      else word += c;
    } else if (c === '"') {
      quoted = inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}

/** Creates (or truncates) a file only its owner may read: mode 0600, given to owner. */
function openPrivate(file: string, owner: { uid: number; gid: number } | undefined, what: string): number {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_APPEND, 0o600);
    fs.fchmodSync(fd, 0o600);
    if (owner) fs.fchownSync(fd, owner.uid, owner.gid);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new TracedumpError(`cannot write ${what} ${file}: ${e.message.replace(/^[A-Z]+: /, '').replace(/, open.*$/, '')}`, {
      code: e.code,
      syscall: 'open',
      path: file,
      hint: what === '--keylog' ? 'choose another path with --keylog' : undefined,
    });
  }
  return fd;
}

function sameFile(a: string, b: string): boolean {
  if (path.resolve(a) === path.resolve(b)) return true;
  try {
    const x = fs.statSync(a);
    const y = fs.statSync(b);
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

function environOf(pid: number): Environment {
  try {
    return Environment.fromBlock(fs.readFileSync(`/proc/${pid}/environ`));
  } catch {
    return Environment.fromObject({}); // gone, or not readable: no key log known
  }
}

function cwdOf(pid: number): string | undefined {
  try {
    return fs.readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    return undefined;
  }
}
