// npm run bench: bounded workloads run untraced, under tracedump and under strace (the
// standard seccomp-filtered tracer) — and tcpdump beside the bulk runs, attach mode, the
// classic filter — alternating, round by round; medians with min-max. Every figure is a ratio
// or a count from the same run, so it holds on a noisy machine. Ends with one summary table
// (stdout) and the same as JSON in bench/results/.
//
//   BENCH_ONLY=<workload>[,...]  run only these workloads (connect, many, bulk, bulk-beside, startup, micro, ...)
//   BENCH_ROUNDS=N                     rounds for every workload (default: 5, slow ones 3)
//   BENCH_CHURN_MINUTES=M              the paced memory run's length (default 3; documented: 60)
import { spawn, spawnSync } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildExactClassic } from '../filter/classic-program';
import { encodeClassic } from '../filter/classic';
import { runClassic } from '../filter/classic-interpreter';
import { defaultRingKiB } from '../capture/ring-size';
import { native } from '../native';
import { type Percentiles, type StopStatsReport, percentiles } from '../stop-stats';
import { flowsBench } from './flows-bench';
import { type StartupSeries, startupBench } from './startup-bench';

const ROOT = path.join(__dirname, '..', '..');
const CLI = path.join(ROOT, 'bin', 'tracedump');
const ROUNDS_ENV = process.env.BENCH_ROUNDS ? Number(process.env.BENCH_ROUNDS) : undefined;
const ONLY = process.env.BENCH_ONLY?.split(',').filter(Boolean);

interface Run {
  elapsedMs: number; // the workload's own loop
  p50Us?: number; // connect(): each call, median and 99th percentile
  p99Us?: number;
  openMs?: number; // many: opening the first N connections
  cpuMs: number; // user+sys of everything the run started (tracer included)
  ownCpuMs?: number; // the tracer's own while capturing (tracedump's --summary-json, tcpdump's /proc stat)
  packets?: number; // packets the tracer wrote
  stderr: string;
  stats?: StopStatsReport; // the session's stop-path timings (TRACEDUMP_STATS_FILE)
}

function median(xs: number[]): number {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

// A run that takes longer than this is killed, with everything it started (its process group).
const RUN_TIMEOUT_S = 300;

// perl's times() gives the CPU of the children it waited for: tracer and workload together.
// perl leads a process group of its own, so a run past RUN_TIMEOUT_S ends with all it started.
const PERL =
  'setpgrp(0, 0); $SIG{ALRM} = sub { kill "KILL", -$$ }; alarm ' +
  RUN_TIMEOUT_S +
  '; system(@ARGV); my @t = times; printf STDERR "cpu_s %f\\n", $t[2] + $t[3]; exit($? >> 8)';

function run(argv: string[], statsFile?: string, summaryFile?: string): Run {
  if (statsFile) fs.rmSync(statsFile, { force: true });
  if (summaryFile) fs.rmSync(summaryFile, { force: true });
  const r = spawnSync('perl', ['-e', PERL, ...argv], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    env: statsFile ? { ...process.env, TRACEDUMP_STATS_FILE: statsFile } : process.env,
  });
  const m = /elapsed_ns (\d+)/.exec(r.stdout);
  const cpu = /cpu_s ([\d.]+)/.exec(r.stderr);
  if (!m || r.status !== 0) throw new Error(`bench run failed (${argv.join(' ')}): ${r.error?.message ?? ''}${r.stdout}\n${r.stderr}`);
  const num = (re: RegExp, scale: number) => {
    const x = re.exec(r.stdout);
    return x ? Number(x[1]) / scale : undefined;
  };
  let stats: StopStatsReport | undefined;
  if (statsFile && fs.existsSync(statsFile)) {
    stats = JSON.parse(fs.readFileSync(statsFile, 'utf8')) as StopStatsReport;
    fs.rmSync(statsFile, { force: true });
  }
  // the tracer's own CPU: tracedump's --summary-json, tcpdump's /proc stat (tcpdumpRun)
  let ownCpuMs: number | undefined;
  let packets: number | undefined;
  if (summaryFile && fs.existsSync(summaryFile)) {
    const s = JSON.parse(fs.readFileSync(summaryFile, 'utf8')) as { cpu_seconds: number | null; cpu_seconds_to_capture_start: number | null; packets_written: number };
    // while capturing: less Node's start-up and the ring's allocation (slow on this VM when cold)
    ownCpuMs = s.cpu_seconds === null ? undefined : (s.cpu_seconds - (s.cpu_seconds_to_capture_start ?? 0)) * 1000;
    packets = s.packets_written;
    fs.rmSync(summaryFile, { force: true });
  }
  const tcpdumpStat = /tcpdump_stat (.*)/.exec(r.stderr);
  if (tcpdumpStat) {
    // /proc/PID/stat after the command name: state is field 0, utime 11, stime 12 (ticks of 10 ms)
    const f = tcpdumpStat[1].trim().split(/\s+/);
    ownCpuMs = (Number(f[11]) + Number(f[12])) * 10;
    packets = Number(/(\d+) packets? captured/.exec(r.stderr)?.[1] ?? NaN);
  }
  return {
    ownCpuMs,
    packets,
    elapsedMs: Number(m[1]) / 1e6,
    cpuMs: Number(cpu?.[1] ?? 0) * 1000,
    stderr: r.stderr,
    p50Us: num(/connect_p50_ns (\d+)/, 1e3),
    p99Us: num(/connect_p99_ns (\d+)/, 1e3),
    openMs: num(/open_ns (\d+)/, 1e6),
    stats,
  };
}

/** The resident set of a process (VmRSS), KiB; NaN once it is gone. */
function rssKiB(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
  } catch {
    return NaN;
  }
}

/**
 * Memory over many connections: tracedump on `churn N PORT RATE EVERY`, its RSS (the Node
 * process: the launcher execs it) sampled each time the workload says "made K".
 */
async function churnRss(bin: string, pcap: string, argv: string[]): Promise<{ made: number; rssKiB: number }[]> {
  const child = spawn(CLI, ['-q', '-w', pcap, '--linger', '0', '--', bin, 'churn', ...argv], { stdio: ['ignore', 'pipe', 'ignore'] });
  const samples: { made: number; rssKiB: number }[] = [{ made: 0, rssKiB: NaN }];
  setTimeout(() => (samples[0].rssKiB = rssKiB(child.pid as number)), 300);
  let buf = '';
  child.stdout.on('data', (c: Buffer) => {
    buf += c.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const m = /^made (\d+)/.exec(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
      if (m) samples.push({ made: Number(m[1]), rssKiB: rssKiB(child.pid as number) });
    }
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 2 * 3600_000);
  await new Promise<void>((r) => child.on('close', () => r()));
  clearTimeout(timer);
  return samples;
}

function compile(): string {
  const out = path.join(os.tmpdir(), `tracedump-bench-${process.pid}`);
  const r = spawnSync('gcc', ['-O2', '-pthread', '-o', out, path.join(ROOT, 'bench', 'workloads.c')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cannot compile bench/workloads.c: ${r.stderr}`);
  return out;
}

// The sink: TCP on port (a thread per connection), UDP echo on port+1, many's epoll server on
// port+2, TCP echo on port+3; and a UDP sink on port (Node) for the send workloads. (The start-up
// rows' page server takes port+4.)
async function startSink(bin: string, port: number): Promise<() => void> {
  const child = spawn(bin, ['sink', String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', () => reject(new Error('sink exited')));
  });
  const udp = dgram.createSocket('udp4');
  udp.on('message', () => {});
  await new Promise<void>((resolve) => udp.bind(port, '127.0.0.1', resolve));
  return () => {
    child.kill('SIGKILL');
    udp.close();
  };
}

// sh: start the workload, attach the tracer to it, wait for both.
function attachRun(bin: string, w: string[], tracer: string): string[] {
  const script = `BENCH_WAIT_TRACER=1 "$0" "$@" & p=$!; ${tracer} $p & t=$!; wait $p; s=$?; wait $t; exit $s`;
  return ['sh', '-c', script, bin, ...w];
}

// sh: tcpdump on every interface with a static port filter, the workload, then tcpdump's end.
function tcpdumpRun(bin: string, w: string[], pcap: string, port: number): string[] {
  const log = `/tmp/tracedump-bench-tcpdump.${process.pid}`;
  const script =
    `tcpdump -i any -B 262144 -s 262144 -w ${pcap} 'portrange ${port}-${port + 3}' 2>${log} & t=$!; ` +
    `for i in $(seq 100); do grep -q listening ${log} && break; sleep 0.05; done; ` +
    // its CPU so far (utime, stime in ticks), read just before it is stopped
    `"$0" "$@"; s=$?; sleep 0.3; echo "tcpdump_stat $(cut -d')' -f2 /proc/$t/stat)" >&2; kill -INT $t; wait $t; cat ${log} >&2; rm -f ${log}; exit $s`;
  return ['sh', '-c', script, bin, ...w];
}

// sh: the harness of a real machine's bulk transfer: an untraced tcpdump (-s 256, on lo) and
// untraced noise (20 MiB transfers in a loop to the same server) run beside the workload.
function besideRun(bin: string, inner: string[], port: number): string[] {
  const log = `/tmp/tracedump-bench-beside.${process.pid}`;
  const script =
    `tcpdump -i lo -s 256 -w /dev/null 2>${log} & d=$!; ` +
    `for i in $(seq 100); do grep -q listening ${log} && break; sleep 0.05; done; ` +
    `(while :; do "${bin}" bulk 20 ${port} >/dev/null 2>&1; done) & n=$!; ` +
    `"$0" "$@"; s=$?; kill $n; wait $n 2>/dev/null; kill -INT $d; wait $d; rm -f ${log}; exit $s`;
  return ['sh', '-c', script, ...inner];
}

// sh: tcpdump capturing the workload's port with the ring tracedump takes by default.
function tcpdumpSameRing(bin: string, w: string[], pcap: string, port: number): string[] {
  const log = `/tmp/tracedump-bench-tcpdump-ring.${process.pid}`;
  const script =
    `tcpdump -i any -B ${defaultRingKiB()} -s 262144 -w ${pcap} 'port ${port}' 2>${log} & t=$!; ` +
    `for i in $(seq 100); do grep -q listening ${log} && break; sleep 0.05; done; ` +
    `"$0" "$@"; s=$?; sleep 0.3; kill -INT $t; wait $t; cat ${log} >&2; rm -f ${log}; exit $s`;
  return ['sh', '-c', script, bin, ...w];
}

type Mode = 'untraced' | 'tracedump-js' | 'tracedump-beside' | 'tcpdump-beside' | 'tracedump' | 'tracedump-classic' | 'strace' | 'tcpdump' | 'tracedump-attach' | 'strace-attach' | 'seccomp-allow' | 'tracedump-flows';

interface Workload {
  name: string;
  /** What BENCH_ONLY names it by (default its argv[0]). */
  key?: string;
  argv: string[];
  /** Which mode fills the table's tracedump and strace columns; `extra` go to the notes. */
  tracedump: Mode;
  strace?: Mode;
  extra?: Mode[];
  rounds: number;
  /** Record the sessions' stop-path timings (TRACEDUMP_STATS_FILE). */
  stats?: boolean;
  /** Said in the table: what was reduced to keep the suite short. */
  note?: string;
}

interface ModeResult {
  mode: Mode;
  runs: Run[];
  medianMs: number;
  minMs: number;
  maxMs: number;
  ratio: number;
  cpuMs: number;
  p50Us?: number;
  p99Us?: number;
  summary: string; // the table cell
}

interface TableRow {
  workload: string;
  rounds: number;
  untraced: string;
  tracedump: string;
  strace: string;
  notes: string;
}

const fmtMs = (ms: number) => (ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2));
const fmtUs = (us: number | undefined) => (us === undefined || !Number.isFinite(us) ? '?' : us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : `${us.toFixed(1)} µs`);
const plus = (x: number | undefined, base: number | undefined) =>
  x === undefined || base === undefined || !Number.isFinite(x - base) ? '?' : `${x - base >= 0 ? '+' : '−'}${fmtUs(Math.abs(x - base))}`;

function summarizeMode(w: Workload, mode: Mode, runs: Run[], base: ModeResult | undefined): ModeResult {
  const el = runs.map((r) => r.elapsedMs);
  const med = median(el);
  const res: ModeResult = {
    mode,
    runs,
    medianMs: med,
    minMs: Math.min(...el),
    maxMs: Math.max(...el),
    ratio: base ? med / base.medianMs : 1,
    cpuMs: median(runs.map((r) => r.cpuMs)),
    p50Us: runs[0]?.p50Us !== undefined ? median(runs.map((r) => r.p50Us ?? NaN)) : undefined,
    p99Us: runs[0]?.p99Us !== undefined ? median(runs.map((r) => r.p99Us ?? NaN)) : undefined,
    summary: '',
  };
  let cell = `${fmtMs(res.medianMs)} ms (${fmtMs(res.minMs)}–${fmtMs(res.maxMs)})`;
  if (base && mode !== 'untraced') cell += `, ${res.ratio.toFixed(2)}×`;
  if (res.p50Us !== undefined) {
    cell +=
      mode === 'untraced' || !base
        ? `; connect() p50 ${fmtUs(res.p50Us)}, p99 ${fmtUs(res.p99Us)}`
        : `; connect() p50 ${plus(res.p50Us, base.p50Us)}, p99 ${plus(res.p99Us, base.p99Us)}`;
  }
  if (w.argv[0] === 'bulk') {
    const mib = Number(w.argv[1]);
    cell += `; ${(mib / (res.medianMs / 1000)).toFixed(0)} MiB/s`;
    // the capture's own CPU: the tracer's while it captured (its summary, tcpdump's /proc stat),
    // else the run's (every process it started) less the untraced workload's
    const own = median(runs.map((r) => r.ownCpuMs ?? NaN));
    if (base && mode !== 'untraced')
      cell += Number.isFinite(own) ? `, own CPU ${(own / 1000).toFixed(2)} s while capturing` : `, own CPU ${((res.cpuMs - base.cpuMs) / 1000).toFixed(2)} s`;
    if (mode === 'tracedump-beside' || mode === 'tcpdump-beside') {
      // the harness (tcpdump, noise) is in the time: only the losses are the point
      const drops = runs.map((r) => Number((mode === 'tcpdump-beside' ? /(\d+) packets? dropped by kernel/ : /(\d+) dropped by the kernel/).exec(r.stderr)?.[1] ?? NaN));
      cell = `drops ${drops.join('/')} (${drops.filter((d) => d > 0).length} of ${drops.length} runs lost packets)`;
      if (mode === 'tcpdump-beside') cell = `\`-B ${defaultRingKiB()} -s 0\` (tracedump's default ring), port filter (the noise included): ${cell}`;
      else cell = `default ring (${defaultRingKiB() / 1024} MiB): ${cell}`;
    } else if (mode.startsWith('tracedump')) {
      const pkts = median(runs.map((r) => Number(/(\d+) packets/.exec(r.stderr)?.[1] ?? NaN)));
      cell += `, ${((pkts / res.medianMs) * 1000).toFixed(0)} packets/s written`;
      cell += `, drops ${runs.map((r) => /(\d+) dropped by the kernel/.exec(r.stderr)?.[1] ?? '?').join('/')}`;
      const rss = runs.map((r) => Number(/maxrss_kb (\d+)/.exec(r.stderr)?.[1] ?? NaN));
      if (rss.every(Number.isFinite)) cell += `, peak RSS ${(Math.max(...rss) / 1024).toFixed(0)} MiB`;
    }
    if (mode === 'tcpdump') cell += `, drops ${runs.map((r) => /(\d+) packets? dropped by kernel/.exec(r.stderr)?.[1] ?? '?').join('/')}`;
  }
  if (w.argv[0] === 'pingpong' && mode !== 'untraced') {
    // the tracer's own CPU per packet it wrote
    const own = median(runs.map((r) => r.ownCpuMs ?? NaN));
    const pkts = median(runs.map((r) => r.packets ?? NaN));
    cell += `; own CPU ${(own / 1000).toFixed(2)} s for ${(pkts / 1000).toFixed(0)} k packets: ${((own * 1000) / pkts).toFixed(2)} µs a packet`;
  }
  res.summary = cell;
  return res;
}

// The stop-path timings of a mode's sessions: the median over rounds of each figure.
function statsNote(results: ModeResult, kinds: Array<[string, keyof StopStatsReport, string?]>): string {
  const reports = results.runs.map((r) => r.stats).filter((s): s is StopStatsReport => !!s);
  if (!reports.length) return '';
  const parts: string[] = [];
  for (const [label, kind, bucket] of kinds) {
    const pick = (r: StopStatsReport): Percentiles | undefined => (bucket ? r[kind]?.byPresent?.[bucket] : r[kind]);
    const got = reports.map(pick).filter((p): p is Percentiles => !!p && p.count > 0);
    if (!got.length) continue;
    const p50 = median(got.map((p) => p.p50Us));
    const p99 = median(got.map((p) => p.p99Us));
    parts.push(`${label} p50 ${fmtUs(p50)} / p99 ${fmtUs(p99)} (n=${median(got.map((p) => p.count))})`);
  }
  return parts.join(', ');
}

// ---- in-process measurements: the kernel filter's updates with many endpoints present ----

interface MicroResult {
  ebpf: { present: number; insert: Percentiles; remove: Percentiles; insertJs: Percentiles; removeJs: Percentiles };
  classic: Array<{
    ports: number;
    instructions: number;
    buildMs: { median: number; max: number };
    attach: Percentiles;
    passingPorts: number;
  }>;
}

// A deterministic PRNG for the classic port sets (xorshift32).
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

function ebpfMicro(present: number, more: number): MicroResult['ebpf'] {
  const addon = native();
  const rules = new addon.RuleSet(1 << 17); // as a session makes them
  addon.enableStopStats(1 << 16);
  const local = (i: number) => ({ address: `127.0.${(i >> 8) & 255}.${i & 255}`, port: 10000 + (i % 50000) });
  const remote = { address: '127.0.0.1', port: 80 };
  for (let i = 0; i < present; i++) rules.add({ proto: 6, local: local(i), remote, inode: i + 1 });
  const insertJs: number[] = [];
  const removeJs: number[] = [];
  // one more socket comes and goes, again and again: `present` others stay
  for (let j = 0; j < more; j++) {
    const inode = 1e6 + j;
    let t0 = process.hrtime.bigint();
    rules.add({ proto: 6, local: local(present + j), remote, inode });
    insertJs.push(Number(process.hrtime.bigint() - t0));
    t0 = process.hrtime.bigint();
    rules.release(inode);
    removeJs.push(Number(process.hrtime.bigint() - t0));
  }
  const raw = addon.stopStats();
  const sel = (s: { ns: Uint32Array; present: Uint32Array }) => s.ns.filter((_, i) => s.present[i] >= present);
  return {
    present,
    insert: percentiles(sel(raw.mapInsert)),
    remove: percentiles(sel(raw.mapDelete)),
    insertJs: percentiles(insertJs),
    removeJs: percentiles(removeJs),
  };
}

function classicMicro(counts: number[]): MicroResult['classic'] {
  const addon = native();
  const cfg = { snaplen: 262144, loopbackIfindex: 1 };
  const capture = new addon.Capture({ blockSize: 1 << 20, blockCount: 2, retireMs: 20 }, () => {});
  const out: MicroResult['classic'] = [];
  // an IPv4 TCP packet from 127.0.0.1:sport to 127.0.0.1:9 (as received on lo)
  const pkt = Buffer.alloc(40);
  pkt[0] = 0x45;
  pkt[8] = 64;
  pkt[9] = 6;
  pkt.writeUInt32BE(0x7f000001, 12);
  pkt.writeUInt32BE(0x7f000001, 16);
  pkt.writeUInt16BE(9, 22);
  pkt[32] = 5 << 4;
  try {
    for (const n of counts) {
      const rand = prng(n);
      const set = new Set<number>();
      while (set.size < n) set.add(32768 + Math.floor(rand() * (61000 - 32768))); // the ephemeral range
      const ports = new Map([[6, [...set]]]);
      const builds: number[] = [];
      let prog: Buffer | undefined;
      let insns = buildExactClassic(ports, cfg);
      for (let i = 0; i < (n >= 3000 ? 3 : 5); i++) {
        const t0 = process.hrtime.bigint();
        insns = buildExactClassic(ports, cfg);
        prog = encodeClassic(insns);
        builds.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
      const attach: number[] = [];
      for (let i = 0; i < 50; i++) {
        const t0 = process.hrtime.bigint();
        capture.attachClassic(prog!);
        attach.push(Number(process.hrtime.bigint() - t0));
      }
      let passing = 0;
      for (let p = 0; p < 65536; p++) {
        pkt.writeUInt16BE(p, 20);
        if (runClassic(insns, pkt, { protocol: 0x0800, pkttype: 0, ifindex: 1 }) > 0) passing++;
      }
      out.push({ ports: n, instructions: insns.length, buildMs: { median: median(builds), max: Math.max(...builds) }, attach: percentiles(attach), passingPorts: passing });
    }
  } finally {
    capture.stop();
  }
  return out;
}

async function main() {
  if (process.getuid?.() !== 0) throw new Error('npm run bench needs root (capture and tracing)');
  const started = Date.now();
  const bin = compile();
  const port = 20000 + (process.pid % 10000);
  const stop = await startSink(bin, port);
  const pcap = path.join(os.tmpdir(), `tracedump-bench-${process.pid}.pcap`);
  const statsFile = path.join(os.tmpdir(), `tracedump-bench-${process.pid}.stats.json`);
  const summaryFile = path.join(os.tmpdir(), `tracedump-bench-${process.pid}.summary.json`);
  const hasStrace = spawnSync('strace', ['-V']).status === 0;
  const hasTime = fs.existsSync('/usr/bin/time');
  const hasTcpdump = spawnSync('tcpdump', ['--version']).status === 0;
  const modes: Partial<Record<Mode, (w: string[]) => string[]>> = {
    untraced: (w) => [bin, ...w],
    // The floor of any seccomp-filtered tracer: an allow-all filter, no tracer.
    'seccomp-allow': (w) => ['env', 'BENCH_SECCOMP_ALLOW=1', bin, ...w],
    // GNU time reports tracedump's peak RSS (its children's are far smaller)
    tracedump: (w) => [...(hasTime ? ['/usr/bin/time', '-f', 'maxrss_kb %M'] : []), CLI, '-w', pcap, '--linger', '0', '--summary-json', summaryFile, '--', bin, ...w],
    // every packet through the pipeline in JavaScript (the native path off: docs/design.md)
    'tracedump-js': (w) => ['env', 'TRACEDUMP_NATIVE_PATH=off', CLI, '-w', pcap, '--linger', '0', '--summary-json', summaryFile, '--', bin, ...w],
    'tracedump-classic': (w) => [CLI, '-w', pcap, '--linger', '0', '--kernel-filter=classic', '--', bin, ...w],
    // the same capture writing its flow records live (--flows)
    'tracedump-flows': (w) => [...(hasTime ? ['/usr/bin/time', '-f', 'maxrss_kb %M'] : []), CLI, '-w', pcap, '--flows', `${pcap}.flows.jsonl`, '--linger', '0', '--summary-json', summaryFile, '--', bin, ...w],
    ...(hasStrace ? { strace: (w: string[]) => ['strace', '-f', '--seccomp-bpf', '-e', 'trace=network', '-o', '/dev/null', bin, ...w] } : {}),
    // The capture ceiling: tcpdump with a static port filter beside the workload.
    ...(hasTcpdump ? { tcpdump: (w: string[]) => tcpdumpRun(bin, w, pcap, port) } : {}),
    'tracedump-beside': (w) => besideRun(bin, [CLI, '-w', pcap, '--linger', '0', '--', bin, ...w], port),
    ...(hasTcpdump ? { 'tcpdump-beside': (w: string[]) => besideRun(bin, tcpdumpSameRing(bin, w, pcap, port), port) } : {}),
    // Attach mode: the workload waits for its tracer, then times its loop.
    'tracedump-attach': (w) => attachRun(bin, w, `${CLI} -q -w ${pcap} --linger 0 -p`),
    ...(hasStrace ? { 'strace-attach': (w: string[]) => attachRun(bin, w, 'strace -f -e trace=network -o /dev/null -p') } : {}),
  };
  const R = (n: number) => ROUNDS_ENV ?? n;
  const P = String(port);
  const workloads: Workload[] = [
    { name: '2 M `read()` of /dev/zero', argv: ['syscalls', '2000000'], tracedump: 'tracedump', strace: 'strace', extra: ['seccomp-allow'], rounds: R(5) },
    {
      name: '100 k `read()` of /dev/zero, attached (`-p`)',
      argv: ['syscalls', '100000'],
      tracedump: 'tracedump-attach',
      strace: 'strace-attach',
      rounds: R(3),
      note: '100 k reads, not 2 M: two stops per syscall make 2 M take ~1 min per run',
    },
    // 20 alternated runs: a run's connect() times swing by 2x on this VM (which CPU the tracer
    // and the program wake on), so fewer rounds decide nothing
    { name: '2,000 sequential TCP connects', argv: ['connect', '2000', String(port + 2)], tracedump: 'tracedump', strace: 'strace', extra: ['tracedump-classic'], rounds: R(20), stats: true },
    { name: '1,000 sequential TCP connects, attached (`-p`)', argv: ['connect', '1000', String(port + 2)], tracedump: 'tracedump-attach', strace: 'strace-attach', rounds: R(20) },
    {
      name: '10,000 concurrent endpoints: 10,000 TCP connections held open, then 1,000 more connects timed',
      argv: ['many', '10000', String(port + 2), '1000'],
      tracedump: 'tracedump',
      strace: 'strace',
      extra: ['tracedump-classic'],
      rounds: R(3),
      stats: true,
    },
    { name: '200 k `send()` on a connected UDP socket', argv: ['send', '200000', P], tracedump: 'tracedump', strace: 'strace', extra: ['tcpdump'], rounds: R(3), note: 'strace takes ~8 s a run; tcpdump: the cost of capturing the same packets' },
    { name: '100 k `sendto()` with an address, bound UDP', argv: ['sendto', '100000', P], tracedump: 'tracedump', strace: 'strace', rounds: R(3), stats: true },
    { name: '100 k `sendmsg()` with an address, bound UDP', argv: ['sendmsg', '100000', P], tracedump: 'tracedump', strace: 'strace', rounds: R(3), stats: true },
    { name: '2,000 DNS-like exchanges, each from a fresh UDP socket', argv: ['dns', '2000', String(port + 1)], tracedump: 'tracedump', strace: 'strace', rounds: R(5), stats: true },
    { name: '20,000 `io_uring_enter()` with 300 files open (io_uring users stop there)', argv: ['uring', '20000'], tracedump: 'tracedump', strace: 'strace', rounds: R(3), note: 'strace traces network calls only: it does not stop here' },
    { name: '200 MiB over one loopback TCP connection', argv: ['bulk', '200', P], tracedump: 'tracedump', extra: ['tcpdump', 'tracedump-flows'], rounds: R(5) },
    {
      name: '200 MiB over loopback beside an untraced tcpdump and noise',
      key: 'bulk-beside',
      argv: ['bulk', '200', P],
      tracedump: 'tracedump',
      extra: ['tracedump-beside', 'tcpdump-beside'],
      rounds: R(10),
    },
    {
      name: '50 k exchanges of 100 bytes each way on one loopback TCP connection',
      argv: ['pingpong', '50000', P],
      tracedump: 'tracedump',
      extra: ['tracedump-js', 'tcpdump'],
      rounds: R(5),
      note: 'small packets: the per-packet cost of a capture; own CPU is the tracer process\'s while it captures (tracedump: every thread, less Node\'s start-up and the ring\'s allocation)',
    },
    { name: '2 GiB over one loopback TCP connection', argv: ['bulk', '2048', P], tracedump: 'tracedump', extra: ['tcpdump', 'tracedump-flows'], rounds: R(3) },
  ];
  const selectedKey = (key: string) => !ONLY || ONLY.includes(key);
  const selected = (w: Workload) => selectedKey(w.key ?? w.argv[0]);
  const table: TableRow[] = [];
  const raw: Array<Omit<ModeResult, 'runs' | 'summary'> & { workload: string; runs: Array<Omit<Run, 'stderr'>> }> = [];
  let micro: MicroResult | undefined;
  try {
    for (const w of workloads.filter(selected)) {
      const active = (['untraced', w.tracedump, w.strace, ...(w.extra ?? [])] as Array<Mode | undefined>).filter(
        (m): m is Mode => !!m && !!modes[m],
      );
      const runs: Partial<Record<Mode, Run[]>> = Object.fromEntries(active.map((m) => [m, []]));
      try {
        for (let round = 0; round < w.rounds; round++)
          for (const m of active) runs[m]!.push(run(modes[m]!(w.argv), w.stats && m.startsWith('tracedump') ? statsFile : undefined, summaryFile));
      } catch (err) {
        // one workload's failure is said in its row; the others still run
        const why = (err as Error).message.split('\n')[0];
        process.stderr.write(`${why}\n`);
        table.push({ workload: w.name, rounds: w.rounds, untraced: '–', tracedump: '–', strace: '–', notes: `failed: ${why}` });
        continue;
      }
      const base = summarizeMode(w, 'untraced', runs.untraced!, undefined);
      const res: Partial<Record<Mode, ModeResult>> = { untraced: base };
      for (const m of active) if (m !== 'untraced') res[m] = summarizeMode(w, m, runs[m]!, base);
      for (const r of Object.values(res))
        raw.push({
          workload: w.name,
          mode: r.mode,
          medianMs: r.medianMs,
          minMs: r.minMs,
          maxMs: r.maxMs,
          ratio: r.ratio,
          cpuMs: r.cpuMs,
          p50Us: r.p50Us,
          p99Us: r.p99Us,
          runs: r.runs.map(({ stderr: _s, ...rest }) => rest),
        });
      const notes: string[] = [];
      for (const m of w.extra ?? []) {
        const r = res[m];
        if (r) notes.push(`${m === 'tracedump-classic' ? 'classic filter' : m === 'seccomp-allow' ? 'an allow-all seccomp filter alone (no tracer)' : m === 'tracedump-flows' ? 'with --flows' : m === 'tracedump-beside' ? 'tracedump with an untraced `tcpdump -s 256` on lo and untraced noise (20 MiB transfers to the same server) beside it' : m === 'tcpdump-beside' ? 'tcpdump in the same harness' : m === 'tracedump-js' ? 'the native path off (every packet judged and written in JavaScript)' : m}: ${r.summary}`);
      }
      if (w.argv[0] === 'many') {
        const td = res.tracedump;
        const cl = res['tracedump-classic'];
        const open = (r?: ModeResult) => (r ? `${fmtMs(median(r.runs.map((x) => x.openMs ?? NaN)))} ms` : '?');
        notes.push(`opening the 10,000: untraced ${open(base)}, tracedump ${open(td)}, classic ${open(cl)}, strace ${open(res.strace)}`);
        if (td)
          notes.push(
            'tracedump stop path with ≥ 10,000 rules present: held per connect() ' +
              statsNote(td, [
                ['entry', 'connectEntry', '10000+'],
                ['exit', 'connectExit', '10000+'],
                ['flow-rule insert', 'mapInsert', '10000+'],
              ]),
          );
        if (cl)
          notes.push(
            'classic: held ' +
              statsNote(cl, [
                ['entry', 'connectEntry'],
                ['exit', 'connectExit'],
                ['wide attach', 'classicWide'],
                ['exact attach', 'classicExact'],
                ['exact rebuild+offer (controller)', 'classicRefresh'],
              ]),
          );
      } else if (w.stats && res.tracedump) {
        const held = statsNote(res.tracedump, [
          ['connect entry', 'connectEntry'],
          ['connect exit', 'connectExit'],
          ['other entry', 'otherEntry'],
          ['other exit', 'otherExit'],
        ]);
        if (held) notes.push(`held per stop: ${held}`);
      }
      if (w.note) notes.push(`(${w.note})`);
      table.push({
        workload: w.name,
        rounds: w.rounds,
        untraced: base.summary,
        tracedump: res[w.tracedump]?.summary ?? '–',
        strace: (w.strace && res[w.strace]?.summary) ?? '–',
        notes: notes.join('; '),
      });
    }
    if (selectedKey('startup')) {
      const rounds = ROUNDS_ENV ?? 20;
      for (const row of await startupBench(CLI, pcap, port + 4, ROOT, rounds)) {
        const [base, td, st] = row.series;
        const cell = (s: StartupSeries | undefined) => {
          if (!s) return '–';
          const m = median(s.ms);
          return `${fmtMs(m)} ms (${fmtMs(Math.min(...s.ms))}–${fmtMs(Math.max(...s.ms))}), ${m - median(base.ms) >= 0 ? '+' : '−'}${fmtMs(Math.abs(m - median(base.ms)))} ms`;
        };
        table.push({
          workload: {
            true: '`tracedump -w FILE -- true`, the whole run',
            cold: '`tracedump -w FILE -- true`, each run after 3 s idle',
            curl: 'curl of a local page, the whole run',
            'curl-cold': 'curl of a local page, each run after 3 s idle',
          }[row.what],
          rounds,
          untraced: `${base.label}: ${fmtMs(median(base.ms))} ms (${fmtMs(Math.min(...base.ms))}–${fmtMs(Math.max(...base.ms))})`,
          tracedump: cell(td),
          strace: row.what === 'cold' || row.what === 'curl-cold' ? '–' : cell(st),
          notes: {
            true: `the target: Node's start-up + 100 ms at most (the untraced column is Node's start-up; \`true\` alone takes about 1 ms); ring ${defaultRingKiB() / 1024} MiB`,
            cold: `with \`-B 65536\`: ${cell(st)}; the ring (${defaultRingKiB() / 1024} MiB) is made in the background and \`true\` makes no socket call: it never waits for it`,
            curl: 'the target: curl alone + 200 ms at most',
            'curl-cold': `with \`-B 65536\`: ${cell(st)}; curl's connect waits for the ring (${defaultRingKiB() / 1024} MiB), made from memory the machine has to back again`,
          }[row.what],
        });
      }
    }
    if (selectedKey('flows')) {
      for (const r of await flowsBench(CLI, path.join(ROOT, 'dist', 'cli.js'), os.tmpdir(), [100e6, 1.05e9])) {
        const sec = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
        const mib = (k: number) => `${(k / 1024).toFixed(0)} MiB`;
        table.push({
          workload: `tracedump flows on a ${r.size} pcapng (${r.packets.toLocaleString('en')} packets, ${r.flows.toLocaleString('en')} HTTPS and DNS flows, 256 at a time)`,
          rounds: 1,
          untraced: '–',
          tracedump: `${sec(r.tracedump.ms)}, peak RSS ${mib(r.tracedump.peakKiB)}; with the JS heap capped at 64 MiB: ${r.capped.status === 0 ? `${sec(r.capped.ms)}, peak RSS ${mib(r.capped.peakKiB)}` : `failed (${r.capped.status})`}`,
          strace: '–',
          notes: r.tshark
            ? `tshark -q -z conv,tcp -z conv,udp: ${sec(r.tshark.ms)}, peak RSS ${mib(r.tshark.peakKiB)}; tracedump ${(r.tshark.ms / r.tracedump.ms).toFixed(1)}× faster`
            : 'tshark not installed',
        });
        const run = (x: { ms: number; peakKiB: number; status: number | null } | undefined) =>
          !x ? '–' : x.status === 0 ? `${sec(x.ms)}, peak RSS ${mib(x.peakKiB)}` : `failed (${x.status})`;
        if (r.objects && r.stats && r.tsharkJson)
          table.push({
            workload: `tracedump objects and stats on the same ${r.size} pcapng (TLS without keys: an opaque object per connection, DNS)`,
            rounds: 1,
            untraced: '–',
            tracedump: `objects ${run(r.objects)}; stats ${run(r.stats)}`,
            strace: '–',
            notes: `the tshark pass objects makes (-T json, its protocols), alone: ${sec(r.tsharkJson.ms)}, peak RSS ${mib(r.tsharkJson.peakKiB)}: objects costs ${(r.objects.ms / r.tsharkJson.ms).toFixed(2)}× it`,
          });
      }
    }
    if (selectedKey('churn')) {
      const mib = (k: number) => `${(k / 1024).toFixed(0)} MiB`;
      const fast = await churnRss(bin, pcap, ['100000', String(port + 2), '2000', '10000']);
      const at = (n: number) => fast.find((x) => x.made === n)?.rssKiB ?? NaN;
      table.push({
        workload: '100,000 short TCP connections at 2,000/s (the client closes first: TIME_WAIT on its side)',
        rounds: 1,
        untraced: '–',
        tracedump: `RSS at start ${mib(fast[0].rssKiB)}, after 10 k ${mib(at(10_000))}, 50 k ${mib(at(50_000))}, 100 k ${mib(at(100_000))}`,
        strace: '–',
        notes: 'a closed connection is kept while the kernel still finishes it (TIME_WAIT: 60 s), then 10 s: at 2,000/s up to ~140,000 are held at once',
      });
      const minutes = Number(process.env.BENCH_CHURN_MINUTES ?? 3);
      const paced = await churnRss(bin, pcap, [String(minutes * 60 * 30), String(port + 2), '30', '1800']);
      table.push({
        workload: `30 TCP connections a second for ${minutes} min (BENCH_CHURN_MINUTES)`,
        rounds: 1,
        untraced: '–',
        tracedump: `RSS ${paced.map((x) => mib(x.rssKiB)).join(', ')} (at start, then each minute)`,
        strace: '–',
        notes: 'flat once the first minute of TIME_WAIT is held (~1,800 connections)',
      });
    }
    if (selectedKey('micro') || selectedKey('many')) {
      micro = { ebpf: ebpfMicro(10_000, 1_000), classic: classicMicro([100, 1000, 3000, 10_000]) };
      const e = micro.ebpf;
      table.push({
        workload: `eBPF rule insert / remove with ${e.present.toLocaleString('en')} flows present (in-process, 1,000 each)`,
        rounds: 1,
        untraced: '–',
        tracedump: `insert p50 ${fmtUs(e.insert.p50Us)}, p99 ${fmtUs(e.insert.p99Us)}; remove p50 ${fmtUs(e.remove.p50Us)}, p99 ${fmtUs(e.remove.p99Us)}`,
        strace: '–',
        notes: `the bpf() map update/delete timed natively; as called from JS: insert p50 ${fmtUs(e.insertJs.p50Us)}, remove p50 ${fmtUs(e.removeJs.p50Us)}`,
      });
      for (const c of micro.classic)
        table.push({
          workload: `classic filter rebuild + attach, ${c.ports.toLocaleString('en')} local ports in use`,
          rounds: 1,
          untraced: '–',
          tracedump: `rebuild ${c.buildMs.median.toFixed(1)} ms (max ${c.buildMs.max.toFixed(1)}), attach p50 ${fmtUs(c.attach.p50Us)}, p99 ${fmtUs(c.attach.p99Us)}`,
          strace: '–',
          notes: `${c.instructions} instructions; passes ${c.passingPorts.toLocaleString('en')} of 65,536 local ports${c.passingPorts > c.ports ? ' (intervals merged to fit 4,096 instructions: a wider kernel filter, userspace decides)' : ''}`,
        });
    }
  } finally {
    stop();
    fs.rmSync(pcap, { force: true });
    fs.rmSync(`${pcap}.flows.jsonl`, { force: true });
    fs.rmSync(statsFile, { force: true });
    fs.rmSync(bin, { force: true });
  }
  const date = new Date().toISOString();
  const header = `tracedump bench, ${date.slice(0, 10)}, ${os.cpus().length} vCPU, Linux ${os.release()}, Node ${process.version}; medians (min–max) of the workload's own loop, × untraced; ${((Date.now() - started) / 1000).toFixed(0)} s in all`;
  const lines = [
    header,
    '',
    '| workload | rounds | untraced | tracedump | strace | tcpdump / notes |',
    '|---|---|---|---|---|---|',
    ...table.map((r) => `| ${r.workload} | ${r.rounds} | ${r.untraced} | ${r.tracedump} | ${r.strace} | ${r.notes} |`),
  ];
  console.log(lines.join('\n'));
  const dir = path.join(ROOT, 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${date.replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(
    file,
    JSON.stringify({ date, machine: { cpus: os.cpus().length, kernel: os.release(), node: process.version }, header, table, micro, rows: raw }, null, 2),
  );
  console.log(`\n(written to ${path.relative(process.cwd(), file)})`);
}

main().catch((err) => {
  console.error(`bench: ${(err as Error).message}`);
  process.exit(1);
});
