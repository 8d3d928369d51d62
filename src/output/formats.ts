// Picks the capture file format: --format, else the file name's extension (as tcpdump and
// Wireshark users expect: .pcapng is pcapng), else classic pcap.
import * as os from 'node:os';
import type { CaptureFormat } from './format';
import { pcapFormat } from './pcap-format';
import { pcapngFormat } from './pcapng-format';
import { version } from '../version';

export type FormatName = 'pcap' | 'pcapng';

export function formatFor(path: string, explicit?: FormatName): FormatName {
  if (explicit) return explicit;
  return /\.(pcapng|ntar)(\.|$)/i.test(path) ? 'pcapng' : 'pcap';
}

export interface FormatContext {
  snaplen: number;
  /** What was traced, for the file's own comment: the command line or the attached pids. */
  description: string;
  /** More comments for the file's section header (--capture-comment). */
  comments?: string[];
  interfaceName(ifindex: number): string | undefined;
  exeOf(pid: number): string | undefined;
}

export function makeFormat(name: FormatName, ctx: FormatContext): CaptureFormat {
  if (name === 'pcap') return pcapFormat(ctx.snaplen);
  const cpu = os.cpus()[0]?.model?.trim();
  return pcapngFormat({
    snaplen: ctx.snaplen,
    section: {
      hardware: cpu ? `${os.arch()} (${cpu})` : os.arch(),
      os: `${os.type()} ${os.release()}`,
      userappl: `tracedump ${version}`,
      comments: [ctx.description, ...(ctx.comments ?? [])],
    },
    interfaceName: ctx.interfaceName,
    exeOf: ctx.exeOf,
  });
}
