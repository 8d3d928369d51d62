// One line per packet: aligned text (like tcpdump -r, with the process columns) or JSON lines.
import { hostPort } from '../text/endpoint';
import type { Decoded } from './decode';
import { printable } from '../text/quote';
import type { CaptureRecord } from './reader';

/** The process a packet belongs to, as the file says (tracedump's pcapng). */
export interface ProcessInfo {
  pid: number | null;
  tid: number | null;
  comm: string | null;
  exe: string | null;
}

const COMMENT = /^pid=(\d+) tid=(\d+) comm=(.*?)(?: exe=(.*))?$/s;

/** pid and tid from epb_processid_threadid, comm and exe (and missing ids) from the comment. */
export function processInfo(rec: CaptureRecord): ProcessInfo {
  const info: ProcessInfo = { pid: rec.pid ?? null, tid: rec.tid ?? null, comm: null, exe: null };
  for (const c of rec.comments) {
    const m = COMMENT.exec(c);
    if (!m) continue;
    const pid = Number(m[1]);
    const tid = Number(m[2]);
    // a comment about another process than the option names is not this packet's
    if (info.pid !== null && info.pid !== pid) continue;
    info.pid ??= pid;
    info.tid ??= tid;
    info.comm = m[3];
    info.exe = m[4] ?? null;
    break;
  }
  return info;
}

const pad2 = (n: number) => (n < 10 ? `0${n}` : `${n}`);

/**
 * How the time column reads, as tcpdump's -t options: 'clock' HH:MM:SS.frac (the default),
 * 'none' (-t), 'epoch' seconds (-tt), 'delta' since the previous packet (-ttt), 'date' with
 * the date (-tttt), 'since-first' since the first packet (-ttttt). Local time.
 */
export type TimeStyle = 'clock' | 'none' | 'epoch' | 'delta' | 'date' | 'since-first';

export const TIME_STYLES: TimeStyle[] = ['clock', 'none', 'epoch', 'delta', 'date', 'since-first'];

/** Formats timestamps in the reader's local time, caching the clock part of the last second. */
export class Clock {
  private lastSec = NaN;
  private lastText = '';
  private prev: [number, number] | undefined;
  private first: [number, number] | undefined;

  constructor(private readonly style: TimeStyle = 'clock') {}

  /** The time column (`digits` fraction digits), or '-' (as wide) when the packet has no time; '' for -t. */
  text(sec: number | undefined, nsec: number | undefined, digits: number): string {
    if (this.style === 'none') return '';
    const frac = (ns: number) => (digits <= 0 ? '' : `.${String(ns).padStart(9, '0').slice(0, Math.min(digits, 9))}`);
    if (sec === undefined || nsec === undefined) return '-'.padEnd(this.width(digits));
    switch (this.style) {
      case 'epoch':
        return `${sec}${frac(nsec)}`;
      case 'delta':
      case 'since-first': {
        const from = this.style === 'delta' ? this.prev : (this.first ??= [sec, nsec]);
        this.prev = [sec, nsec];
        const [s0, n0] = from ?? [sec, nsec];
        const diff = (sec - s0) * 1e9 + (nsec - n0); // exact below ~104 days
        const abs = Math.abs(diff);
        const ds = Math.floor(abs / 1e9);
        return `${diff < 0 ? '-' : ''}${pad2(Math.floor(ds / 3600))}:${pad2(Math.floor(ds / 60) % 60)}:${pad2(ds % 60)}${frac(abs % 1e9)}`;
      }
      default:
        break;
    }
    if (sec !== this.lastSec) {
      const d = new Date(sec * 1000);
      const hms = `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
      this.lastText = Number.isNaN(d.getTime())
        ? `${sec}s`
        : this.style === 'date'
          ? `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${hms}`
          : hms;
      this.lastSec = sec;
    }
    return this.lastText + frac(nsec);
  }

  private width(digits: number): number {
    const f = digits > 0 ? 1 + Math.min(digits, 9) : 0;
    return (this.style === 'date' ? 19 : this.style === 'epoch' ? 10 : 8) + f;
  }
}

/** Epoch seconds with nanoseconds, as a string (a double cannot hold them). */
export function epochText(sec: number | undefined, nsec: number | undefined): string | null {
  if (sec === undefined || nsec === undefined) return null;
  if (sec < 0 && nsec > 0) return `-${-sec - 1}.${String(1_000_000_000 - nsec).padStart(9, '0')}`;
  return `${sec}.${String(nsec).padStart(9, '0')}`;
}

/** An endpoint: a.b.c.d:port, [v6]:port, or the address alone when there is no port. */
export function endpoint(addr: string | null, port: number | null): string {
  if (addr === null) return '?';
  return port === null ? addr : hostPort(addr, port);
}


/** Width of the pid column (pid_max is at most 4194304) and of the comm column (TASK_COMM_LEN-1). */
const PID_WIDTH = 7;
const COMM_WIDTH = 15;

/** Width of the frame number column (wider numbers push the line). */
const FRAME_WIDTH = 5;

/**
 * FRAME TIME PID COMM DIR PROTO SRC > DST len N [FLAGS] info (frame and time may be left out)
 * `    7 06:40:28.011151096   12345 curl            out tcp   127.0.0.1:35166 > 127.0.0.1:80 len 0 [S]`
 */
export function textLine(frame: number | undefined, time: string, proc: ProcessInfo, d: Decoded): string {
  const pid = (proc.pid === null ? '-' : String(proc.pid)).padStart(PID_WIDTH);
  const comm = proc.comm === null || proc.comm === '' ? '-' : printable(proc.comm);
  const dir = d.direction ?? '-';
  let s = frame === undefined ? '' : `${String(frame).padStart(FRAME_WIDTH)} `;
  if (time !== '') s += `${time} `;
  s += `${pid} ${comm.padEnd(COMM_WIDTH)} ${dir.padEnd(3)} ${d.proto.padEnd(5)}`;
  if (d.src !== null || d.dst !== null) s += ` ${endpoint(d.src, d.sport)} > ${endpoint(d.dst, d.dport)}`;
  s += ` len ${d.len}`;
  if (d.caplen < d.iplen) s += ` (${d.caplen} of ${d.iplen} captured)`;
  if (d.flags !== null) s += ` [${d.flags || 'none'}]`;
  if (d.info !== null) s += ` ${d.info}`;
  if (d.quoted) s += ` for ${d.quoted.proto} ${endpoint(d.quoted.src, d.quoted.sport)} > ${endpoint(d.quoted.dst, d.quoted.dport)}`;
  return s;
}

/** The fields of one JSON line: the packet's, with its frame number, time and process. */
export interface JsonPacket extends Decoded {
  frame: number;
  time: string | null;
  pid: number | null;
  tid: number | null;
  comm: string | null;
  exe: string | null;
  iface: string | null;
}

export function jsonLine(rec: CaptureRecord, proc: ProcessInfo, d: Decoded): string {
  // listed one by one: the order of the fields in the line
  const v: JsonPacket = {
    frame: rec.frame,
    time: epochText(rec.sec, rec.nsec),
    pid: proc.pid,
    tid: proc.tid,
    comm: proc.comm,
    exe: proc.exe,
    direction: d.direction,
    iface: rec.iface.name ?? null,
    ifindex: d.ifindex,
    proto: d.proto,
    src: d.src,
    sport: d.sport,
    dst: d.dst,
    dport: d.dport,
    len: d.len,
    iplen: d.iplen,
    caplen: d.caplen,
    flags: d.flags,
    info: d.info,
    quoted: d.quoted,
  };
  return JSON.stringify(v);
}
