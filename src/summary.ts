// The one-line summary printed when a capture ends.
import type { PipelineCounters } from './capture/pipeline';

export interface SummaryInput {
  file: string;
  counters: PipelineCounters;
  sockets: number;
  kernel: { packets: number; drops: number };
  filter: string;
}

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

export function formatSummary(s: SummaryInput): string {
  const where = s.file === '-' ? 'stdout' : s.file;
  const parts = [
    `${s.counters.written} packets (${size(s.counters.writtenBytes)}) written to ${where}`,
    `${s.sockets} sockets`,
    `${s.kernel.drops} dropped by the kernel`,
  ];
  if (s.kernel.drops > 0) parts[2] += ' (raise the ring with -B)';
  return `tracedump: ${parts.join(', ')} (${s.filter} filter)`;
}
