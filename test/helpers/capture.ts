// Helpers of the capture tests (test/capture-*.test.ts): start untraced servers and noise
// clients (the flows.py fixture), an oracle tcpdump, tracedump itself; then compare
// tracedump's pcap with the oracle's, packet by packet, using the fixtures' own record of
// their sockets to decide which of the oracle's packets belong to the traced program.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Test } from 'tap';
import {
  LINKTYPE_LINUX_SLL2,
  type Packet,
  type PcapFile,
  TCP_ACK,
  TCP_FIN,
  TCP_RST,
  TCP_SYN,
  canonIp,
  describe,
  packetKey,
  readPcap,
} from './pcap';
import { CLI, ROOT, eventMs } from './tracedump';

export const PY = '/usr/bin/python3';
export const FLOWS = path.join(ROOT, 'test', 'fixtures', 'flows.py');

interface Teardownable {
  teardown(fn: () => void | Promise<void>): void;
}

/** A fresh temporary directory, removed at teardown (kept, and named, with CAPTURE_KEEP=1). */
export function workDir(t: Teardownable & { comment(...a: unknown[]): void }, tag = 'capture'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tracedump-${tag}-`));
  if (process.env.CAPTURE_KEEP) t.comment(`files kept in ${dir}`);
  else t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Every process the capture helpers started or heard of (tracedump, servers, tracees...). */
const startedPids = new Set<number>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// ---- background processes -----------------------------------------------------------------

export interface Bg {
  pid: number;
  child: ChildProcess;
  out(): string;
  err(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first match of `re` on stdout (rejects after ms or at exit). */
  waitFor(re: RegExp, ms?: number): Promise<RegExpExecArray>;
  /** SIGKILL by pid (if still running) and wait for the exit. */
  kill(): Promise<void>;
}

/**
 * Starts a process that is killed (by its pid) at teardown if it is still running.
 * stdout and stderr are collected.
 */
export function startBg(t: Teardownable, cmd: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Bg {
  const child = spawn(cmd[0], cmd.slice(1), {
    env: { ...process.env, ...(opts.env ?? {}) },
    cwd: opts.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  let done = false;
  const waiters = new Set<() => void>();
  child.stdout?.on('data', (c: Buffer) => {
    out += c.toString();
    for (const w of waiters) w();
  });
  child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => {
      done = true;
      for (const w of waiters) w();
      resolve({ code, signal });
    });
    child.on('error', (e) => {
      err += String(e);
      done = true;
      resolve({ code: null, signal: null });
    });
  });
  const pid = child.pid as number;
  startedPids.add(pid);
  const kill = async () => {
    if (!done && alive(pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone meanwhile */
      }
    }
    await exited;
  };
  t.teardown(kill);
  const waitFor = (re: RegExp, ms = 20_000) =>
    new Promise<RegExpExecArray>((resolve, reject) => {
      const check = () => {
        const m = re.exec(out);
        if (m) {
          cleanup();
          resolve(m);
        } else if (done) {
          cleanup();
          reject(new Error(`${cmd.join(' ')} exited before printing ${re}: stdout ${out} stderr ${err}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${cmd.join(' ')}: no ${re} within ${ms} ms: stdout ${out} stderr ${err}`));
      }, ms);
      const cleanup = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });
  return { pid, child, out: () => out, err: () => err, exited, waitFor, kill };
}

/** `flows.py ARGS` (in network namespace `netns` if given), not traced. */
export function flowsCmd(args: (string | number)[], netns?: string): string[] {
  const cmd = [PY, FLOWS, ...args.map(String)];
  return netns ? ['ip', 'netns', 'exec', netns, ...cmd] : cmd;
}

/** Starts an untraced flows.py server and returns it with the port it listens on. */
export async function startServer(
  t: Teardownable,
  args: (string | number)[],
  opts: { netns?: string; record?: string } = {},
): Promise<{ bg: Bg; port: number }> {
  const bg = startBg(t, flowsCmd(args, opts.netns), { env: opts.record ? { FLOWS_RECORD: opts.record } : {} });
  const m = await bg.waitFor(/^ready (\d+)$/m);
  return { bg, port: Number(m[1]) };
}

/** Runs an untraced flows.py client to its end (killed at teardown if it hangs). */
export async function runFlows(
  t: Teardownable,
  args: (string | number)[],
  opts: { record?: string; netns?: string; gapMs?: number } = {},
): Promise<{ code: number | null; out: string; err: string }> {
  const env: NodeJS.ProcessEnv = {};
  if (opts.record) env.FLOWS_RECORD = opts.record;
  if (opts.gapMs) env.FLOWS_GAP_MS = String(opts.gapMs);
  const bg = startBg(t, flowsCmd(args, opts.netns), { env });
  const r = await bg.exited;
  return { code: r.code, out: bg.out(), err: bg.err() };
}

/** A port that is free right now (bound and released by the kernel's choice). */
export function freePort(host: string, kind: 'tcp' | 'udp'): number {
  const r = spawnSync(PY, [FLOWS, 'free-port', host, kind], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`free-port: ${r.stderr}`);
  return Number(r.stdout.trim());
}

// ---- the oracle -------------------------------------------------------------------------------

export interface OracleStats {
  captured: number;
  received: number;
  dropped: number;
  stderr: string;
}

export interface Oracle {
  file: string;
  stop(): Promise<OracleStats>;
}

/**
 * tcpdump -i IFACE -U -B 65536 -w FILE FILTER, ready when it says "listening on".
 * (On `any` libpcap drops the outgoing copy of loopback packets: each packet is seen once.)
 * Not --immediate-mode: that switches libpcap to TPACKET_V2 with snaplen-sized frames, only
 * ~8 of them in the default 2 MiB ring, and tcpdump drops packets of a busy loopback.
 * With TPACKET_V3 the last block is handed over by the kernel's block timeout (tcpdump's 1 s
 * read timeout), so stop() waits 1.5 s before SIGINT.
 */
export async function startOracle(
  t: Teardownable,
  o: { file: string; filter: string; iface?: string; snaplen?: number; bufferKiB?: number; netns?: string },
): Promise<Oracle> {
  const args = ['-i', o.iface ?? 'any', '-n', '-U', '-w', o.file];
  if (o.snaplen) args.push('-s', String(o.snaplen));
  args.push('-B', String(o.bufferKiB ?? 65536));
  args.push(o.filter);
  // `ip netns exec` execs tcpdump: the child is tcpdump itself
  const argv = o.netns ? ['ip', 'netns', 'exec', o.netns, 'tcpdump', ...args] : ['tcpdump', ...args];
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  startedPids.add(child.pid as number);
  let err = '';
  const exited = new Promise<void>((r) => child.on('close', () => r()));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid as number, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await exited;
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tcpdump did not start: ${err}`)), 15_000);
    child.stderr?.on('data', (c: Buffer) => {
      err += c.toString();
      if (/listening on/.test(err)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('close', () => {
      clearTimeout(timer);
      reject(new Error(`tcpdump exited: ${err}`));
    });
  });
  return {
    file: o.file,
    async stop() {
      await sleep(1500); // the ring's last block is retired after tcpdump's 1 s timeout
      process.kill(child.pid as number, 'SIGINT');
      await exited;
      const num = (re: RegExp) => Number(re.exec(err)?.[1] ?? NaN);
      return {
        captured: num(/(\d+) packets? captured/),
        received: num(/(\d+) packets? received by filter/),
        dropped: num(/(\d+) packets? dropped by kernel/),
        stderr: err,
      };
    },
  };
}

// ---- tracedump ------------------------------------------------------------------------------

export interface Summary {
  packets: number;
  size: string;
  file: string;
  sockets: number;
  processes: number;
  dropped: number;
  line: string;
}

export interface TdRun {
  status: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  elapsedMs: number;
  stdout: string;
  stderr: string;
  summary: Summary | null;
  /** JSON events when --events=json was given. */
  events: { kind: string; [k: string]: unknown }[];
}

export function parseSummary(stderr: string): Summary | null {
  const m = /^tracedump: (\d+) packets? \(([^)]*)\) written to (.+?), (\d+) sockets?, (\d+) process(?:es)?, (\d+) dropped by the kernel.*$/m.exec(
    stderr,
  );
  if (!m) return null;
  return { packets: +m[1], size: m[2], file: m[3], sockets: +m[4], processes: +m[5], dropped: +m[6], line: m[0] };
}

/** A JSON event line of tracedump's --events=json, else undefined (the command's own line). */
export function eventOf(line: string): TdRun['events'][number] | undefined {
  if (!line.startsWith('{"')) return undefined;
  try {
    const v = JSON.parse(line);
    if (v && typeof v.time === 'string') v.time = eventMs(v.time);
    return v && typeof v.kind === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

export interface TdProcess {
  child: ChildProcess;
  pid: number;
  done: Promise<TdRun>;
}

/**
 * bin/tracedump ARGS: bounded by timeoutMs (then SIGKILL), killed at teardown if still
 * running. onStderrLine sees every stderr line as it comes (e.g. JSON events).
 */
export function startTracedump(
  t: Teardownable,
  args: string[],
  opts: {
    env?: NodeJS.ProcessEnv;
    cwd?: string;
    timeoutMs?: number;
    onStderrLine?: (line: string) => void;
    onStdout?: (all: string) => void;
    /**
     * tracedump's NODE_OPTIONS exactly as given (null: unset), not as the test runner leaves
     * it: tap adds its own loader to the NODE_OPTIONS of every process a test spawns, so
     * tracedump is then started through `env`, which sets it after tap has had its say.
     */
    nodeOptions?: string | null;
    /** Run tracedump in this network namespace (`ip netns exec` execs it: the child is tracedump). */
    netns?: string;
  } = {},
): TdProcess {
  const start = Date.now();
  let argv =
    opts.nodeOptions === undefined
      ? [CLI, ...args]
      : ['/usr/bin/env', '-u', 'NODE_OPTIONS', ...(opts.nodeOptions === null ? [] : [`NODE_OPTIONS=${opts.nodeOptions}`]), CLI, ...args];
  if (opts.netns) argv = ['ip', 'netns', 'exec', opts.netns, ...argv];
  const child = spawn(argv[0], argv.slice(1), { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = child.pid as number;
  startedPids.add(pid);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, opts.timeoutMs ?? 120_000);
  let out = '';
  let err = '';
  let partial = '';
  child.stdout?.on('data', (c: Buffer) => {
    out += c.toString();
    opts.onStdout?.(out);
  });
  child.stderr?.on('data', (c: Buffer) => {
    const s = c.toString();
    err += s;
    partial += s;
    const lines = partial.split('\n');
    partial = lines.pop() as string;
    if (opts.onStderrLine) for (const l of lines) opts.onStderrLine(l);
  });
  const done = new Promise<TdRun>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const events: TdRun['events'] = [];
      for (const l of err.split('\n')) {
        const e = eventOf(l);
        if (e) events.push(e);
      }
      resolve({
        status: code,
        signal,
        timedOut,
        elapsedMs: Date.now() - start,
        stdout: out,
        stderr: err,
        summary: parseSummary(err),
        events,
      });
    });
  });
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await done.catch(() => undefined);
  });
  return { child, pid, done };
}

/**
 * bin/tracedump TDARGS -- COMMAND, with FLOWS_RECORD=record. onStderrLine sees every
 * stderr line as it comes (e.g. JSON events).
 */
export function runTracedump(
  t: Teardownable,
  tdArgs: string[],
  command: string[],
  opts: {
    record?: string;
    timeoutMs?: number;
    onStderrLine?: (line: string) => void;
    onStdout?: (all: string) => void;
    cwd?: string;
    netns?: string;
  } = {},
): Promise<TdRun> {
  const { record, ...rest } = opts;
  return startTracedump(t, [...tdArgs, '--', ...command], {
    ...rest,
    env: { ...process.env, ...(record ? { FLOWS_RECORD: record } : {}) },
  }).done;
}

// ---- the fixtures' record -------------------------------------------------------------------

export interface Endpoint {
  address: string;
  port: number;
}

export interface SockRec {
  pid: number;
  tid: number;
  role: 'client' | 'accepted' | 'listen' | 'udp';
  proto: 'tcp' | 'udp';
  local: Endpoint;
  remote: Endpoint | null;
  t0: number;
  t1: number;
  n: number;
  owner: 'traced' | 'other';
}

export function readRecords(file: string, owner: SockRec['owner']): SockRec[] {
  if (!fs.existsSync(file)) return [];
  const recs = fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l)
    .map((l) => ({ ...(JSON.parse(l) as Omit<SockRec, 'owner'>), owner }));
  for (const r of recs) startedPids.add(r.pid);
  return recs;
}

/**
 * A last subtest for a capture test file: none of the processes the helpers started or saw
 * in a record (tracedump, tcpdump, flows.py servers, clients and tracees) is still running.
 */
export function noLeftovers(t: Test): void {
  t.test('no process left behind', async (t) => {
    await sleep(200);
    const left: string[] = [];
    for (const pid of startedPids) {
      let cmd = '';
      try {
        cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      } catch {
        continue; // gone
      }
      if (/flows\.py|tcpdump|cli\.js/.test(cmd)) left.push(`pid ${pid}: ${cmd.slice(0, 120)}`);
    }
    t.same(left, [], `none of the ${startedPids.size} processes started or seen is still running`);
  });
}

const WILDCARD = new Set(['0.0.0.0', '::']);

const canonMemo = new Map<string, string>();
function canon(a: string): string {
  let c = canonMemo.get(a);
  if (c === undefined) canonMemo.set(a, (c = canonIp(a)));
  return c;
}

function epMatch(e: Endpoint, addr: string, port: number): boolean {
  return e.port === port && (WILDCARD.has(canon(e.address)) || canon(e.address) === canon(addr));
}

function sameLocal(a: Endpoint, b: Endpoint): boolean {
  if (a.port !== b.port) return false;
  const x = canon(a.address);
  const y = canon(b.address);
  return x === y || WILDCARD.has(x) || WILDCARD.has(y);
}

/** The transport tuple a packet is about (the quoted one for ICMP errors). */
function tupleOf(p: Packet): { proto: string; src: string; dst: string; sport: number; dport: number } {
  return p.inner ?? p;
}

export function recMatches(r: SockRec, p: Packet): boolean {
  const u = tupleOf(p);
  if (u.proto !== r.proto) return false;
  const fwd = epMatch(r.local, u.src, u.sport) && (!r.remote || epMatch(r.remote, u.dst, u.dport));
  const rev = epMatch(r.local, u.dst, u.dport) && (!r.remote || epMatch(r.remote, u.src, u.sport));
  return fwd || rev;
}

/**
 * When a record's packets may appear: from just before its first sending call to tailMs after
 * its close (the FIN/ACK tail), cut short where a socket of ANOTHER process takes over the
 * same local endpoint (port reuse).
 */
export function windows(traced: SockRec[], others: SockRec[], tailMs = 5000): { r: SockRec; from: number; to: number }[] {
  const othersByPort = new Map<number, SockRec[]>();
  for (const o of others) {
    const l = othersByPort.get(o.local.port);
    if (l) l.push(o);
    else othersByPort.set(o.local.port, [o]);
  }
  return traced.map((r) => {
    let to = r.t1 + tailMs;
    for (const o of othersByPort.get(r.local.port) ?? []) {
      if (o.proto !== r.proto || o.t0 <= r.t0 || !sameLocal(o.local, r.local)) continue;
      if (r.remote && o.remote && !(sameLocal(r.remote, o.remote) && r.remote.port === o.remote.port)) continue;
      to = Math.min(to, o.t0);
    }
    return { r, from: r.t0 - 2, to };
  });
}

/** Splits the oracle's packets into the traced program's and everybody else's. */
export function classify(
  oracle: Packet[],
  traced: SockRec[],
  others: SockRec[],
  tailMs = 5000,
): { program: Packet[]; other: Packet[] } {
  // records indexed by protocol and local port: a packet can only match by its ports
  const byPort = new Map<string, ReturnType<typeof windows>>();
  for (const w of windows(traced, others, tailMs)) {
    const k = `${w.r.proto}/${w.r.local.port}`;
    const l = byPort.get(k);
    if (l) l.push(w);
    else byPort.set(k, [w]);
  }
  const program: Packet[] = [];
  const other: Packet[] = [];
  for (const p of oracle) {
    const u = tupleOf(p);
    const cands = [...(byPort.get(`${u.proto}/${u.sport}`) ?? []), ...(byPort.get(`${u.proto}/${u.dport}`) ?? [])];
    if (cands.some(({ r, from, to }) => p.ms >= from && p.ms < to && recMatches(r, p))) program.push(p);
    else other.push(p);
  }
  return { program, other };
}

/** TCP connections among packets: by 4-tuple, a new one at each SYN without ACK. */
export function tcpConnections(packets: Packet[]): Packet[][] {
  const byTuple = new Map<string, Packet[][]>();
  for (const p of [...packets].filter((x) => x.proto === 'tcp').sort((a, b) => a.ms - b.ms)) {
    const a = `${p.src}.${p.sport}`;
    const b = `${p.dst}.${p.dport}`;
    const k = a < b ? `${a} ${b}` : `${b} ${a}`;
    const conns = byTuple.get(k) ?? [];
    const isSyn = (p.tcpFlags & TCP_SYN) !== 0 && (p.tcpFlags & TCP_ACK) === 0;
    if (conns.length === 0 || isSyn) conns.push([]);
    conns[conns.length - 1].push(p);
    byTuple.set(k, conns);
  }
  return [...byTuple.values()].flat();
}

// ---- the comparison -----------------------------------------------------------------------

function countKeys(ps: Packet[], prefix: number): Map<string, Packet[]> {
  const m = new Map<string, Packet[]>();
  for (const p of ps) {
    const k = packetKey(p, prefix);
    const l = m.get(k);
    if (l) l.push(p);
    else m.set(k, [p]);
  }
  return m;
}

function listed(lines: string[], max = 25): string[] {
  return lines.length > max ? [...lines.slice(0, max), `... and ${lines.length - max} more`] : lines;
}

/** One tshark field of each frame tshark calls malformed (lines, blanks left out). */
function malformedField(file: string, field: string): string[] {
  const r = spawnSync('tshark', ['-n', '-r', file, '-Y', '_ws.malformed', '-T', 'fields', '-e', field], {
    encoding: 'utf8',
    maxBuffer: 1 << 28,
    timeout: 240_000,
  });
  return r.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l);
}

/** Frame numbers tshark calls malformed. */
function malformedFrames(file: string): number[] {
  return malformedField(file, 'frame.number')
    .filter((l) => /^\d+$/.test(l))
    .map(Number);
}

// Layers tracedump's records consist of: a malformation reported by one of these would be ours.
const RECORD_LAYERS = new Set(['frame', 'eth', 'ethertype', 'sll', 'vlan', 'ip', 'ipv6', 'tcp', 'udp', 'udplite', 'icmp', 'icmpv6', 'data']);

/** The protocol that reported each malformed frame (the last of its frame.protocols). */
function malformedBy(file: string): string[] {
  return malformedField(file, 'frame.protocols').map((l) => l.split(':').pop()!);
}

/**
 * tshark reads the whole file (exit 0, nothing malformed); capinfos reads it. With the
 * oracle's file: a packet tshark calls malformed in both files is excused (tshark decodes
 * payloads by port: a DNS-like payload on a random port that happens to be, e.g., MANOLITO's
 * 41170 is "malformed" in any capture of it); tracedump's own records must never be.
 */
export function checkReadable(t: Test, file: string, oracle?: { file: string; td: PcapFile; oracle: PcapFile }): void {
  const ts = spawnSync('tshark', ['-n', '-r', file], { encoding: 'utf8', maxBuffer: 1 << 30, timeout: 240_000 });
  t.equal(ts.status, 0, `tshark -r exits 0 (${ts.stderr.replace(/Running as user.*\n?/, '').trim().slice(0, 300)})`);
  let bad = (ts.stdout + ts.stderr).split('\n').filter((l) => /malformed/i.test(l));
  if (bad.length && oracle) {
    const excused = new Set(
      malformedFrames(oracle.file)
        .map((n) => oracle.oracle.packets.find((p) => p.no === n))
        .filter((p): p is Packet => !!p)
        .map((p) => packetKey(p)),
    );
    const mine = malformedFrames(file)
      .map((n) => oracle.td.packets.find((p) => p.no === n))
      .map((p) => (p ? packetKey(p) : 'undecoded'));
    const notExcused = mine.filter((k) => !excused.has(k));
    if (mine.length) t.comment(`tshark calls ${mine.length} packets malformed in both files (payload dissectors): ${bad.slice(0, 3).join(' | ')}`);
    bad = notExcused.length ? bad : [];
  } else if (bad.length) {
    // Without an oracle: excused when only payload dissectors (chosen by port: an ephemeral
    // port that happens to be Elasticsearch's 54328) call it malformed, not a record layer.
    const by = malformedBy(file);
    if (by.length && by.every((p) => !RECORD_LAYERS.has(p))) {
      t.comment(`tshark's payload dissectors call ${by.length} packets malformed (${[...new Set(by)].join(', ')}): ${bad.slice(0, 3).join(' | ')}`);
      bad = [];
    }
  }
  t.same(listed(bad, 10), [], 'tshark reports no malformed packet (but those it reports in the oracle too)');
  const ci = spawnSync('capinfos', [file], { encoding: 'utf8', timeout: 120_000 });
  t.equal(ci.status, 0, `capinfos reads the file (${ci.stderr.trim().slice(0, 200)})`);
  t.match(ci.stdout, /Linux cooked-mode capture v2/, 'capinfos: encapsulation Linux cooked-mode capture v2');
}

export interface CaptureCheck {
  tdFile: string;
  oracleFile: string;
  oracleStats: OracleStats;
  run: TdRun;
  traced: SockRec[];
  others: SockRec[];
  /** Compare only the first N bytes of each IP packet (the oracle's snaplen minus SLL). */
  prefix?: number;
  tailMs?: number;
  /** The oracle may drop packets under load: then recall is not judged against it. */
  oracleMayDrop?: boolean;
  /** Expected number of TCP connections of the program (judged on the oracle). */
  tcpConnections?: number;
  /**
   * Server ports of connections the program leaves unfinished on purpose (a server that never
   * closes): their one FIN is enough; their first and last packets must still be in the file.
   */
  unfinishedTo?: number[];
  /** false: tracedump ran without its summary line (as Wireshark's extcap, -q): not judged. */
  summary?: false;
  /** Expected number of UDP datagrams sent by the program (judged on the oracle). */
  udpSent?: number;
  /** Expected number of UDP datagrams the program received (judged on the oracle). */
  udpReceived?: number;
}

export interface CaptureResult {
  td: PcapFile;
  oracle: PcapFile;
  program: Packet[];
  other: Packet[];
  missing: Packet[];
  extra: Packet[];
}

/**
 * Every check shared by the capture scenarios: the file is well formed, the summary line
 * matches it, no kernel drop; recall (every program packet of the oracle is in the file,
 * as often), precision (no packet of another flow, none the oracle did not see), no
 * duplicates; every program TCP connection starts with its SYN and ends with its FIN/ACK
 * (or RST) in the file, and the first datagram of every UDP socket is in it.
 */
export function checkCapture(t: Test, c: CaptureCheck): CaptureResult {
  const prefix = c.prefix ?? Infinity;
  t.notOk(c.run.timedOut, 'tracedump ended within its time limit');
  t.ok(fs.existsSync(c.tdFile), 'tracedump wrote its file');
  const td = readPcap(c.tdFile);
  const oracle = readPcap(c.oracleFile);
  t.equal(td.linktype, LINKTYPE_LINUX_SLL2, 'linktype LINUX_SLL2 (276)');
  t.ok(td.nanosecond, 'nanosecond pcap');
  t.same(td.undecoded, [], 'every record of tracedump is an IP packet');
  if (c.summary !== false) {
    t.ok(c.run.summary, `summary line present (${c.run.summary?.line ?? c.run.stderr.slice(-300)})`);
    t.equal(c.run.summary?.packets, td.packets.length + td.undecoded.length, 'the summary counts the packets in the file');
    t.equal(c.run.summary?.dropped, 0, 'tracedump: 0 packets dropped by the kernel');
  }
  if (!c.oracleMayDrop) t.equal(c.oracleStats.dropped, 0, 'the oracle dropped nothing');
  t.equal(oracle.packets.length, c.oracleStats.captured, 'the oracle file holds what tcpdump captured');
  checkReadable(t, c.tdFile, { file: c.oracleFile, td, oracle });
  const badLen = td.packets.filter((p) => p.origLen !== 20 + p.ipLen || p.capLen > p.origLen).map(describe);
  t.same(listed(badLen), [], 'every record: original length = SLL2 header + IP length, captured <= original');

  const { program, other } = classify(oracle.packets, c.traced, c.others, c.tailMs);
  t.ok(program.length > 0, `the oracle saw packets of the program (${program.length}, others ${other.length})`);
  const o = countKeys(program, prefix);
  const n = countKeys(other, prefix);
  const d = countKeys(td.packets, prefix);

  // within each file: the oracle's own duplicates (should be none: libpcap drops lo's
  // outgoing copy) and tracedump's
  const oracleDup = [...o.values()].filter((l) => l.length > 1).map((l) => `${l.length}x ${describe(l[0])}`);
  t.same(listed(oracleDup), [], 'the oracle saw each program packet once (sanity)');

  const missing: Packet[] = [];
  const extra: Packet[] = [];
  const dup: string[] = [];
  for (const [k, l] of o) {
    const got = d.get(k)?.length ?? 0;
    if (got < l.length) missing.push(...l.slice(got));
  }
  for (const [k, l] of d) {
    const want = o.get(k)?.length ?? 0;
    if (l.length > want) {
      if (want > 0) dup.push(`${l.length}x (oracle ${want}x) ${describe(l[0])}`);
      else extra.push(...l.slice(want));
    }
  }
  const extraOther = extra.filter((p) => n.has(packetKey(p, prefix)));
  const extraUnknown = extra.filter((p) => !n.has(packetKey(p, prefix)));
  const fmt = (ps: Packet[]) => listed(ps.sort((a, b) => a.ms - b.ms).map(describe));
  if (!c.oracleMayDrop || c.oracleStats.dropped === 0)
    t.same(fmt(missing), [], `recall: all ${program.length} program packets of the oracle are in the file`);
  t.same(fmt(extraOther), [], 'precision: no packet of another process/flow is in the file');
  t.same(fmt(extraUnknown), [], 'precision: no packet the oracle did not see is in the file');
  t.same(listed(dup), [], 'no duplicated packet');

  // connection starts and ends, judged on the oracle's view of the program
  const conns = tcpConnections(program);
  if (c.tcpConnections !== undefined)
    t.equal(conns.length, c.tcpConnections, `the program made ${c.tcpConnections} TCP connections (oracle)`);
  const badConn: string[] = [];
  for (const conn of conns) {
    const first = conn[0];
    const last = conn[conn.length - 1];
    const syn = (first.tcpFlags & (TCP_SYN | TCP_ACK)) === TCP_SYN;
    const fins = new Set(conn.filter((p) => p.tcpFlags & TCP_FIN).map((p) => `${p.src}.${p.sport}`));
    const rst = conn.some((p) => p.tcpFlags & TCP_RST);
    if (!syn) badConn.push(`oracle: connection does not start with a SYN: ${describe(first)}`);
    const unfinished = c.unfinishedTo?.includes(first.dport) && fins.size === 1;
    if (fins.size < 2 && !rst && !unfinished) badConn.push(`oracle: connection without FIN from both sides or RST: ${describe(first)}`);
    if (!d.has(packetKey(first, prefix))) badConn.push(`first packet missing: ${describe(first)}`);
    if (!d.has(packetKey(last, prefix))) badConn.push(`last packet missing: ${describe(last)}`);
  }
  t.same(listed(badConn), [], `every program TCP connection (${conns.length}) is whole: SYN first and FIN/ACK (or RST) last`);

  // UDP: the first datagram of every traced UDP socket is in the file
  const udpRecs = c.traced.filter((r) => r.proto === 'udp');
  const badUdp: string[] = [];
  const udp = program.filter((p) => tupleOf(p).proto === 'udp' && p.proto === 'udp');
  const udpBySport = new Map<number, Packet[]>();
  for (const p of udp) {
    const l = udpBySport.get(p.sport);
    if (l) l.push(p);
    else udpBySport.set(p.sport, [p]);
  }
  for (const r of udpRecs) {
    const firstOut = (udpBySport.get(r.local.port) ?? []).find((p) => p.ms >= r.t0 - 2 && epMatch(r.local, p.src, p.sport));
    if (!firstOut) badUdp.push(`oracle: no datagram from ${r.local.address}:${r.local.port}`);
    else if (!d.has(packetKey(firstOut, prefix))) badUdp.push(`first datagram missing: ${describe(firstOut)}`);
  }
  t.same(listed(badUdp), [], `the first datagram of every UDP socket of the program (${udpRecs.length}) is in the file`);
  if (c.udpSent !== undefined || c.udpReceived !== undefined) {
    const recsByPort = new Map<number, SockRec[]>();
    for (const r of udpRecs) recsByPort.set(r.local.port, [...(recsByPort.get(r.local.port) ?? []), r]);
    const isLocal = (port: number, addr: string) => (recsByPort.get(port) ?? []).some((r) => epMatch(r.local, addr, port));
    // Unconnected sockets record a wildcard local address: when a server in another namespace
    // happens to use the same port number as one of them, both ends match; then the capture's
    // direction (PACKET_OUTGOING on the host side of the veth) tells which way it went.
    const sent = (p: Packet) => isLocal(p.sport, p.src) && (!isLocal(p.dport, p.dst) || p.pkttype === 4);
    if (c.udpSent !== undefined)
      t.equal(udp.filter(sent).length, c.udpSent, `the program sent ${c.udpSent} datagrams (oracle)`);
    if (c.udpReceived !== undefined)
      t.equal(udp.filter((p) => !sent(p)).length, c.udpReceived, `the program received ${c.udpReceived} datagrams (oracle)`);
  }
  t.comment(
    `oracle: ${oracle.packets.length} packets (program ${program.length}, other ${other.length}, ` +
      `tcpdump dropped ${c.oracleStats.dropped}); tracedump: ${td.packets.length} packets, ` +
      `missing ${missing.length}, extra ${extra.length}, duplicated ${dup.length}; ${c.run.summary?.line}`,
  );
  return { td, oracle, program, other, missing, extra };
}

/** The BPF filter of the oracle for the test's own ports (plus ICMP errors if asked). */
export function portFilter(ports: number[], icmp = false): string {
  const f = ports.map((p) => `port ${p}`).join(' or ');
  return icmp ? `(${f}) or icmp or icmp6` : f;
}

/** `sh -c` cleanup helper for the network namespace tests. */
export function sh(cmd: string): { status: number | null; out: string } {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, out: (r.stdout ?? '') + (r.stderr ?? '') };
}

export interface TestNetns {
  name: string;
  hostV4: string;
  nsV4: string;
  hostV6: string;
  nsV6: string;
}

/**
 * A network namespace with a veth pair to the host: 198.18.N.1/24 and fd00:198:18::N:1/112
 * on the host side, .2 in the namespace (N is the first subnet no interface uses yet; 0 gives
 * 198.18.0.1 and fd00:198:18::1). IPv6 addresses with nodad. At teardown, the processes left
 * in the namespace are killed by pid and the namespace is deleted.
 */
export function makeNetns(t: Teardownable): TestNetns {
  const tag = `${process.pid % 100000}${Math.floor(Math.random() * 90 + 10)}`;
  const name = `tdtest${tag}`;
  const hostIf = `tdh${tag}`;
  const nsIf = `tdn${tag}`;
  const used = sh('ip -o addr show').out;
  let n = 0;
  while (n < 255 && used.includes(`198.18.${n}.`)) n++;
  const v6 = (h: number) => (n === 0 ? `fd00:198:18::${h}` : `fd00:198:18::${n.toString(16)}:${h}`);
  const net: TestNetns = { name, hostV4: `198.18.${n}.1`, nsV4: `198.18.${n}.2`, hostV6: v6(1), nsV6: v6(2) };
  t.teardown(() => {
    const pids = sh(`ip netns pids ${name}`).out.split(/\s+/).filter((p) => /^\d+$/.test(p));
    for (const p of pids) {
      try {
        process.kill(Number(p), 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    sh(`ip netns del ${name}`);
    sh(`ip link del ${hostIf} 2>/dev/null`);
  });
  const steps = [
    `ip netns add ${name}`,
    `ip link add ${hostIf} type veth peer name ${nsIf}`,
    `ip link set ${nsIf} netns ${name}`,
    `ip addr add ${net.hostV4}/24 dev ${hostIf}`,
    `ip -6 addr add ${net.hostV6}/112 dev ${hostIf} nodad`,
    `ip link set ${hostIf} up`,
    `ip netns exec ${name} ip link set lo up`,
    `ip netns exec ${name} ip addr add ${net.nsV4}/24 dev ${nsIf}`,
    `ip netns exec ${name} ip -6 addr add ${net.nsV6}/112 dev ${nsIf} nodad`,
    `ip netns exec ${name} ip link set ${nsIf} up`,
  ];
  for (const s of steps) {
    const r = sh(s);
    if (r.status !== 0) throw new Error(`${s}: ${r.out}`);
  }
  return net;
}

// ---- one capture scenario -------------------------------------------------------------------

type Outcome = { code: number | null; err: string };

export interface Scenario {
  /** The work dir (default: a fresh one, removed at teardown). */
  dir?: string;
  /** Untraced flows.py servers, started first (e.g. ['serve-tcp', '127.0.0.1', 0]). */
  servers?: (string | number)[][];
  /**
   * The test's own untraced servers, started after those; they give their ports, and may
   * record their sockets as others'.
   */
  startServers?: (dir: string, othersRecord: string) => Promise<number[]>;
  /** Ports the traced program will take itself (its own server, local ports to reuse). */
  freePorts?: { host: string; kind: 'tcp' | 'udp' }[];
  /**
   * A network namespace: the servers run in it; with `capture: true` the oracle (on its lo)
   * and tracedump run in it too.
   */
  netns?: { name: string; capture?: boolean };
  /**
   * The traced command, given the ports: servers', then the test's own, then the free ones.
   * (Only `run` may do without it.)
   */
  command?: (ports: number[], dir: string) => string[] | Promise<string[]>;
  /** tracedump's options before `-w FILE` (e.g. ['--events=json']), given the ports and the work dir. */
  tdArgs?: string[] | ((ports: number[], dir: string) => string[]);
  /** The capture file's path in the work dir (default out.pcap; its folder is made). */
  file?: string;
  /** The oracle's filter (default: the ports), interface (default any), snaplen and ring. */
  oracle?: { filter?: (ports: number[]) => string; iface?: string; snaplen?: number; bufferKiB?: number };
  /**
   * Untraced programs beside the traced one (their sockets recorded in others.jsonl): started
   * at once, or when a line of the traced command's stdout matches, or when an --events=json
   * event satisfies the test.
   */
  others?: {
    when?: RegExp | ((event: TdRun['events'][number]) => boolean);
    start: (ports: number[], record: string) => Promise<Outcome>[];
  };
  onStdout?: (all: string) => void;
  onStderrLine?: (line: string) => void;
  /** tracedump's time limit (then SIGKILL); default runTracedump's. */
  timeoutMs?: number;
  /**
   * How tracedump is run, when not `tracedump TDARGS -w FILE -- COMMAND` (an inherited fd,
   * an attach, actions in the middle of the run); the scenario's set-up and oracle stay.
   */
  run?: (c: { out: string; record: string; command: string[]; ports: number[]; dir: string }) => Promise<TdRun>;
}

export interface ScenarioRun {
  dir: string;
  ports: number[];
  /** tracedump's capture file. */
  out: string;
  oracle: { file: string; stats: OracleStats };
  run: TdRun;
  /** The traced command's own record of its sockets. */
  traced: SockRec[];
  /** The untraced programs' record of theirs, and how they ended. */
  others: SockRec[];
  othersDone: Outcome[];
  /** Epoch ms just before tracedump started, when the others started, just after it ended. */
  startedMs: number;
  othersStartedMs: number;
  endedMs: number;
}

/**
 * The set-up every capture test shares: servers, an oracle tcpdump on their ports, the traced
 * command under `tracedump -w FILE` with its sockets recorded, untraced programs beside it,
 * the oracle stopped. The test then checks (checkCapture, or its own).
 */
export async function captureScenario(t: Test, s: Scenario): Promise<ScenarioRun> {
  const dir = s.dir ?? workDir(t);
  const ns = s.netns?.name;
  const inNs = s.netns?.capture ? ns : undefined;
  const ports: number[] = [];
  for (const args of s.servers ?? []) ports.push((await startServer(t, args, { netns: ns })).port);
  const othersRecord = path.join(dir, 'others.jsonl');
  if (s.startServers) ports.push(...(await s.startServers(dir, othersRecord)));
  for (const f of s.freePorts ?? []) ports.push(freePort(f.host, f.kind));
  const oracle = await startOracle(t, {
    file: path.join(dir, 'oracle.pcap'),
    filter: (s.oracle?.filter ?? portFilter)(ports),
    iface: s.oracle?.iface ?? (inNs ? 'lo' : undefined),
    snaplen: s.oracle?.snaplen,
    bufferKiB: s.oracle?.bufferKiB,
    netns: inNs,
  });
  const out = path.join(dir, s.file ?? 'out.pcap');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const record = path.join(dir, 'traced.jsonl');
  let others: Promise<Outcome[]> | null = null;
  let othersStartedMs = 0;
  const startOthers = () => {
    if (others || !s.others) return;
    othersStartedMs = Date.now();
    others = Promise.all(s.others.start(ports, othersRecord));
  };
  const when = s.others?.when;
  if (s.others && !when) startOthers();
  if (!s.command && !s.run) throw new Error('captureScenario: a command or a run');
  const command = s.command ? await s.command(ports, dir) : [];
  const startedMs = Date.now();
  const run = await (s.run
    ? s.run({ out, record, command, ports, dir })
    : runTracedump(t, [...(typeof s.tdArgs === 'function' ? s.tdArgs(ports, dir) : s.tdArgs ?? []), '-w', out], command, {
        record,
        netns: inNs,
        timeoutMs: s.timeoutMs,
        onStdout: (all) => {
          if (when instanceof RegExp && when.test(all)) startOthers();
          s.onStdout?.(all);
        },
        onStderrLine: (line) => {
          if (typeof when === 'function') {
            const e = eventOf(line);
            if (e && when(e)) startOthers();
          }
          s.onStderrLine?.(line);
        },
      }));
  const endedMs = Date.now();
  const othersDone: Outcome[] = await ((others as Promise<Outcome[]> | null) ?? Promise.resolve([]));
  const stats = await oracle.stop();
  return {
    dir,
    ports,
    out,
    oracle: { file: oracle.file, stats },
    run,
    traced: readRecords(record, 'traced'),
    others: readRecords(othersRecord, 'other'),
    othersDone,
    startedMs,
    othersStartedMs,
    endedMs,
  };
}
