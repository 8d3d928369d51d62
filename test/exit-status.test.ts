// End-to-end: tracedump exits with the command's status (128+N for signal N), 127 for a
// command not found, 126 for one that cannot be executed.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { buildFixture, leftovers, pidsOf, traced } from './helpers/tracedump';

const { bin, dir } = buildFixture(t);

const rootExit = (r: Awaited<ReturnType<typeof traced>>) =>
  r.events.find((e) => e.kind === 'exit' && e.tid === e.pid && r.events.some((x) => x.kind === 'exec' && x.pid === e.pid && x.exe === bin));

t.test('exit 7', async (t) => {
  const r = await traced([bin, 'exit', '7'], dir);
  t.notOk(r.timedOut);
  t.equal(r.status, 7, 'status 7');
  t.match(rootExit(r), { code: 7, signal: null, core: false }, 'exit event');
  t.equal(r.otherStderr, '', 'nothing else on stderr');
});

t.test('exit 0', async (t) => {
  const r = await traced([bin, 'exit', '0'], dir);
  t.equal(r.status, 0, 'status 0');
});

for (const [sig, name] of [
  [15, 'SIGTERM'],
  [9, 'SIGKILL'],
  [11, 'SIGSEGV'],
] as const) {
  t.test(`kill-self ${name} -> ${128 + sig}`, async (t) => {
    const r = await traced([bin, 'kill-self', String(sig)], dir);
    t.notOk(r.timedOut);
    t.equal(r.status, 128 + sig, `status ${128 + sig}`);
    t.equal(r.killedBy, null, 'tracedump itself exits normally');
    t.match(rootExit(r), { code: null, signal: sig, core: false }, 'exit event names the signal');
    t.same(leftovers(bin, pidsOf(r)), [], 'no tracee left');
  });
}

t.test('killed by SIGTERM from outside -> 143', async (t) => {
  let out = '';
  let sent = false;
  const r = await traced([bin, 'sleep', '20000'], dir, {
    timeoutMs: 15_000,
    onStdout: (chunk) => {
      out += chunk.toString();
      const m = /pid (\d+)/.exec(out);
      if (m && !sent) {
        sent = true;
        setTimeout(() => process.kill(Number(m[1]), 'SIGTERM'), 200);
      }
    },
  });
  t.notOk(r.timedOut, 'tracedump ended after the command was killed');
  t.ok(sent, 'the command printed its pid');
  t.equal(r.status, 143, 'status 143');
  t.ok(r.elapsedMs < 10_000, `ended promptly (${r.elapsedMs} ms)`);
  t.match(rootExit(r), { code: null, signal: 15 }, 'exit event names SIGTERM');
});

t.test('command not found -> 127', async (t) => {
  const name = 'tracedump-no-such-command-7f3a';
  const r = await traced([name, 'arg'], dir);
  t.notOk(r.timedOut);
  t.equal(r.status, 127, 'bare name not on PATH: 127');
  t.match(r.otherStderr + JSON.stringify(r.events), name, 'a message names the command');
  t.ok(r.otherStderr.includes(name), 'the message is on stderr as text');

  const abs = path.join(dir, 'no', 'such', 'file');
  const r2 = await traced([abs], dir);
  t.equal(r2.status, 127, 'missing absolute path: 127');
  t.ok(r2.otherStderr.includes(abs), 'the message names the path');
});

t.test('not executable -> 126', async (t) => {
  const file = path.join(dir, 'not-executable.sh');
  fs.writeFileSync(file, '#!/bin/sh\necho should not run\n', { mode: 0o644 });
  const r = await traced([file], dir);
  t.notOk(r.timedOut);
  t.equal(r.status, 126, 'a file without x permission: 126');
  t.equal(r.stdout.length, 0, 'it did not run');
  t.not(r.otherStderr, '', 'a message on stderr');

  const r2 = await traced([dir], dir);
  t.equal(r2.status, 126, 'a directory: 126');
});
