// What tracedump says of a run: the one-line summary at the end, the same figures as JSON
// (--summary-json) for batch scripts, the status line on a terminal and the SIGUSR1 report.
import type { FileFigures } from '../output/format';
import { quoteName } from '../text/quote';

/** Why capture ended. */
export type StopReason =
  | { kind: 'exited'; code: number | null; signal: string | null } // the launched command
  | { kind: 'all-exited' } // every attached process
  | { kind: 'never-started'; message: string }
  | { kind: 'duration'; seconds: number }
  | { kind: 'count'; packets: number }
  | { kind: 'file-limit'; files: number }
  | { kind: 'signal'; signal: string } // SIGTERM or SIGHUP to tracedump
  | { kind: 'interrupted' } // Ctrl-C (attached: detached)
  | { kind: 'write-failed'; message: string };


/** What the capture lacks or cannot tell apart (report/gaps.ts). */
export interface GapFigures {
  found: number;
  /** TCP segments those sockets had exchanged before they were found (not in the capture). */
  missedSegments: number;
  /** Found UDP sockets: how many datagrams went before is not known. */
  unknown: number;
  /** Raw sockets of the program: their packets are not captured. */
  raw: number;
  /** Ports of the program another process holds too (SO_REUSEPORT): received packets may be its. */
  shared: number;
}

export interface RunFigures {
  /** '-' for stdout; undefined without a capture (--events alone). */
  output?: string;
  /** Packets and bytes (on the wire) written, over the whole run. */
  written: number;
  writtenBytes: number;
  /** The files as they are at the end (a -W ring: only the files still there). */
  files: FileFigures[];
  /** Packets lost after writing failed (a full disk), else 0. */
  lostAfterFailure: number;
  sockets: number;
  processes: number;
  kernelDrops: number;
  /** Packets the kernel filter passed to the ring, and of those, the ones judged not the program's. */
  filterPassed: number;
  notTheProgram: number;
  filter?: string;
  /** Rules the kernel filter could not hold (packets of those sockets may be missing). */
  refusedRules: number;
  /** Packets left out undecided at the end (see PipelineCounters.undecided). */
  undecided: number;
  gaps?: GapFigures;
  tlsKeys?: { lines: number; inFile: boolean };
  /** Packets the native path wrote (capture/native-path.ts), and in check mode the records that differed. */
  nativePath?: { written: number; mismatches: number };
  elapsedMs: number;
  /** tracedump's own CPU (all its threads: controller, tracer, capture), seconds. */
  cpuSeconds?: number;
  /** Of it, the CPU up to the capture's start (Node's own start-up, the ring's allocation). */
  startCpuSeconds?: number;
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

export function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}

export function stopText(r: StopReason): string {
  switch (r.kind) {
    case 'exited':
      return r.signal ? `the command was killed by ${r.signal}` : `the command exited with status ${r.code ?? 0}`;
    case 'all-exited':
      return 'every attached process exited';
    case 'never-started':
      return `the command never started (${r.message})`;
    case 'duration':
      return `--duration ${r.seconds} reached`;
    case 'count':
      return `-c ${r.packets} reached`;
    case 'file-limit':
      return `-W ${r.files}: the last file is full`;
    case 'signal':
      return `stopped by ${r.signal}`;
    case 'interrupted':
      return 'interrupted (Ctrl-C)';
    case 'write-failed':
      return 'the capture file could not be written';
  }
}

function where(f: RunFigures): string {
  if (f.output === '-') return 'stdout';
  if (f.files.length > 1) return `${f.files.length} files (${quoteName(f.files[0].path)} ... ${quoteName(f.files[f.files.length - 1].path)})`;
  return quoteName(f.files[0]?.path ?? f.output ?? '');
}

/** The packets in the files at the end (a -W ring overwrote the older ones). */
function inFiles(f: RunFigures): number {
  return f.files.reduce((n, x) => n + x.packets, 0);
}

/** `tracedump: 32 packets (2.2 KiB) written to demo.pcapng, 6 sockets, 2 processes, 0 dropped by the kernel (ebpf filter); the command exited with status 0` */
export function summaryLine(f: RunFigures, stop: StopReason): string {
  const parts: string[] = [];
  if (f.output !== undefined) {
    const held = inFiles(f);
    if (f.lostAfterFailure > 0)
      parts.push(`${plural(f.written - f.lostAfterFailure, 'packet')} in ${where(f)} (${f.lostAfterFailure} captured after writing failed are lost)`);
    else {
      let packets = `${plural(f.written, 'packet')} (${size(f.writtenBytes)}) written to ${where(f)}`;
      if (f.output !== '-' && held < f.written) packets += ` (${held} in the files kept; the -W ring overwrote the rest)`;
      parts.push(packets);
    }
  }
  parts.push(plural(f.sockets, 'socket'), plural(f.processes, 'process', 'processes'));
  if (f.output !== undefined) {
    let drops = `${f.kernelDrops} dropped by the kernel`;
    if (f.kernelDrops > 0) drops += ' (raise the ring with -B)';
    if (f.filter) drops += ` (${f.filter} filter)`;
    parts.push(drops);
  }
  if (f.tlsKeys?.lines) parts.push(`${plural(f.tlsKeys.lines, 'TLS key log line')}${f.tlsKeys.inFile ? ' in the file' : ''}`);
  parts.push(...gapParts(f));
  return `tracedump: ${parts.join(', ')}; ${stopText(stop)}`;
}

/**
 * What the capture lacks or cannot tell apart, apart from kernel drops, one phrase each (the
 * summary line, and the pcapng statistics' comment): empty for a complete capture.
 */
export function gapParts(f: RunFigures): string[] {
  const parts: string[] = [];
  if (f.refusedRules) parts.push(`${plural(f.refusedRules, 'filter rule')} refused by the kernel (map full)`);
  if (f.undecided) parts.push(`${plural(f.undecided, 'packet')} left out undecided (whose they were was still unknown at the end)`);
  const g = f.gaps;
  if (!g) return parts;
  if (g.found) {
    const missing: string[] = [];
    if (g.found > g.unknown) missing.push(plural(g.missedSegments, 'TCP packet'));
    if (g.unknown) missing.push(`the datagrams of ${plural(g.unknown, 'UDP socket')}`);
    parts.push(`${plural(g.found, 'socket')} found late (${missing.join(' and ')} from before not captured)`);
  }
  if (g.raw) parts.push(`${plural(g.raw, 'raw socket')} not captured`);
  if (g.shared) parts.push(`${plural(g.shared, 'port')} shared with another process (its received packets may be that one's)`);
  return parts;
}

/** The --summary-json document. */
export function summaryJson(
  f: RunFigures,
  stop: StopReason,
  run: { version: string; command?: string[]; attached?: number[]; startedMs: number; endedMs: number; exitStatus: number; commandExit?: { code: number | null; signal: string | null } | null },
): string {
  const doc = {
    tracedump: run.version,
    command: run.command ?? null,
    attached: run.attached ?? null,
    started: new Date(run.startedMs).toISOString(),
    ended: new Date(run.endedMs).toISOString(),
    seconds: Math.round(run.endedMs - run.startedMs) / 1000,
    stop: { ...stop, kind: undefined, reason: stop.kind, text: stopText(stop) },
    exit_status: run.exitStatus,
    // how the launched command itself ended (after a stop too: SIGKILL when it outlived --kill-after)
    command_exit: run.commandExit ?? null,
    output: f.output ?? null,
    packets_written: f.written,
    bytes_written: f.writtenBytes,
    packets_in_files: f.output === undefined ? 0 : f.output === '-' ? f.written - f.lostAfterFailure : inFiles(f),
    packets_lost_after_write_failure: f.lostAfterFailure,
    files: f.files,
    kernel_drops: f.kernelDrops,
    sockets: f.sockets,
    processes: f.processes,
    kernel_filter: f.filter ?? null,
    // what the kernel filter let through and the controller then judged someone else's (a
    // destination in a connect's moment, a socket's grace): the cost of a wider filter
    packets_past_kernel_filter: f.filterPassed,
    packets_not_the_programs: f.notTheProgram,
    refused_rules: f.refusedRules,
    packets_left_out_undecided: f.undecided,
    sockets_found_late: f.gaps?.found ?? 0,
    raw_sockets: f.gaps?.raw ?? 0,
    shared_ports: f.gaps?.shared ?? 0,
    packets_before_found: f.gaps && f.gaps.unknown === 0 ? f.gaps.missedSegments : null,
    tls_key_lines: f.tlsKeys?.lines ?? 0,
    // of packets_written, those the native path wrote (owners already decided; docs/design.md)
    packets_native_path: f.nativePath?.written ?? 0,
    // tracedump's own CPU, user and system, all its threads (not the program's)
    cpu_seconds: f.cpuSeconds ?? null,
    cpu_seconds_to_capture_start: f.startCpuSeconds ?? null,
    native_path_mismatches: f.nativePath?.mismatches ?? 0,
  };
  return JSON.stringify(doc, null, 2) + '\n';
}

/** The figures so far, for the status line and SIGUSR1: packets, bytes, sockets, processes, drops, elapsed. */
export function progressText(f: RunFigures): string {
  const secs = Math.floor(f.elapsedMs / 1000);
  const elapsed = secs >= 3600 ? `${Math.floor(secs / 3600)}:${pad(Math.floor(secs / 60) % 60)}:${pad(secs % 60)}` : `${Math.floor(secs / 60)}:${pad(secs % 60)}`;
  const parts: string[] = [];
  if (f.output !== undefined) parts.push(`${plural(f.written, 'packet')} (${size(f.writtenBytes)})`);
  parts.push(plural(f.sockets, 'socket'), plural(f.processes, 'process', 'processes'));
  if (f.output !== undefined) parts.push(`${f.kernelDrops} dropped`);
  parts.push(elapsed);
  return parts.join(', ');
}

const pad = (n: number) => String(n).padStart(2, '0');
