// npm run bench: bounded workloads run untraced, under tracedump and under strace (the
// standard seccomp-filtered tracer), alternating, 5 rounds; medians with min-max. Every
// figure is a ratio or a count from the same run, so it holds on a noisy machine.
import { spawn, spawnSync } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.join(__dirname, '..', '..');
const CLI = path.join(ROOT, 'bin', 'tracedump');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

interface Run {
  elapsedMs: number; // the workload's own loop
  p50Us?: number; // connect(): each call, median and 99th percentile
  p99Us?: number;
  cpuMs: number; // user+sys of everything the run started (tracer included)
  stderr: string;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

// perl's times() gives the CPU of the children it waited for: tracer and workload together.
function run(argv: string[]): Run {
  const r = spawnSync('perl', ['-e', 'system(@ARGV); my @t = times; printf STDERR "cpu_s %f\\n", $t[2] + $t[3]; exit($? >> 8)', ...argv], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  const m = /elapsed_ns (\d+)/.exec(r.stdout);
  const cpu = /cpu_s ([\d.]+)/.exec(r.stderr);
  if (!m || r.status !== 0) throw new Error(`bench run failed (${argv.join(' ')}): ${r.stdout}\n${r.stderr}`);
  const p50 = /connect_p50_ns (\d+)/.exec(r.stdout);
  const p99 = /connect_p99_ns (\d+)/.exec(r.stdout);
  return {
    elapsedMs: Number(m[1]) / 1e6,
    cpuMs: Number(cpu?.[1] ?? 0) * 1000,
    stderr: r.stderr,
    p50Us: p50 ? Number(p50[1]) / 1e3 : undefined,
    p99Us: p99 ? Number(p99[1]) / 1e3 : undefined,
  };
}

function compile(): string {
  const out = path.join(os.tmpdir(), `tracedump-bench-${process.pid}`);
  const r = spawnSync('gcc', ['-O2', '-pthread', '-o', out, path.join(ROOT, 'bench', 'workloads.c')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cannot compile bench/workloads.c: ${r.stderr}`);
  return out;
}

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
  const script =
    `tcpdump -i any -B 262144 -s 262144 -w ${pcap} 'tcp port ${port}' 2>/tmp/tracedump-bench-tcpdump.$$ & t=$!; ` +
    `for i in $(seq 100); do grep -q listening /tmp/tracedump-bench-tcpdump.$$ && break; sleep 0.05; done; ` +
    `"$0" "$@"; s=$?; sleep 0.3; kill -INT $t; wait $t; cat /tmp/tracedump-bench-tcpdump.$$ >&2; rm -f /tmp/tracedump-bench-tcpdump.$$; exit $s`;
  return ['sh', '-c', script, bin, ...w];
}

interface Row {
  workload: string;
  mode: string;
  medianMs: number;
  minMs: number;
  maxMs: number;
  ratio: number;
  cpuMs: number;
  extra?: string;
}

async function main() {
  if (process.getuid?.() !== 0) throw new Error('npm run bench needs root (capture and tracing)');
  const bin = compile();
  const port = 20000 + (process.pid % 20000);
  const stop = await startSink(bin, port);
  const pcap = path.join(os.tmpdir(), `tracedump-bench-${process.pid}.pcap`);
  const hasStrace = spawnSync('strace', ['-V']).status === 0;
  const hasTime = fs.existsSync('/usr/bin/time');
  const hasTcpdump = spawnSync('tcpdump', ['--version']).status === 0;
  const modes: Record<string, (w: string[]) => string[]> = {
    untraced: (w) => [bin, ...w],
    // GNU time reports tracedump's peak RSS (its children's are far smaller)
    tracedump: (w) => [...(hasTime ? ['/usr/bin/time', '-f', 'maxrss_kb %M'] : []), CLI, '-w', pcap, '--linger', '0', '--', bin, ...w],
    'tracedump-classic': (w) => [CLI, '-w', pcap, '--linger', '0', '--kernel-filter=classic', '--', bin, ...w],
    ...(hasStrace ? { strace: (w: string[]) => ['strace', '-f', '--seccomp-bpf', '-e', 'trace=network', '-o', '/dev/null', bin, ...w] } : {}),
    // The capture ceiling: tcpdump with a static port filter beside the workload.
    ...(hasTcpdump ? { tcpdump: (w: string[]) => tcpdumpRun(bin, w, pcap, port) } : {}),
    // Attach mode: the workload waits for its tracer, then times its loop.
    'tracedump-attach': (w) => attachRun(bin, w, `${CLI} -q -w ${pcap} --linger 0 -p`),
    ...(hasStrace ? { 'strace-attach': (w: string[]) => attachRun(bin, w, 'strace -f -e trace=network -o /dev/null -p') } : {}),
  };
  const workloads: Array<{ name: string; argv: string[]; modes: string[] }> = [
    { name: '2M read(/dev/zero)', argv: ['syscalls', '2000000'], modes: ['untraced', 'tracedump', 'strace', 'tracedump-attach', 'strace-attach'] },
    {
      name: '1,000 TCP connects',
      argv: ['connect', '1000', String(port)],
      modes: ['untraced', 'tracedump', 'tracedump-classic', 'strace', 'tracedump-attach', 'strace-attach'],
    },
    { name: '200k send() connected UDP', argv: ['send', '200000', String(port)], modes: ['untraced', 'tracedump', 'strace'] },
    { name: '100k sendto() bound UDP', argv: ['sendto', '100000', String(port)], modes: ['untraced', 'tracedump', 'strace'] },
    { name: '100k sendmsg() bound UDP', argv: ['sendmsg', '100000', String(port)], modes: ['untraced', 'tracedump', 'strace'] },
    { name: '2,000 DNS-like exchanges, fresh UDP sockets', argv: ['dns', '2000', String(port + 1)], modes: ['untraced', 'tracedump', 'strace'] },
    { name: '200 MiB TCP bulk', argv: ['bulk', '200', String(port)], modes: ['untraced', 'tracedump', 'tcpdump'] },
    { name: '2 GiB TCP bulk', argv: ['bulk', '2048', String(port)], modes: ['untraced', 'tracedump', 'tcpdump'] },
  ];
  const rows: Row[] = [];
  const only = process.env.BENCH_ONLY; // a workload's first word, e.g. bulk
  try {
    for (const w of workloads.filter((x) => !only || x.argv[0] === only)) {
      const active = w.modes.filter((m) => modes[m]);
      const results: Record<string, Run[]> = Object.fromEntries(active.map((m) => [m, []]));
      for (let round = 0; round < ROUNDS; round++) for (const m of active) results[m].push(run(modes[m](w.argv)));
      const base = median(results.untraced.map((r) => r.elapsedMs));
      for (const m of active) {
        const el = results[m].map((r) => r.elapsedMs);
        const row: Row = {
          workload: w.name,
          mode: m,
          medianMs: median(el),
          minMs: Math.min(...el),
          maxMs: Math.max(...el),
          ratio: median(el) / base,
          cpuMs: median(results[m].map((r) => r.cpuMs)),
        };
        if (w.argv[0] === 'bulk') {
          const mib = Number(w.argv[1]);
          row.extra = `${(mib / (row.medianMs / 1000)).toFixed(0)} MiB/s`;
          if (m.startsWith('tracedump')) {
            const pkts = median(results[m].map((r) => Number(/(\d+) packets/.exec(r.stderr)?.[1] ?? NaN)));
            row.extra += `, ${((pkts / row.medianMs) * 1000).toFixed(0)} packets/s written`;
            row.extra += `, kernel drops ${results[m].map((r) => /(\d+) dropped by the kernel/.exec(r.stderr)?.[1] ?? '?').join('/')}`;
            const rss = results[m].map((r) => Number(/maxrss_kb (\d+)/.exec(r.stderr)?.[1] ?? NaN));
            if (rss.every(Number.isFinite)) row.extra += `, peak RSS ${(Math.max(...rss) / 1024).toFixed(0)} MiB`;
          }
          if (m === 'tcpdump')
            row.extra += `, kernel drops ${results[m].map((r) => /(\d+) packets? dropped by kernel/.exec(r.stderr)?.[1] ?? '?').join('/')}`;
        }
        if (w.argv[0] === 'connect') {
          const p50 = median(results[m].map((r) => r.p50Us ?? NaN));
          const p99 = median(results[m].map((r) => r.p99Us ?? NaN));
          const b50 = median(results.untraced.map((r) => r.p50Us ?? NaN));
          const b99 = median(results.untraced.map((r) => r.p99Us ?? NaN));
          row.extra = `connect() p50 ${p50.toFixed(1)} µs (+${(p50 - b50).toFixed(1)}), p99 ${p99.toFixed(1)} µs (+${(p99 - b99).toFixed(1)})`;
        }
        rows.push(row);
      }
    }
  } finally {
    stop();
    fs.rmSync(pcap, { force: true });
    fs.rmSync(bin, { force: true });
  }
  const lines = [
    `tracedump bench, ${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} vCPU, Linux ${os.release()}, ${ROUNDS} rounds (median, min-max of the workload's own loop)`,
    '| workload | mode | median ms | min-max ms | × untraced | CPU ms | notes |',
    '|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) => `| ${r.workload} | ${r.mode} | ${r.medianMs.toFixed(1)} | ${r.minMs.toFixed(1)}-${r.maxMs.toFixed(1)} | ${r.ratio.toFixed(3)} | ${r.cpuMs.toFixed(0)} | ${r.extra ?? ''} |`,
    ),
  ];
  console.log(lines.join('\n'));
  const dir = path.join(ROOT, 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}.json`), JSON.stringify({ rows }, null, 2));
}

main().catch((err) => {
  console.error(`bench: ${(err as Error).message}`);
  process.exit(1);
});
