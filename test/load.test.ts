// End-to-end under load: 1,000 sequential connections are all reported, no tracee is left,
// tracedump's own fd count does not grow with the calls, and it exits promptly.
import t from 'tap';
import { checkScenario } from './helpers/compare';
import { buildFixture, fdCount, socketEvents, traced } from './helpers/tracedump';

const { bin, dir } = buildFixture(t);

t.test('seq 1000: 1,000 sequential connections', async (t) => {
  const n = 1000;
  const holdMs = 1500; // the fixture stays alive after its last connection, for the fd sample
  let out = '';
  let fdsAtReady = -1;
  let fdsAtDone = -1;
  let closedAt = 0;
  const r = await traced([bin, 'seq', String(n), String(holdMs)], dir, {
    timeoutMs: 120_000,
    onStdout: (chunk, pid) => {
      out += chunk.toString();
      try {
        if (fdsAtReady < 0 && /^ready /m.test(out)) fdsAtReady = fdCount(pid);
        if (fdsAtDone < 0 && /^done /m.test(out)) fdsAtDone = fdCount(pid);
      } catch {
        /* tracedump gone: the counts stay -1 and the test fails below */
      }
    },
  }).finally(() => (closedAt = Date.now()));

  checkScenario(t, r, { status: 0, calls: n + 2, bin });
  const connects = socketEvents(r).filter((e) => e.call === 'connect');
  t.equal(connects.length, n, 'exactly 1,000 connect events');
  t.equal(new Set(connects.map((e) => e.local?.port)).size, n, '1,000 distinct local ports');
  t.ok(
    connects.every((e) => e.result === 0),
    'every connect had an exit stop and succeeded',
  );

  t.ok(fdsAtReady > 0 && fdsAtDone > 0, `tracedump fd counts sampled (${fdsAtReady}, ${fdsAtDone})`);
  t.ok(fdsAtDone - fdsAtReady <= 8, `tracedump's fd count does not grow with the calls (${fdsAtReady} -> ${fdsAtDone})`);

  const rootExit = r.events.find((e) => e.kind === 'exit' && e.pid === r.record[0]?.pid && e.tid === e.pid);
  t.ok(rootExit?.time, 'the exit event has a time');
  const lag = closedAt - (rootExit?.time ?? 0);
  t.ok(lag >= 0 && lag < 2000, `tracedump exited promptly after the command (${lag.toFixed(0)} ms)`);
  const done = /^done (\d+)/m.exec(r.stdout.toString());
  t.ok(done, 'the fixture finished its loop');
});
