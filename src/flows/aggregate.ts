// `tracedump flows --by KEY`: the flow records summed per process, application, server or
// protocol: flows, packets and bytes up and down (from the program's side; originator and
// responder when the file does not say), first and last seen.
import type { FlowRecord } from './flow-record';

export type AggregateKey = 'process' | 'app' | 'server' | 'proto';
export const AGGREGATE_KEYS: AggregateKey[] = ['process', 'app', 'server', 'proto'];

interface Sum {
  key: string;
  flows: number;
  pkts_up: number;
  pkts_down: number;
  bytes_up: number;
  bytes_down: number;
  first: number;
  last: number;
}

const num = (v: unknown) => (typeof v === 'number' ? v : 0);

/** The group a record falls in. */
function groupOf(r: FlowRecord, by: AggregateKey): string {
  switch (by) {
    case 'process':
      return r.pid === undefined ? '-' : `${r.comm ?? '?'}[${r.pid}]`;
    case 'app':
      return String(r.exe ?? r.comm ?? '-');
    case 'server':
      return String(r.server_name ?? (r.app_dir === 'resp' ? r['id.orig_h'] : r['id.resp_h']));
    case 'proto':
      return r.service ? `${r.proto}/${r.service}` : String(r.proto);
  }
}

export class FlowAggregate {
  private readonly sums = new Map<string, Sum>();

  constructor(readonly by: AggregateKey) {}

  add(r: FlowRecord): void {
    const key = groupOf(r, this.by);
    let s = this.sums.get(key);
    if (!s) {
      s = { key, flows: 0, pkts_up: 0, pkts_down: 0, bytes_up: 0, bytes_down: 0, first: Infinity, last: -Infinity };
      this.sums.set(key, s);
    }
    const app = r.app_dir !== undefined;
    s.flows++;
    s.pkts_up += num(app ? r.up_pkts : r.orig_pkts);
    s.pkts_down += num(app ? r.down_pkts : r.resp_pkts);
    s.bytes_up += num(app ? r.up_bytes : r.orig_bytes);
    s.bytes_down += num(app ? r.down_bytes : r.resp_bytes);
    const ts = num(r.ts);
    s.first = Math.min(s.first, ts);
    s.last = Math.max(s.last, Math.round((ts + num(r.duration)) * 1e6) / 1e6);
  }

  /** The rows, most bytes first. */
  rows(): FlowRecord[] {
    return [...this.sums.values()]
      .sort((a, b) => b.bytes_up + b.bytes_down - (a.bytes_up + a.bytes_down) || a.key.localeCompare(b.key))
      .map((s) => ({ [this.by]: s.key, flows: s.flows, pkts_up: s.pkts_up, pkts_down: s.pkts_down, bytes_up: s.bytes_up, bytes_down: s.bytes_down, first: s.first, last: s.last }));
  }
}
