// A run's meta.json: what was run, where, how it ended, what was captured, and the sha256 of
// every file of the run. It is written last, whole (a temporary file renamed): a run directory
// with a meta.json is a finished run.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { HostInfo } from './host';

export const META_FILE = 'meta.json';

export interface RunMeta {
  tracedump_run: 1;
  run_id: string;
  label: string;
  /** 1-based repeat of its label. */
  repeat: number;
  /** The run's directory, relative to the campaign's. */
  dir: string;
  plan_file: string;
  plan_hash: string;
  command: string[];
  /** The program's file, when the command names one (its link resolved). */
  exe: string | null;
  package: string | null;
  package_version: string | null;
  started: string;
  ended: string;
  seconds: number;
  exit_status: number | null;
  exit_signal: string | null;
  /** exited | crashed | duration | hung | driver-ended | before-failed | tracedump-failed */
  end_reason: string;
  /** What tracedump said of it (its summary's stop text). */
  end_text: string;
  capture: { packets: number; bytes: number; drops: number; sockets: number; processes: number; tls_key_lines: number } | null;
  /** Why there is no objects.jsonl, when there is none. */
  objects_note?: string;
  before_status?: number | null;
  after_status?: number | null;
  driver_status?: number | null;
  display?: { width: number; height: number } | null;
  host: HostInfo;
  tracedump: string;
  /** File name (relative to the run's directory) -> sha256, for every file but meta.json. */
  files: Record<string, string>;
}

export function sha256File(file: string): string {
  const hash = crypto.createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) hash.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

/** sha256 of every file in a run's directory (meta.json excepted). */
export function hashFiles(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of fs.readdirSync(dir).sort()) {
    if (name === META_FILE || name.startsWith('.')) continue;
    const p = path.join(dir, name);
    if (fs.statSync(p).isFile()) out[name] = sha256File(p);
  }
  return out;
}

/** Writes a file whole or not at all; throws the write's error (ENOSPC...). */
export function writeWhole(file: string, text: string): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp`);
  const fd = fs.openSync(tmp, 'w', 0o644);
  try {
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

/** A finished run's meta.json, or undefined (none, or not whole). */
export function readMeta(dir: string): RunMeta | undefined {
  try {
    const meta = JSON.parse(fs.readFileSync(path.join(dir, META_FILE), 'utf8')) as RunMeta;
    return meta.tracedump_run === 1 && typeof meta.run_id === 'string' ? meta : undefined;
  } catch {
    return undefined;
  }
}
