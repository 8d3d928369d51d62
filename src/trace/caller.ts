// What tracedump's caller gave it, for the traced command to get exactly: its arguments as
// bytes, its environment (bytes and order), its open descriptors. bin/tracedump hands the
// environment and descriptors over (TRACEDUMP_CALLER_ENVIRON, TRACEDUMP_CALLER_FDS) because
// tracedump's own Node runs without the variables that would configure it.
import * as fs from 'node:fs';
import { Environment } from '../environment';

const ENVIRON = 'TRACEDUMP_CALLER_ENVIRON';
const FDS = 'TRACEDUMP_CALLER_FDS';

let environment: Environment | undefined;
let fds: number[] | undefined;

/** Reads (once) what the launcher handed over, and takes it out of tracedump's own environment. */
function take(): void {
  if (environment) return;
  const block = process.env[ENVIRON];
  const list = process.env[FDS];
  delete process.env[ENVIRON];
  delete process.env[FDS];
  // started without the launcher (node dist/cli.js): the environment as Node has it
  environment = block !== undefined ? Environment.fromBlock(Buffer.from(block, 'base64')) : Environment.fromObject(process.env);
  fds = (list ?? '')
    .split(' ')
    .filter((s) => /^\d+$/.test(s))
    .map(Number)
    .filter((fd) => fd > 2 && isOpen(fd));
}

function isOpen(fd: number): boolean {
  try {
    fs.fstatSync(fd);
    return true;
  } catch {
    return false;
  }
}

/** The caller's environment (a copy to change). */
export function callerEnvironment(): Environment {
  take();
  return environment!.clone();
}

/** The caller's open descriptors above 2, for the command. */
export function callerFds(): number[] {
  take();
  return [...fds!];
}

/**
 * The last `count` arguments as the caller's bytes (/proc/self/cmdline), where they decode to
 * the words given (process.argv holds text: bytes that are not UTF-8 are lost there).
 */
export function rawArguments(words: string[]): Buffer[] {
  const asText = words.map((w) => Buffer.from(w));
  if (words.length === 0) return [];
  let cmdline: Buffer;
  try {
    cmdline = fs.readFileSync('/proc/self/cmdline');
  } catch {
    return asText;
  }
  const all: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < cmdline.length; i++)
    if (cmdline[i] === 0) {
      all.push(cmdline.subarray(start, i));
      start = i + 1;
    }
  const raw = all.slice(all.length - words.length);
  if (raw.length !== words.length || raw.some((r, i) => r.toString('utf8') !== words[i])) return asText;
  return raw.map((r) => Buffer.from(r));
}
