// Test helpers: compare tracedump's socket events with the fixture's own record of its calls,
// and the checks every traced scenario shares (status, stderr, leftovers, exec/exit events).
import type { Test } from 'tap';
import {
  type CallRecord,
  type Endpoint,
  type RunResult,
  type TraceEvent,
  leftovers,
  pidsOf,
  socketEvents,
} from './tracedump';

/** An unbound local endpoint (port 0 on a wildcard address) and null say the same thing. */
function ep(e: Endpoint | null | undefined): string {
  if (!e || (e.port === 0 && (e.address === '0.0.0.0' || e.address === '::'))) return 'none';
  return `${e.address.includes(':') ? `[${e.address}]` : e.address}:${e.port}`;
}

function key(x: {
  pid?: number;
  tid?: number;
  call?: string;
  fd?: number;
  family?: number;
  proto?: string;
  remotes?: Endpoint[];
}): string {
  const remotes = (x.remotes ?? []).map(ep).join(',');
  return `pid=${x.pid} tid=${x.tid} ${x.call} fd=${x.fd} ${x.proto}/${x.family} -> [${remotes}]`;
}

/** The canonical line of one tracedump socket event. */
export function eventLine(e: TraceEvent): string {
  const res = e.result === null || e.result === undefined ? 'null' : `${e.result}${e.errno ? ` ${e.errno}` : ''}`;
  return `${key(e)} result=${res} local=${ep(e.local)}`;
}

/**
 * The lines tracedump may print for one recorded call. With an exit stop: the call's result
 * and getsockname after it. Without one (allowed only where the socket already had its local
 * port before the call, never for bind): result null and getsockname before the call.
 */
export function acceptableLines(r: CallRecord): string[] {
  const withExit = `${key(r)} result=${r.result}${r.result < 0 && r.errno ? ` ${r.errno}` : ''} local=${ep(r.local)}`;
  const lines = [withExit];
  if (r.call !== 'bind' && r.localBefore && r.localBefore.port !== 0)
    lines.push(`${key(r)} result=null local=${ep(r.localBefore)}`);
  return lines;
}

/** Multiset match of tracedump's socket events against the record. */
export function matchCalls(events: TraceEvent[], record: CallRecord[]): { missing: string[]; extra: string[] } {
  const pool = new Map<string, number>();
  for (const e of events) {
    const l = eventLine(e);
    pool.set(l, (pool.get(l) ?? 0) + 1);
  }
  const take = (l: string): boolean => {
    const n = pool.get(l) ?? 0;
    if (n === 0) return false;
    pool.set(l, n - 1);
    return true;
  };
  const missing: string[] = [];
  // records with one acceptable form first, so the flexible ones cannot steal their match
  const sorted = [...record].sort((a, b) => acceptableLines(a).length - acceptableLines(b).length);
  for (const r of sorted) {
    const forms = acceptableLines(r);
    if (!forms.some(take)) missing.push(forms.join('  OR  '));
  }
  const extra: string[] = [];
  for (const [l, n] of pool) for (let i = 0; i < n; i++) extra.push(l);
  return { missing: missing.sort(), extra: extra.sort() };
}

/** Per thread, the sequence of calls in tracedump's print order equals the program order. */
export function callOrder(events: TraceEvent[], record: CallRecord[]): { got: string[]; want: string[] } {
  const seq = (xs: { tid?: number; call?: string; fd?: number }[]) => {
    const m = new Map<number, string[]>();
    for (const x of xs) {
      const l = m.get(x.tid as number) ?? [];
      l.push(`${x.call}(${x.fd})`);
      m.set(x.tid as number, l);
    }
    return [...m.entries()].sort((a, b) => a[0] - b[0]).map(([tid, l]) => `tid ${tid}: ${l.join(' ')}`);
  };
  return { got: seq(events), want: seq(record) };
}

export interface ScenarioExpect {
  status: number;
  /** Exact number of calls the fixture must have recorded (guards against a silent fixture). */
  calls?: number;
  /** The fixture binary: exec events must name it, no process may still run it. */
  bin: string;
  /** Expected stderr of the command itself (default: empty). */
  stderr?: string;
  /** Warnings allowed (default false). */
  warnings?: boolean;
}

/** The checks every scenario shares; returns the run for scenario-specific checks. */
export function checkScenario(t: Test, r: RunResult, x: ScenarioExpect): void {
  t.notOk(r.timedOut, 'tracedump ended within the time limit');
  t.equal(r.status, x.status, 'exit status of tracedump is the command status');
  t.equal(r.otherStderr, x.stderr ?? '', 'no stderr output besides JSON events');
  if (x.calls !== undefined) t.equal(r.record.length, x.calls, 'the fixture recorded the expected number of calls');
  if (!x.warnings) t.same(r.events.filter((e) => e.kind === 'warning'), [], 'no warning events');

  const sockets = socketEvents(r);
  const { missing, extra } = matchCalls(sockets, r.record);
  t.same(missing, [], 'every recorded call was reported, with the same local endpoint and result');
  t.same(extra, [], 'no socket event without a recorded call');
  const order = callOrder(sockets, r.record);
  t.same(order.got, order.want, 'per thread, socket events come in program order');

  // names: the process comm, and the thread's own name on other threads
  const badNames: string[] = [];
  const threadNames = new Map<number, Set<string>>();
  for (const rec of r.record) {
    const s = threadNames.get(rec.tid) ?? new Set<string>();
    s.add(rec.comm);
    threadNames.set(rec.tid, s);
  }
  for (const e of sockets) {
    if (!r.record.some((rec) => rec.pid === e.pid)) continue;
    if (e.comm !== 'netcalls') badNames.push(`pid ${e.pid} tid ${e.tid}: comm ${e.comm}`);
    if (e.tid !== e.pid && !threadNames.get(e.tid as number)?.has(e.threadName as string))
      badNames.push(`tid ${e.tid}: threadName ${e.threadName}, fixture says ${[...(threadNames.get(e.tid as number) ?? [])]}`);
  }
  t.same(badNames, [], 'socket events carry comm and threadName');

  // every recorded process exited, and the fixture's exec was seen
  const recordedPids = [...new Set(r.record.map((rec) => rec.pid))];
  const exited = new Set(r.events.filter((e) => e.kind === 'exit' && e.tid === e.pid).map((e) => e.pid));
  t.same(
    recordedPids.filter((p) => !exited.has(p)),
    [],
    'an exit event for every process that made socket calls',
  );
  t.ok(
    r.events.some((e) => e.kind === 'exec' && e.exe === x.bin),
    `an exec event names ${x.bin}`,
  );
  t.same(leftovers(x.bin, pidsOf(r)), [], 'no tracee is left behind');
}
