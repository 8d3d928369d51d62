// End-to-end: the command's stdout and stderr pass through byte for byte, and its stdio fds
// have the same O_NONBLOCK state as when it runs without tracedump.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { type StdioOptions, spawn } from 'node:child_process';
import { CLI, buildFixture, direct, traced } from './helpers/tracedump';

const { bin, dir } = buildFixture(t);
const KIB = 256;

/** What `netcalls stdio KIB` writes on stdout after its first line. */
function expectedBody(kib: number): Buffer {
  const b = Buffer.alloc(kib * 1024 + 10);
  for (let k = 0; k < kib; k++) for (let i = 0; i < 1024; i++) b[k * 1024 + i] = (i * 7 + k) & 0xff;
  b.write('STDOUT-END', kib * 1024, 'latin1');
  return b;
}
const EXPECTED_STDERR = 'stderr line one\nstderr line two \u00e9\n';

function splitStdout(buf: Buffer): { line: string; body: Buffer } {
  const nl = buf.indexOf(0x0a);
  return { line: buf.subarray(0, nl).toString(), body: buf.subarray(nl + 1) };
}

t.test('stdio pipes: bytes and O_NONBLOCK as without tracedump', async (t) => {
  const stdio: StdioOptions = ['pipe', 'pipe', 'pipe'];
  const plain = await direct([bin, 'stdio', String(KIB)], dir, { stdio });
  const r = await traced([bin, 'stdio', String(KIB)], dir, { stdio });
  t.equal(plain.status, 0, 'direct run ok');
  t.match(splitStdout(plain.stdout).line, /^nonblock 0=\d 1=\d 2=\d$/, 'direct run printed its fd state');
  t.equal(r.status, 0, 'traced run exits 0 (write errors would exit 9)');
  const got = splitStdout(r.stdout);
  t.equal(got.line, splitStdout(plain.stdout).line, 'same O_NONBLOCK state of fds 0,1,2 as without tracedump');
  t.ok(got.body.equals(expectedBody(KIB)), `stdout byte-exact (${got.body.length} bytes)`);
  t.equal(r.otherStderr, EXPECTED_STDERR, 'stderr byte-exact apart from JSON event lines');
  t.equal(plain.stderr.toString(), EXPECTED_STDERR, 'direct stderr (sanity)');
});

t.test('stdin /dev/null, stdout a file, stderr a pipe', async (t) => {
  const run = async (traceIt: boolean) => {
    const outFile = path.join(dir, `stdout-${traceIt}.bin`);
    const inFd = fs.openSync('/dev/null', 'r');
    const outFd = fs.openSync(outFile, 'w');
    try {
      const stdio: StdioOptions = [inFd, outFd, 'pipe'];
      const r = traceIt
        ? await traced([bin, 'stdio', String(KIB)], dir, { stdio })
        : await direct([bin, 'stdio', String(KIB)], dir, { stdio });
      return { r, out: fs.readFileSync(outFile) };
    } finally {
      fs.closeSync(inFd);
      fs.closeSync(outFd);
    }
  };
  const plain = await run(false);
  const traced_ = await run(true);
  t.equal(traced_.r.status, 0, 'traced run exits 0');
  const got = splitStdout(traced_.out);
  t.equal(got.line, splitStdout(plain.out).line, 'same O_NONBLOCK state as without tracedump');
  t.equal(got.line, 'nonblock 0=0 1=0 2=0', 'files and /dev/null are blocking, and all three fds are open');
  t.ok(got.body.equals(expectedBody(KIB)), 'file content byte-exact');
  t.equal(traced_.r.otherStderr, EXPECTED_STDERR, 'stderr byte-exact apart from JSON event lines');
});

t.test('stdin is passed through', async (t) => {
  // `sh -c 'cat; ...'` under tracedump reads what the test writes on its stdin
  const child = spawn(CLI, ['--events=json', '--', 'sh', '-c', 'cat; echo END'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const chunks: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => chunks.push(c));
  child.stdin.end('line from stdin\n');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  const status = await new Promise<number | null>((res) => child.on('close', (c) => res(c)));
  clearTimeout(timer);
  t.equal(status, 0, 'exit 0');
  t.equal(Buffer.concat(chunks).toString(), 'line from stdin\nEND\n', 'stdin reached the command');
});
