// The command runs as it would without tracedump: the same argument bytes, the same
// environment (bytes and order, NODE_OPTIONS included, nothing added), the same open
// descriptors at the same numbers, and none of tracedump's own. Compared with the command run
// directly, from the same caller.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { CLI } from './helpers/tracedump';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tracedump-untouched-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

/**
 * What the command writes on stdout when bash runs `${setup}; ${caller} [tracedump ...] command`:
 * directly, and under tracedump.
 */
function both(setup: string, caller: string, command: string, tdArgs = '-q --no-tls-keys --linger 0') {
  const out = path.join(dir, 'x.pcap');
  const run = (traced: string) =>
    spawnSync('bash', ['--norc', '--noprofile', '-c', `${setup}\n${caller} ${traced}${command}`], {
      maxBuffer: 1 << 24,
      env: { PATH: process.env.PATH },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  const direct = run('');
  const traced = run(`${CLI} ${tdArgs} -w ${out} -- `);
  return { direct: direct.stdout, traced: traced.stdout, stderr: traced.stderr.toString(), status: traced.status };
}

t.test('arguments reach the command byte for byte, not as decoded text', async (t) => {
  const r = both('', '', "/bin/printf '%s|' $'a\\xffb' $'\\xc3' '' 'plain' $'new\\nline'");
  t.equal(r.status, 0, r.stderr);
  t.same(r.traced, r.direct, 'the same bytes as without tracedump');
  t.ok(r.traced.includes(Buffer.from([0x61, 0xff, 0x62])), 'the 0xff byte is there');
});

t.test('the environment reaches the command exactly: bytes, order, nothing added', async (t) => {
  const vars = "B=1 A=2 Z=$'\\xfe\\x01' NODE_OPTIONS='--max-old-space-size=64' UV_THREADPOOL_SIZE=3 OPENSSL_CONF=/x M='two\nlines'";
  const caller = `env -i ${vars} PATH="$PATH"`;
  const r = both('', caller, '/usr/bin/env -0');
  t.equal(r.status, 0, r.stderr);
  t.same(r.traced.toString('latin1').split('\0'), r.direct.toString('latin1').split('\0'), 'the same entries in the same order');
  t.notMatch(r.traced.toString('latin1'), /PWD=|TRACEDUMP_/, 'no PWD added, nothing of tracedump');
  // with TLS keys on, only the key log is added: SSLKEYLOGFILE at the end, NODE_OPTIONS in place
  const keyed = both('', caller, '/usr/bin/env -0', '-q --linger 0');
  const entries = keyed.traced.toString('latin1').split('\0').filter(Boolean);
  const want = r.direct.toString('latin1').split('\0').filter(Boolean);
  t.equal(entries.length, want.length + 1, 'one entry more');
  t.match(entries[entries.length - 1], /^SSLKEYLOGFILE=\/tmp\/tracedump-tls-/, 'SSLKEYLOGFILE, last');
  const i = want.findIndex((e) => e.startsWith('NODE_OPTIONS='));
  t.match(entries[i], /^NODE_OPTIONS=--max-old-space-size=64 --tls-keylog=\S+$/, 'NODE_OPTIONS in its place, the key log after the options given');
  entries.splice(i, 1);
  want.splice(i, 1);
  t.same(entries.slice(0, -1), want, 'every other entry as given');
});

t.test('descriptors the caller gave tracedump reach the command at the same numbers, and none of its own', async (t) => {
  const file = path.join(dir, 'in.txt');
  fs.writeFileSync(file, 'from fd 3\n');
  const sink = path.join(dir, 'out7.txt');
  // what the command has open: fd -> target, without the listing's own directory
  const list = `/usr/bin/python3 -c "import os; fds = os.listdir('/proc/self/fd'); print(sorted((int(f), os.readlink('/proc/self/fd/' + f)) for f in fds if os.path.exists('/proc/self/fd/' + f) and not os.readlink('/proc/self/fd/' + f).startswith('/proc/')))"`;
  const setup = `exec 3<${file} 7>>${sink} 12</dev/null`;
  const r = both(setup, '', `sh -c 'cat <&3; echo via-7 >&7; ${list.replace(/'/g, `'\\''`)}'`);
  t.equal(r.status, 0, r.stderr);
  t.match(r.traced.toString(), /^from fd 3\n/, 'fd 3 reads');
  t.equal(fs.readFileSync(sink, 'utf8'), 'via-7\nvia-7\n', 'fd 7 writes (directly, then under tracedump)');
  const fdsOf = (b: Buffer) => b.toString().trim().split('\n').pop();
  // stdout and stderr are pipes (sockets) either way: compare everything but their inodes
  const norm = (s: string | undefined) => s?.replace(/(pipe|socket):\[\d+\]/g, '$1');
  t.equal(norm(fdsOf(r.traced)), norm(fdsOf(r.direct)), `the same descriptors: ${fdsOf(r.traced)}`);
});
