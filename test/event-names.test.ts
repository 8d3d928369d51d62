// Events cross from the addon as JSON text (native/event_json.cc): names the program chose
// itself, with quotes, backslashes, control characters and non-ASCII bytes in them, must come
// out exactly as the kernel has them.
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { CLI } from './helpers/tracedump';

const PY = '/usr/bin/python3';

// a thread name of 15 bytes at most (the kernel's limit): a quote, a backslash, a tab, an é
const THREAD_NAME = 'n"\\\té';

const program = `
import ctypes, socket, threading
libc = ctypes.CDLL(None)
def go():
    libc.prctl(15, ${JSON.stringify(THREAD_NAME)}.encode())  # PR_SET_NAME: this thread's comm
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    print("bound", s.getsockname()[1], flush=True)
th = threading.Thread(target=go)
th.start()
th.join()
`;

t.test('a thread name with quotes, a backslash, a tab and UTF-8 reaches the events intact', (t) => {
  const r = spawnSync(CLI, ['--events=json', '--', PY, '-c', program], { encoding: 'utf8', timeout: 30_000 });
  t.equal(r.status, 0, `the program ran (${r.stderr.slice(-300)})`);
  const port = Number(/bound (\d+)/.exec(r.stdout)?.[1]);
  t.ok(port > 0, 'the thread bound a socket');
  const events = r.stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l));
  const bind = events.find((e) => e.kind === 'socket' && e.call === 'bind');
  t.ok(bind, 'the bind is reported');
  t.equal(bind?.threadName, THREAD_NAME, 'with the thread name as the kernel has it');
  t.equal(bind?.comm, 'python3', 'and the process name');
  t.equal(bind?.local?.port, port, 'on the port the program printed');
  t.equal(bind?.errno, undefined, 'a call that succeeded has no errno');
  t.end();
});
