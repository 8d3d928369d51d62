// A multi-threaded process whose second thread calls execve: the kernel gives the exec'ing
// thread the process id and ends the other threads. tracedump must report the exec with the
// former thread id, keep following the new program under the same pid, and pass its status.
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { CLI } from './helpers/tracedump';

const PY = '/usr/bin/python3';

const program = `
import os, threading, time
def go():
    os.execv('${PY}', ['${PY}', '-c', '''
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print("listening", s.getsockname()[1], flush=True)
sys.exit(7)
'''])
threading.Thread(target=go).start()
time.sleep(30)
`;

t.test('exec from a non-leader thread', (t) => {
  const r = spawnSync(CLI, ['--events=json', '--', PY, '-c', program], { encoding: 'utf8', timeout: 30_000 });
  t.equal(r.status, 7, 'the new program\'s exit status is passed through');
  const port = Number(/listening (\d+)/.exec(r.stdout)?.[1]);
  t.ok(port > 0, 'the exec\'d program ran');
  const events = r.stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l));
  const root = events.find((e) => e.kind === 'exec')?.pid;
  const execs = events.filter((e) => e.kind === 'exec' && e.pid === root);
  t.equal(execs.length, 2, 'two execs of the launched process: python, then python again');
  const fromThread = execs[1];
  t.not(fromThread.formerTid, root, `the second exec came from another thread (${fromThread.formerTid})`);
  t.equal(fromThread.tid, root, 'and now runs as the process id');
  const spawnedThread = events.find((e) => e.kind === 'spawn' && e.thread && e.child === fromThread.formerTid);
  t.ok(spawnedThread, 'that thread was followed from its creation');
  const listen = events.filter((e) => e.kind === 'socket' && e.call === 'listen');
  t.equal(listen.length, 1, 'the new program\'s listen() is seen');
  t.equal(listen[0].pid, root, 'under the same pid');
  t.equal(listen[0].local.port, port, 'on the port it printed');
  const exit = events.find((e) => e.kind === 'exit' && e.tid === root);
  t.equal(exit?.code, 7, 'one exit of the process, with its code');
  t.end();
});
