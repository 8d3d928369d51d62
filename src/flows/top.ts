// `--top`: what the live table shows, as text. The rows come from the flow table every second
// (open flows, and per process the flows that ended too); rates are the bytes since the last
// refresh. Pure: the terminal side is top-screen.ts.
import { formatAddress } from '../packet/address';
import { hostPort } from '../text/endpoint';
import { IPPROTO_TCP, IPPROTO_UDP } from '../packet/protocols';
import type { Flow } from './flow';

export type TopView = 'flows' | 'processes';
export type TopSort = 'rate' | 'bytes' | 'pid' | 'name';

export interface TopRow {
  /** Identity across refreshes (a flow's key and start; a process's pid). */
  id: string;
  pid: number | null;
  comm: string;
  proto: string;
  local: string;
  remote: string;
  state: string;
  upBytes: number;
  downBytes: number;
  upPkts: number;
  downPkts: number;
  flows: number;
  /** Bytes a second since the last refresh (both ways). */
  rate: number;
}

export interface TopCounts {
  /** Packets written, and those left out because no owner was known in time. */
  written: number;
  undecided: number;
  /** Packets written that are no TCP, UDP or ICMP flow. */
  other: number;
  drops: number;
}

const endpoint = (addr: string, port: number) => hostPort(formatAddress(addr), port);

/** A flow as a row (the program's end first when the file says which it is). */
export function flowRow(f: Flow): TopRow {
  const app = f.appRole ?? 0;
  const [localAddr, localPort, remoteAddr, remotePort] = app === 0 ? [f.origAddr, f.origPort, f.respAddr, f.respPort] : [f.respAddr, f.respPort, f.origAddr, f.origPort];
  const name = f.serverName()?.name;
  const service = f.service();
  return {
    id: `${f.key}|${f.firstUs}`,
    pid: f.process?.pid ?? null,
    comm: f.process?.comm ?? '-',
    proto: `${f.proto === IPPROTO_TCP ? 'tcp' : f.proto === IPPROTO_UDP ? 'udp' : 'icmp'}${service ? `/${service}` : ''}`,
    local: endpoint(localAddr, localPort),
    remote: name ? `${name} (${endpoint(remoteAddr, remotePort)})` : endpoint(remoteAddr, remotePort),
    state: f.connState(),
    upBytes: f.ipBytes[app],
    downBytes: f.ipBytes[1 - app],
    upPkts: f.pkts[app],
    downPkts: f.pkts[1 - app],
    flows: 1,
    rate: 0,
  };
}

/** Adds a row's bytes, packets and flows to a sum. */
export function addCounts(sum: TopRow, r: TopRow): void {
  sum.upBytes += r.upBytes;
  sum.downBytes += r.downBytes;
  sum.upPkts += r.upPkts;
  sum.downPkts += r.downPkts;
  sum.flows += r.flows;
}

/** Per process: its open flows' rows summed, with what its ended flows carried. */
export function processRows(flows: TopRow[], ended: Map<number, TopRow>): TopRow[] {
  const byPid = new Map<string, TopRow>();
  const add = (r: TopRow) => {
    const id = `pid ${r.pid ?? '-'}`;
    const s = byPid.get(id) ?? { ...r, id, proto: '', local: '', remote: '', state: '', upBytes: 0, downBytes: 0, upPkts: 0, downPkts: 0, flows: 0, rate: 0 };
    addCounts(s, r);
    byPid.set(id, s);
  };
  for (const r of flows) add(r);
  for (const r of ended.values()) add(r);
  return [...byPid.values()];
}

/** Rates from the previous refresh's totals (kept in `last`, updated). */
export function withRates(rows: TopRow[], last: Map<string, number>, seconds: number): TopRow[] {
  const next = new Map<string, number>();
  for (const r of rows) {
    const total = r.upBytes + r.downBytes;
    r.rate = seconds > 0 ? Math.max(0, total - (last.get(r.id) ?? 0)) / seconds : 0;
    next.set(r.id, total);
  }
  last.clear();
  for (const [k, v] of next) last.set(k, v);
  return rows;
}

const SORTS: Record<TopSort, (a: TopRow, b: TopRow) => number> = {
  rate: (a, b) => b.rate - a.rate || b.upBytes + b.downBytes - (a.upBytes + a.downBytes),
  bytes: (a, b) => b.upBytes + b.downBytes - (a.upBytes + a.downBytes),
  pid: (a, b) => (a.pid ?? 0) - (b.pid ?? 0),
  name: (a, b) => a.comm.localeCompare(b.comm) || (a.pid ?? 0) - (b.pid ?? 0),
};

export function human(n: number): string {
  if (n < 1024) return `${Math.round(n)} B`;
  for (const [unit, size] of [
    ['GiB', 2 ** 30],
    ['MiB', 2 ** 20],
    ['KiB', 2 ** 10],
  ] as const)
    if (n >= size) return `${(n / size).toFixed(1)} ${unit}`;
  return String(n);
}

const cut = (s: string, w: number) => (s.length > w ? `${s.slice(0, Math.max(0, w - 1))}…` : s.padEnd(w));

/** The screen: a header line, the counts, the column titles, then as many rows as fit. */
export function renderTop(o: { view: TopView; sort: TopSort; rows: TopRow[]; counts: TopCounts; width: number; height: number; keys: boolean; elapsedSec: number }): string {
  const rows = [...o.rows].sort(SORTS[o.sort]);
  const lines: string[] = [];
  const keyHelp = o.keys ? 'keys: v flows/processes, r rate, b bytes, p pid, n name' : 'keys: need the command\'s stdin off this terminal (< /dev/null) or -p';
  lines.push(`tracedump --top   ${o.view}, by ${o.sort}   ${o.elapsedSec.toFixed(0)} s   ${keyHelp}`);
  const c = o.counts;
  lines.push(
    `packets written ${c.written}, not yet judged or left out ${c.undecided}, not TCP/UDP/ICMP ${c.other}, dropped by the kernel ${c.drops}`,
  );
  const right = (s: string, w: number) => s.padStart(w);
  if (o.view === 'flows') {
    const fixed = 7 + 1 + 15 + 1 + 10 + 1 + 6 + 1 + 10 + 1 + 10 + 1 + 11 + 1 + 11;
    const ends = Math.max(20, o.width - fixed - 2);
    const lw = Math.floor(ends * 0.4);
    const rw = ends - lw - 1;
    lines.push(`${right('PID', 7)} ${cut('COMMAND', 15)} ${cut('PROTO', 10)} ${cut('LOCAL', lw)} ${cut('REMOTE', rw)} ${cut('STATE', 6)} ${right('SENT', 10)} ${right('RECEIVED', 10)} ${right('PACKETS', 11)} ${right('RATE', 11)}`);
    for (const r of rows.slice(0, Math.max(0, o.height - 4)))
      lines.push(
        `${right(String(r.pid ?? '-'), 7)} ${cut(r.comm, 15)} ${cut(r.proto, 10)} ${cut(r.local, lw)} ${cut(r.remote, rw)} ${cut(r.state, 6)} ${right(human(r.upBytes), 10)} ${right(human(r.downBytes), 10)} ${right(`${r.upPkts}/${r.downPkts}`, 11)} ${right(`${human(r.rate)}/s`, 11)}`,
      );
  } else {
    lines.push(`${right('PID', 7)} ${cut('COMMAND', 15)} ${right('FLOWS', 6)} ${right('SENT', 10)} ${right('RECEIVED', 10)} ${right('PACKETS', 13)} ${right('RATE', 11)}`);
    for (const r of rows.slice(0, Math.max(0, o.height - 4)))
      lines.push(
        `${right(String(r.pid ?? '-'), 7)} ${cut(r.comm, 15)} ${right(String(r.flows), 6)} ${right(human(r.upBytes), 10)} ${right(human(r.downBytes), 10)} ${right(`${r.upPkts}/${r.downPkts}`, 13)} ${right(`${human(r.rate)}/s`, 11)}`,
      );
  }
  return lines.map((l) => (l.length > o.width ? l.slice(0, o.width) : l)).join('\n');
}
