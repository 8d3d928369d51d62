// An output file (capture, events) that replaces what was at its path only once the traced
// program has started: a run that fails before (command not found, no privilege, a process
// that cannot be traced) leaves an existing file untouched and creates none.
//
// A regular file (or a path where nothing is yet) is written under a temporary name in the
// same directory and renamed over the path at commit(): the path holds the old file or a
// valid new one at every moment. Anything else (a symbolic link, a fifo, a device) is opened
// at the path itself, with the kernel's own rules for links in shared directories; an existing
// regular file behind a link is truncated only at commit().
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { TracedumpError } from '../errors';
import { quoteName } from '../text/quote';

export interface OutputTargetOptions {
  /** File mode of a new file (0644; 0600 for a file that holds secrets). */
  mode: number;
  /** Given to this user (the user the command runs as, like tcpdump -Z). */
  owner?: { uid: number; gid: number };
  /** What to suggest when the path cannot be written. */
  hint?: string;
}

export class OutputTarget {
  private state: 'open' | 'committed' | 'abandoned' = 'open';
  private fdOpen = true;

  private constructor(
    /** The path the user gave. */
    readonly path: string,
    readonly fd: number,
    /** Where the data goes until commit (the path itself in direct mode). */
    private readonly temp: string | undefined,
    /** Direct mode on a regular file that had content: truncated at commit. */
    private readonly truncateAtCommit: boolean,
    /** Direct mode: this run created the file, so it is removed if the run never starts. */
    private readonly created: boolean,
  ) {}

  /**
   * True while the file is written in place of content that must not be touched yet: nothing
   * may be written to fd before commit().
   */
  get deferred(): boolean {
    return this.state === 'open' && this.truncateAtCommit;
  }

  /** The name the data is under now (for a guardian that removes it if tracedump dies first). */
  get currentName(): string {
    return this.state === 'committed' || this.temp === undefined ? this.path : this.temp;
  }

  get committed(): boolean {
    return this.state === 'committed';
  }

  static open(target: string, o: OutputTargetOptions): OutputTarget {
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw cannotWrite(target, err, o.hint);
    }
    if (st?.isDirectory()) throw cannotWrite(target, Object.assign(new Error('is a directory'), { code: 'EISDIR' }), o.hint);
    if (st === undefined || st.isFile()) {
      const temp = tryTemp(target, o);
      if (temp) return new OutputTarget(target, temp.fd, temp.name, false, false);
      // a directory we may not create files in, but a file there we may write: in place
    }
    return OutputTarget.direct(target, o);
  }

  private static direct(target: string, o: OutputTargetOptions): OutputTarget {
    let fd: number;
    let created = false;
    try {
      try {
        fd = fs.openSync(target, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, o.mode);
        created = true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        fd = fs.openSync(target, fs.constants.O_WRONLY); // follows a link as open(2) allows
      }
    } catch (err) {
      throw cannotWrite(target, err, o.hint);
    }
    const now = fs.fstatSync(fd);
    if (now.isDirectory()) {
      fs.closeSync(fd);
      throw cannotWrite(target, Object.assign(new Error('is a directory'), { code: 'EISDIR' }), o.hint);
    }
    const regular = now.isFile();
    if (regular) prepare(fd, target, o);
    return new OutputTarget(target, fd, undefined, regular && !created && now.size > 0, created);
  }

  /** The program started: the file takes its place at the path. */
  commit(): void {
    if (this.state !== 'open') return;
    if (this.temp !== undefined) {
      try {
        fs.renameSync(this.temp, this.path);
      } catch (err) {
        throw cannotWrite(this.path, err);
      }
    } else if (this.truncateAtCommit) {
      try {
        fs.ftruncateSync(this.fd, 0);
      } catch (err) {
        throw cannotWrite(this.path, err);
      }
    }
    this.state = 'committed';
  }

  /** Closes the file (safe to call twice); an uncommitted one is abandoned. */
  close(): void {
    if (this.state === 'open') this.abandon();
    if (!this.fdOpen) return;
    this.fdOpen = false;
    fs.closeSync(this.fd);
  }

  /** The program never started: remove what this run made, leave what was there; closes it. */
  abandon(): void {
    if (this.state !== 'open') return this.close();
    this.state = 'abandoned';
    this.close();
    try {
      if (this.temp !== undefined) fs.unlinkSync(this.temp);
      else if (this.created) fs.unlinkSync(this.path);
    } catch {
      // already gone
    }
  }
}

/** A new file beside target, or undefined when its directory takes no new file from us. */
function tryTemp(target: string, o: OutputTargetOptions): { fd: number; name: string } | undefined {
  const dir = path.dirname(target);
  for (let i = 0; i < 8; i++) {
    const name = path.join(dir, `.${path.basename(target)}.tracedump-${randomBytes(6).toString('hex')}`);
    let fd: number;
    try {
      fd = fs.openSync(name, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, o.mode);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') continue;
      if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
        // in place, if the file itself is writable; else the error is about the path asked for
        if (fs.existsSync(target)) return undefined;
      }
      throw cannotWrite(target, err, o.hint);
    }
    try {
      prepare(fd, name, o);
    } catch (err) {
      fs.closeSync(fd);
      fs.rmSync(name, { force: true });
      throw err;
    }
    return { fd, name };
  }
  throw new TracedumpError(`cannot write ${quoteName(target)}: no free temporary name beside it`, { path: target });
}

/** Mode and owner of a file this run writes. */
function prepare(fd: number, name: string, o: OutputTargetOptions): void {
  if (o.mode === 0o600) fs.fchmodSync(fd, o.mode); // an existing file keeps its mode otherwise
  if (!o.owner) return;
  try {
    fs.fchownSync(fd, o.owner.uid, o.owner.gid);
  } catch (err) {
    throw new TracedumpError(`cannot give ${quoteName(name)} to uid ${o.owner.uid}: ${(err as Error).message}`, { syscall: 'fchown', path: name });
  }
}

function cannotWrite(target: string, err: unknown, hint?: string): TracedumpError {
  const e = err as NodeJS.ErrnoException;
  const why = (e.message ?? String(err)).replace(/^[A-Z]+: /, '').replace(/, (open|rename|lstat|ftruncate) .*$/, '');
  return new TracedumpError(`cannot write ${quoteName(target)}: ${why}`, { code: e.code, syscall: e.syscall ?? 'open', path: target, hint });
}
