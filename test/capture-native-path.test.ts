// The native path on real traffic, against an oracle tcpdump: the same scenario with the
// native path off and on (TRACEDUMP_NATIVE_PATH), each exact (recall, precision, whole
// connections), and with it on, most packets written by it. The other capture tests run in
// check mode (test/helpers/tracedump.ts): there the pipeline judges and encodes each native
// record again, and any difference fails the run.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { FLOWS, PY, captureScenario, checkCapture, noLeftovers, runFlows } from './helpers/capture';

const BYTES = 20_000_000;

for (const mode of ['off', 'on'] as const)
  t.test(`native path ${mode}: 20 MB and 30 short connections beside an untraced transfer to the same server`, async (t) => {
    const before = process.env.TRACEDUMP_NATIVE_PATH;
    process.env.TRACEDUMP_NATIVE_PATH = mode;
    t.teardown(() => void (before === undefined ? delete process.env.TRACEDUMP_NATIVE_PATH : (process.env.TRACEDUMP_NATIVE_PATH = before)));
    const sc = await captureScenario(t, {
      servers: [
        ['serve-tcp', '127.0.0.1', 0, 0, 'sink'],
        ['serve-tcp', '127.0.0.1', 0, 0, 'http'],
      ],
      oracle: { snaplen: 128, bufferKiB: 262144 },
      tdArgs: (_ports, dir) => ['-B', '262144', '--summary-json', path.join(dir, 'summary.json')],
      command: ([sink, http]) => ['sh', '-c', `${PY} ${FLOWS} tcp-bulk 127.0.0.1 ${sink} ${BYTES} && ${PY} ${FLOWS} tcp-get 127.0.0.1 ${http} 30`],
      others: { start: ([sink], record) => [runFlows(t, ['tcp-bulk', '127.0.0.1', sink, BYTES / 4], { record })] },
      timeoutMs: 120_000,
    });
    t.equal(sc.run.status, 0, `the program succeeded (${sc.run.stderr.slice(-300)})`);
    t.equal(sc.traced.length, 31, 'the transfer and the 30 connections recorded');
    checkCapture(t, {
      tdFile: sc.out,
      oracleFile: sc.oracle.file,
      oracleStats: sc.oracle.stats,
      run: sc.run,
      traced: sc.traced,
      others: sc.others,
      prefix: 96,
      oracleMayDrop: true,
      tcpConnections: 31,
    });
    const s = JSON.parse(fs.readFileSync(path.join(sc.dir, 'summary.json'), 'utf8')) as Record<string, number>;
    t.equal(s.native_path_mismatches, 0, 'no check failed');
    if (mode === 'off') t.equal(s.packets_native_path, 0, 'the native path wrote nothing');
    else t.ok(s.packets_native_path > s.packets_written * 0.8, `the native path wrote ${s.packets_native_path} of ${s.packets_written} packets`);
  });

noLeftovers(t);
