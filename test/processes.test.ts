// End-to-end: socket calls of threads, forked children, exec chains (sh -c, the pyenv python3
// shim) are all reported; stop and termination signals behave as without tracedump.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { checkScenario } from './helpers/compare';
import { buildFixture, leftovers, pidsOf, socketEvents, traced } from './helpers/tracedump';

const { bin, dir } = buildFixture(t);

t.test('threads 16: simultaneous connects from 16 threads', async (t) => {
  const n = 16;
  const r = await traced([bin, 'threads', String(n)], dir);
  checkScenario(t, r, { status: 0, calls: n + 2, bin });
  const connects = socketEvents(r).filter((e) => e.call === 'connect');
  t.equal(new Set(connects.map((e) => e.tid)).size, n, 'one connect per thread, each with its own tid');
  t.ok(connects.every((e) => e.pid === r.record[0]?.pid && e.tid !== e.pid), 'thread events carry the tgid as pid');
  const spawns = r.events.filter((e) => e.kind === 'spawn' && e.thread === true);
  t.equal(spawns.length, n + 1, 'a thread spawn event per thread (16 connecting + the accept thread)');
});

t.test('fork 8: simultaneous connects from 8 children', async (t) => {
  const n = 8;
  const r = await traced([bin, 'fork', String(n)], dir);
  checkScenario(t, r, { status: 0, calls: n + 2, bin });
  t.match(r.stdout.toString(), /children 8 failed 0/, 'every child succeeded');
  const parent = r.record[0]?.pid;
  const kids = new Set(r.record.filter((x) => x.pid !== parent).map((x) => x.pid));
  t.equal(kids.size, n, 'the record holds 8 child processes');
  const forks = r.events.filter((e) => e.kind === 'spawn' && e.thread === false && e.pid === parent);
  t.same(
    forks.map((e) => e.child).sort(),
    [...kids].sort(),
    'a process spawn event for each child, from the parent',
  );
});

t.test('sh -c exec chain', async (t) => {
  const script = `${bin} tcp && ${bin} udp-sendto && exec ${bin} sendmsg`;
  const r = await traced(['sh', '-c', script], dir);
  checkScenario(t, r, { status: 0, calls: 4 + 5 + 3, bin });
  const pids = [...new Set(r.record.map((x) => x.pid))];
  t.equal(pids.length, 3, 'three fixture processes recorded');
  const execPids = r.events.filter((e) => e.kind === 'exec' && e.exe === bin).map((e) => e.pid);
  t.same([...execPids].sort(), [...pids].sort(), 'an exec event for each of them, naming the fixture');
  const shExec = r.events.find((e) => e.kind === 'exec' && e.exe !== bin);
  t.ok(shExec, 'the shell exec itself is reported');
});

t.test('python3 through the pyenv shim', async (t) => {
  const shims = '/root/.pyenv/shims';
  if (!fs.existsSync(path.join(shims, 'python3'))) {
    if (process.env.CI === 'true') t.fail('no pyenv shim at /root/.pyenv/shims/python3');
    else t.plan(0, 'no pyenv shim at /root/.pyenv/shims/python3');
    return;
  }
  const script = [
    'import os, socket, sys',
    'l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(4)',
    'c = socket.socket(); c.connect(l.getsockname())',
    'a, _ = l.accept()',
    'print(os.getpid(), l.getsockname()[1], c.getsockname()[1], flush=True)',
    'sys.exit(5)',
  ].join('\n');
  const env = { PATH: `${shims}:${process.env.PATH}` };
  const r = await traced(['python3', '-c', script], dir, { env, timeoutMs: 60_000 });
  t.notOk(r.timedOut, 'ended within the time limit');
  t.equal(r.status, 5, 'the interpreter exit status is passed through');
  t.equal(r.otherStderr, '', 'no stderr besides events');
  const m = /^(\d+) (\d+) (\d+)$/m.exec(r.stdout.toString());
  t.ok(m, 'python printed its pid and ports');
  if (!m) return;
  const [pid, lport, cport] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const execs = r.events.filter((e) => e.kind === 'exec');
  t.ok(execs.length >= 5, `the shim's exec chain is followed (${execs.length} execs)`);
  t.ok(
    execs.some((e) => e.pid === pid && /python3(\.\d+)?$/.test(String(e.exe))),
    'an exec event for the interpreter process',
  );
  const got = socketEvents(r).map((e) => ({
    pid: e.pid,
    call: e.call,
    proto: e.proto,
    family: e.family,
    local: e.local?.port,
    remotes: e.remotes,
  }));
  t.same(
    got,
    [
      { pid, call: 'bind', proto: 'tcp', family: 4, local: lport, remotes: [] },
      { pid, call: 'listen', proto: 'tcp', family: 4, local: lport, remotes: [] },
      { pid, call: 'connect', proto: 'tcp', family: 4, local: cport, remotes: [{ address: '127.0.0.1', port: lport }] },
    ],
    'exactly the interpreter bind, listen and connect are reported',
  );
  const connect = socketEvents(r).find((e) => e.call === 'connect');
  t.equal(connect?.result, 0, 'connect result');
  t.same(leftovers('/nonexistent', pidsOf(r)), [], 'no tracee is left behind');
});

t.test('sigstop: raise(SIGSTOP), a child sends SIGCONT after 200 ms', async (t) => {
  const r = await traced([bin, 'sigstop'], dir);
  checkScenario(t, r, { status: 0, calls: 3, bin });
  const m = /stopped_ms (\d+)/.exec(r.stdout.toString());
  t.ok(m && Number(m[1]) >= 150, `the process really stayed stopped (${m?.[1]} ms)`);
});

t.test('sigstop ext: stays stopped until the test sends SIGCONT', async (t) => {
  let out = '';
  let state = '';
  let sent = false;
  const r = await traced([bin, 'sigstop', 'ext'], dir, {
    onStdout: (chunk) => {
      out += chunk.toString();
      const m = /stopping (\d+)/.exec(out);
      if (m && !sent) {
        sent = true;
        const pid = Number(m[1]);
        setTimeout(() => {
          try {
            state = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0];
          } catch {
            state = 'gone';
          }
          process.kill(pid, 'SIGCONT');
        }, 400);
      }
    },
  });
  checkScenario(t, r, { status: 0, calls: 3, bin });
  t.ok(state === 'T' || state === 't', `stopped 400 ms after SIGSTOP (state ${state})`);
  const m = /stopped_ms (\d+)/.exec(r.stdout.toString());
  t.ok(m && Number(m[1]) >= 350, `resumed only after SIGCONT (${m?.[1]} ms)`);
});

t.test('sigterm-handler: a child sends SIGTERM, the handler runs, exit 3', async (t) => {
  const r = await traced([bin, 'sigterm-handler'], dir);
  checkScenario(t, r, { status: 3, calls: 3, bin });
  t.match(r.stdout.toString(), /^handled$/m, 'the handler ran');
});

t.test('sigterm-handler ext: the test sends SIGTERM to the command', async (t) => {
  let out = '';
  let sent = false;
  const r = await traced([bin, 'sigterm-handler', 'ext'], dir, {
    onStdout: (chunk) => {
      out += chunk.toString();
      const m = /waiting (\d+)/.exec(out);
      if (m && !sent) {
        sent = true;
        setTimeout(() => process.kill(Number(m[1]), 'SIGTERM'), 100);
      }
    },
  });
  checkScenario(t, r, { status: 3, calls: 3, bin });
  t.match(r.stdout.toString(), /^handled$/m, 'the handler ran');
  const root = r.events.find((e) => e.kind === 'exit' && e.pid === r.record[0]?.pid && e.tid === e.pid);
  t.match(root, { code: 3, signal: null }, 'exit event: code 3');
});
