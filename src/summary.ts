// The one-line summary printed when a capture ends.
import type { PipelineCounters } from './capture/pipeline';

export interface SummaryInput {
  file: string;
  counters: PipelineCounters;
  /** Packets the file holds, when writing it failed (fewer than counters.written). */
  inFile?: number;
  /** With rotation: every file written, in order. */
  files?: readonly string[];
  sockets: number;
  kernel: { packets: number; drops: number };
  filter: string;
  /** Rules the kernel filter could not hold (packets of those sockets may be missing). */
  failedRules?: number;
  /** TLS key log lines the program wrote (and where they went). */
  tlsKeys?: { lines: number; inFile: boolean };
}

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

export function formatSummary(s: SummaryInput): string {
  const files = s.files ?? [];
  const where =
    s.file === '-' ? 'stdout' : files.length > 1 ? `${files.length} files (${files[0]} ... ${files[files.length - 1]})` : (files[0] ?? s.file);
  const parts = [
    s.inFile === undefined
      ? `${s.counters.written} packets (${size(s.counters.writtenBytes)}) written to ${where}`
      : `${s.inFile} packets in ${where} (${s.counters.written - s.inFile} captured after writing failed are lost)`,
    `${s.sockets} sockets`,
    `${s.kernel.drops} dropped by the kernel`,
  ];
  if (s.kernel.drops > 0) parts[2] += ' (raise the ring with -B)';
  if (s.tlsKeys?.lines) parts.push(`${s.tlsKeys.lines} TLS key log lines${s.tlsKeys.inFile ? ' in the file' : ''}`);
  if (s.failedRules) parts.push(`${s.failedRules} filter rules refused by the kernel (map full)`);
  return `tracedump: ${parts.join(', ')} (${s.filter} filter)`;
}
