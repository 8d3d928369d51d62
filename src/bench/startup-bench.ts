// The whole-run cost of a short program, as a user sees it: `tracedump -w FILE -- true` beside
// Node's own start-up (`node -e 0`, the floor of any Node tool) and `strace -f true`; a curl of
// a local page beside curl alone and `strace -f curl`. Runs alternate between the commands, so
// that the machine's drift weighs on each alike. The local page comes from a Python server in a
// process of its own (the bench's own thread is blocked in its runs).
import { spawn, spawnSync } from 'node:child_process';

/** One command's whole-run times (ms), in run order. */
export interface StartupSeries {
  label: string;
  ms: number[];
}

export interface StartupRow {
  what: 'true' | 'curl' | 'cold' | 'curl-cold';
  series: StartupSeries[];
}

const PY = '/usr/bin/python3';

function timed(argv: string[]): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0], argv.slice(1), { stdio: 'ignore', timeout: 60_000 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`bench: ${argv.join(' ')} failed (${r.status ?? r.signal})`);
  return ms;
}

function alternate(commands: Array<[string, string[]]>, rounds: number, idleMs = 0): StartupSeries[] {
  const series = commands.map(([label]) => ({ label, ms: [] as number[] }));
  for (const [, argv] of commands) timed(argv); // a first run each, not counted: caches
  for (let r = 0; r < rounds; r++)
    commands.forEach(([, argv], i) => {
      if (idleMs) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, idleMs);
      series[i].ms.push(timed(argv));
    });
  return series;
}

/**
 * The same after the machine has been idle a few seconds: memory freed a while ago may have
 * to be backed again (a VM's host takes back free pages), which the ring's allocation pays
 * for, in proportion to its size. The ring is made in the background (native/capture.h): `true`
 * never waits for it, a curl's connect does.
 */
const IDLE_MS = 3000;

async function pageServer(port: number, dir: string): Promise<() => void> {
  const child = spawn(PY, ['-m', 'http.server', String(port), '--bind', '127.0.0.1', '--directory', dir], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    if (spawnSync('curl', ['-s', '-o', '/dev/null', `http://127.0.0.1:${port}/`]).status === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return () => child.kill('SIGKILL');
}

/** `cli`: bin/tracedump; `pcap`: where its captures go. strace and curl where installed. */
export async function startupBench(cli: string, pcap: string, port: number, dir: string, rounds: number): Promise<StartupRow[]> {
  const hasStrace = spawnSync('strace', ['-V']).status === 0;
  const hasCurl = spawnSync('curl', ['--version']).status === 0;
  const rows: StartupRow[] = [];
  rows.push({
    what: 'true',
    series: alternate(
      [
        ['node -e 0', [process.execPath, '-e', '0']],
        ['tracedump', [cli, '-q', '-w', pcap, '--', 'true']],
        ...(hasStrace ? ([['strace -f', ['strace', '-f', '-o', '/dev/null', 'true']]] as Array<[string, string[]]>) : []),
      ],
      rounds,
    ),
  });
  rows.push({
    what: 'cold',
    series: alternate(
      [
        ['node -e 0', [process.execPath, '-e', '0']],
        ['tracedump', [cli, '-q', '-w', pcap, '--', 'true']],
        ['tracedump -B 65536', [cli, '-q', '-B', '65536', '-w', pcap, '--', 'true']],
      ],
      Math.min(rounds, 5),
      IDLE_MS,
    ),
  });
  if (hasCurl) {
    const stop = await pageServer(port, dir);
    try {
      const url = `http://127.0.0.1:${port}/`;
      rows.push({
        what: 'curl',
        series: alternate(
          [
            ['curl', ['curl', '-s', '-o', '/dev/null', url]],
            ['tracedump', [cli, '-q', '-w', pcap, '--', 'curl', '-s', '-o', '/dev/null', url]],
            ...(hasStrace ? ([['strace -f', ['strace', '-f', '-o', '/dev/null', 'curl', '-s', '-o', '/dev/null', url]]] as Array<[string, string[]]>) : []),
          ],
          rounds,
        ),
      });
      rows.push({
        what: 'curl-cold',
        series: alternate(
          [
            ['curl', ['curl', '-s', '-o', '/dev/null', url]],
            ['tracedump', [cli, '-q', '-w', pcap, '--', 'curl', '-s', '-o', '/dev/null', url]],
            ['tracedump -B 65536', [cli, '-q', '-B', '65536', '-w', pcap, '--', 'curl', '-s', '-o', '/dev/null', url]],
          ],
          Math.min(rounds, 5),
          IDLE_MS,
        ),
      });
    } finally {
      stop();
    }
  }
  return rows;
}
