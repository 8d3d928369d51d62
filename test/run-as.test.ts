// Who a launched command runs as (`tracedump -w out.pcap -- CMD`, as root):
//  - under sudo (simulated: SUDO_UID/SUDO_GID/SUDO_USER/SUDO_COMMAND in tracedump's environment)
//    the command runs as the user who ran sudo: uid, gid and supplementary groups as `id USER`
//    reports them, HOME/USER/LOGNAME/SHELL from the passwd entry, no SUDO_* variable left; the
//    capture file belongs to that user (like tcpdump -Z), and the capture itself still works;
//  - -u NAME and -u UID pick another user, -u root keeps root even under sudo, an unknown user
//    is exit 125 with a clear message and the command does not run;
//  - a throwaway user with supplementary groups (useradd/groupadd, removed at teardown) gets
//    exactly those groups;
//  - the command's exit status is passed through; a script the user may not execute is 126;
//  - setuid and file-capability programs keep working (no no_new_privs): the system's
//    `passwd -S` (setuid root) and a small ping-like program (raw ICMP socket, echo to
//    127.0.0.1) built here, once setuid root and once with cap_net_raw+ep.
import { type ChildProcess, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import {
  PY,
  type SockRec,
  type TdRun,
  captureScenario,
  checkCapture,
  noLeftovers,
  runFlows,
  startTracedump,
  workDir,
} from './helpers/capture';

// tracedump's environment without any SUDO_* of the test runner itself (CI may run under sudo)
const BASE_ENV: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SUDO_')));

interface Account {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

function getent(db: 'passwd' | 'group', key: string): string[] {
  const r = spawnSync('getent', [db, key], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`getent ${db} ${key}: status ${r.status} ${r.stderr}`);
  return r.stdout.trim().split(':');
}

function account(key: string | number): Account {
  const f = getent('passwd', String(key));
  return { name: f[0], uid: Number(f[2]), gid: Number(f[3]), home: f[5], shell: f[6] };
}

/** `id NAME` and `id -G NAME` as run directly by root (getgrouplist). */
function idOf(name: string): { id: string; groups: number[] } {
  const a = spawnSync('id', [name], { encoding: 'utf8', timeout: 10_000 });
  const g = spawnSync('id', ['-G', name], { encoding: 'utf8', timeout: 10_000 });
  if (a.status !== 0 || g.status !== 0) throw new Error(`id ${name}: ${a.stderr}${g.stderr}`);
  return { id: a.stdout.trim(), groups: sortedNums(g.stdout) };
}

function sortedNums(s: string): number[] {
  return s
    .trim()
    .split(/\s+/)
    .filter((x) => x)
    .map(Number)
    .sort((a, b) => a - b);
}

function sudoEnv(a: Account): Record<string, string> {
  return {
    SUDO_UID: String(a.uid),
    SUDO_GID: String(a.gid),
    SUDO_USER: a.name,
    SUDO_COMMAND: '/usr/local/bin/tracedump -w out.pcap -- probe',
    SUDO_HOME: a.home,
  };
}

/** Every tracedump this file started: killed by pid at teardown if still running. */
const children = new Set<ChildProcess>();

/**
 * bin/tracedump TDARGS -- COMMAND in cwd, with BASE_ENV + env; bounded by timeoutMs (then
 * SIGKILL by pid), killed at teardown if it is still running.
 */
function td(
  t: Test,
  tdArgs: string[],
  command: string[],
  opts: { env?: Record<string, string>; cwd: string; timeoutMs?: number },
): Promise<TdRun> {
  const { child, done } = startTracedump(t, [...tdArgs, '--', ...command], {
    env: { ...BASE_ENV, ...(opts.env ?? {}) },
    cwd: opts.cwd,
    timeoutMs: opts.timeoutMs ?? 60_000,
  });
  children.add(child);
  return done.finally(() => children.delete(child));
}

/** A work dir nobody (and any other user) can enter and read: 0755, files 0644. */
function sharedDir(t: Test, tag: string): string {
  const dir = workDir(t, tag);
  fs.chmodSync(dir, 0o755);
  return dir;
}

function writeShared(file: string, text: string, mode = 0o644): void {
  fs.writeFileSync(file, text);
  fs.chmodSync(file, mode);
}

function owner(file: string): { uid: number; gid: number } {
  const st = fs.statSync(file);
  return { uid: st.uid, gid: st.gid };
}

// The probe: `id`, `id -G`, then the environment as JSON (one line each).
const PROBE = ['sh', '-c', `id; id -G; exec ${PY} -c 'import json, os; print("ENV " + json.dumps(dict(os.environ)))'`];

interface ProbeOut {
  id: string;
  groups: number[];
  env: Record<string, string>;
}

function parseProbe(stdout: string): ProbeOut | null {
  const lines = stdout.split('\n');
  const envLine = lines.find((l) => l.startsWith('ENV '));
  if (lines.length < 3 || !envLine) return null;
  return { id: lines[0].trim(), groups: sortedNums(lines[1]), env: JSON.parse(envLine.slice(4)) };
}

/** The command ran as `a`: same `id` and `id -G` as root's `id NAME` reports, passwd env. */
function checkIdentity(t: Test, p: ProbeOut | null, a: Account, what: string): void {
  t.ok(p, `${what}: the probe printed its identity and environment`);
  if (!p) return;
  const want = idOf(a.name);
  t.equal(p.id, want.id, `${what}: \`id\` in the command = \`id ${a.name}\``);
  t.same(p.groups, want.groups, `${what}: \`id -G\` in the command = \`id -G ${a.name}\` (getgrouplist)`);
}

function checkUserEnv(t: Test, env: Record<string, string>, a: Account, what: string): void {
  t.same(
    { HOME: env.HOME, USER: env.USER, LOGNAME: env.LOGNAME, SHELL: env.SHELL },
    { HOME: a.home, USER: a.name, LOGNAME: a.name, SHELL: a.shell },
    `${what}: HOME, USER, LOGNAME, SHELL from the passwd entry of ${a.name}`,
  );
}

const nobody = account('nobody');
const daemon = account('daemon');
const root = account('root');

t.test('under sudo: the command runs as the invoking user, the file is theirs', async (t) => {
  const dir = sharedDir(t, 'runas-sudo');
  const out = path.join(dir, 'out.pcap');
  const env = sudoEnv(nobody);
  const r = await td(t, ['-w', out], PROBE, { env, cwd: dir });
  t.notOk(r.timedOut, 'tracedump ended within its time limit');
  t.equal(r.status, 0, `the probe succeeded (${r.stderr.slice(-300)})`);
  const p = parseProbe(r.stdout);
  checkIdentity(t, p, nobody, 'SUDO_UID=nobody');
  if (p) {
    checkUserEnv(t, p.env, nobody, 'SUDO_UID=nobody');
    t.same(
      Object.keys(p.env).filter((k) => k.startsWith('SUDO_')),
      [],
      'no SUDO_* variable is left in the command environment',
    );
    t.equal(p.env.PATH, BASE_ENV.PATH, 'the rest of the environment (PATH) is passed on');
  }
  t.same(owner(out), { uid: nobody.uid, gid: nobody.gid }, 'the capture file belongs to nobody (uid and primary gid)');
  t.equal(fs.statSync(out).mode & 0o777, 0o644, 'the capture file is mode 0644');
  t.ok(r.summary, `summary line (${r.summary?.line})`);
});

t.test('under sudo: the capture of the command (as the user) is whole and exact', async (t) => {
  const dir = sharedDir(t, 'runas-capture');
  // the client prints its identity, then one record per connection (the helpers' format)
  const client = path.join(dir, 'client.py');
  writeShared(
    client,
    `import json, os, socket, sys, threading, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
print('ID ' + json.dumps({'uid': os.getuid(), 'euid': os.geteuid(), 'gid': os.getgid()}), flush=True)
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(20)
    t0 = time.time() * 1000
    s.connect((host, port))
    local, peer = s.getsockname(), s.getpeername()
    s.sendall(b'GET /as-%d/%d HTTP/1.0\\r\\nHost: test\\r\\n\\r\\n' % (os.getuid(), i))
    data = b''
    while True:
        c = s.recv(65536)
        if not c:
            break
        data += c
    s.close()
    if not data.startswith(b'HTTP/1.0 200'):
        sys.exit('bad answer %r' % data[:40])
    print('REC ' + json.dumps({'pid': os.getpid(), 'tid': threading.get_native_id(), 'role': 'client', 'proto': 'tcp',
          'local': {'address': local[0], 'port': local[1]}, 'remote': {'address': peer[0], 'port': peer[1]},
          't0': t0, 't1': time.time() * 1000, 'n': 1}), flush=True)
print('done', n, flush=True)
`,
  );
  const n = 5;
  const sc = await captureScenario(t, {
    dir,
    servers: [['serve-tcp', '127.0.0.1', 0]],
    // an untraced root client talks to the same server at the same time
    others: { start: ([port], record) => [runFlows(t, ['tcp-get', '127.0.0.1', port, 20], { record, gapMs: 20 })] },
    // the command runs as the sudo user, who writes the file into the shared dir
    run: ({ out, ports: [port] }) => td(t, ['-w', out], [PY, client, '127.0.0.1', String(port), String(n)], { env: sudoEnv(nobody), cwd: dir }),
  });
  const { run, out } = sc;
  const noise = sc.othersDone[0] ?? { code: null, err: 'not started' };
  t.equal(noise.code, 0, `the noise client succeeded (${noise.err.slice(-200)})`);
  t.equal(run.status, 0, `the client succeeded (${run.stderr.slice(-300)})`);
  const idLine = /^ID (.*)$/m.exec(run.stdout);
  t.same(idLine && JSON.parse(idLine[1]), { uid: nobody.uid, euid: nobody.uid, gid: nobody.gid }, 'the client ran as nobody');
  const traced: SockRec[] = run.stdout
    .split('\n')
    .filter((l) => l.startsWith('REC '))
    .map((l) => ({ ...(JSON.parse(l.slice(4)) as Omit<SockRec, 'owner'>), owner: 'traced' as const }));
  t.equal(traced.length, n, `the client recorded its ${n} connections`);
  t.same(owner(out), { uid: nobody.uid, gid: nobody.gid }, 'the capture file belongs to nobody');
  checkCapture(t, {
    tdFile: out,
    oracleFile: sc.oracle.file,
    oracleStats: sc.oracle.stats,
    run,
    traced,
    others: sc.others,
    tcpConnections: n,
  });
});

t.test('-u USER picks another user, by name or by uid', async (t) => {
  const dir = sharedDir(t, 'runas-u');
  // -u daemon wins over sudo's user
  {
    const out = path.join(dir, 'daemon.pcap');
    const r = await td(t, ['-q', '-w', out, '-u', 'daemon'], PROBE, { env: sudoEnv(nobody), cwd: dir });
    t.equal(r.status, 0, `-u daemon: the probe succeeded (${r.stderr.slice(-300)})`);
    const p = parseProbe(r.stdout);
    checkIdentity(t, p, daemon, '-u daemon (under sudo as nobody)');
    if (p) {
      checkUserEnv(t, p.env, daemon, '-u daemon');
      t.same(
        Object.keys(p.env).filter((k) => k.startsWith('SUDO_')),
        [],
        '-u daemon: no SUDO_* variable left',
      );
    }
    t.same(owner(out), { uid: daemon.uid, gid: daemon.gid }, '-u daemon: the capture file belongs to daemon');
    t.equal(r.stderr, '', '-u daemon -q: nothing on stderr');
  }
  // numeric: -u 1, plain root (no sudo)
  {
    const one = account(1);
    const out = path.join(dir, 'one.pcap');
    const r = await td(t, ['-q', '-w', out, '-u', '1'], PROBE, { cwd: dir });
    t.equal(r.status, 0, `-u 1: the probe succeeded (${r.stderr.slice(-300)})`);
    const p = parseProbe(r.stdout);
    checkIdentity(t, p, one, `-u 1 (${one.name})`);
    if (p) checkUserEnv(t, p.env, one, '-u 1');
    t.same(owner(out), { uid: 1, gid: one.gid }, `-u 1: the capture file belongs to uid 1 (${one.name})`);
  }
});

t.test('-u root keeps root even under sudo', async (t) => {
  const dir = sharedDir(t, 'runas-root');
  const out = path.join(dir, 'root.pcap');
  const r = await td(t, ['-q', '-w', out, '-u', 'root'], PROBE, { env: sudoEnv(nobody), cwd: dir });
  t.equal(r.status, 0, `the probe succeeded (${r.stderr.slice(-300)})`);
  const p = parseProbe(r.stdout);
  checkIdentity(t, p, root, '-u root (under sudo as nobody)');
  t.same(owner(out), { uid: 0, gid: 0 }, 'the capture file belongs to root');
});

t.test('-u no-such-user: exit 125, a clear message, the command does not run', async (t) => {
  const dir = sharedDir(t, 'runas-nouser');
  const marker = path.join(dir, 'ran');
  const out = path.join(dir, 'x.pcap');
  for (const env of [{}, sudoEnv(nobody)]) {
    const r = await td(t, ['-w', out, '-u', 'no-such-user-xyz'], ['touch', marker], { env, cwd: dir });
    const how = Object.keys(env).length ? ' (under sudo)' : '';
    t.equal(r.status, 125, `exit 125${how}`);
    t.match(r.stderr, /-u no-such-user-xyz: no such user/, `the message names the option and the user${how}`);
    t.notOk(fs.existsSync(marker), `the command did not run${how}`);
    t.notOk(fs.existsSync(out), `no capture file was made${how}`);
  }
});

t.test('a user with supplementary groups gets exactly them', async (t) => {
  const dir = sharedDir(t, 'runas-groups');
  const tag = `${process.pid % 100000}${Math.floor(Math.random() * 900 + 100)}`;
  const user = `tdru${tag}`;
  const groups = [`tdrp${tag}`, `tdra${tag}`, `tdrb${tag}`]; // primary, then two supplementary
  t.teardown(() => {
    spawnSync('userdel', [user], { timeout: 30_000 });
    for (const g of groups) spawnSync('groupdel', [g], { timeout: 30_000 });
  });
  for (const g of groups) {
    const r = spawnSync('groupadd', [g], { encoding: 'utf8', timeout: 30_000 });
    if (r.status !== 0) throw new Error(`groupadd ${g}: ${r.stderr}`);
  }
  const ua = spawnSync('useradd', ['-M', '-N', '-g', groups[0], '-G', groups.slice(1).join(','), '-d', '/nonexistent', '-s', '/bin/sh', user], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  if (ua.status !== 0) throw new Error(`useradd ${user}: ${ua.stderr}`);
  const a = account(user);
  const gids = groups.map((g) => Number(getent('group', g)[2]));
  t.equal(a.gid, gids[0], 'the throwaway user has its primary group');
  const want = [...gids].sort((x, y) => x - y);
  t.same(idOf(user).groups, want, `id -G ${user} (root, directly) = the three groups`);

  for (const [how, args, env] of [
    [`-u ${user}`, ['-u', user], {}],
    [`under sudo as ${user}`, [], sudoEnv(a)],
  ] as const) {
    const out = path.join(dir, `${args.length ? 'u' : 'sudo'}.pcap`);
    const r = await td(t, ['-q', '-w', out, ...args], PROBE, { env, cwd: dir });
    t.equal(r.status, 0, `${how}: the probe succeeded (${r.stderr.slice(-300)})`);
    const p = parseProbe(r.stdout);
    checkIdentity(t, p, a, how);
    t.same(p?.groups, want, `${how}: the command's id -G holds the primary and both supplementary groups`);
    if (p) checkUserEnv(t, p.env, a, how);
    t.same(owner(out), { uid: a.uid, gid: a.gid }, `${how}: the capture file belongs to ${user} and its primary group`);
  }
});

t.test('exit status as another user: passed through; 126 for a script the user may not run', async (t) => {
  const dir = sharedDir(t, 'runas-status');
  const out = path.join(dir, 'x.pcap');
  {
    const r = await td(t, ['-q', '-w', out, '-u', 'daemon'], ['sh', '-c', 'test "$(id -u)" = 1 && exit 42'], { cwd: dir });
    t.equal(r.status, 42, '-u daemon: exit 42 is passed through');
  }
  {
    const r = await td(t, ['-q', '-w', out], ['sh', '-c', `test "$(id -u)" = ${nobody.uid} && kill -TERM $$`], {
      env: sudoEnv(nobody),
      cwd: dir,
    });
    t.equal(r.status, 143, 'under sudo: killed by SIGTERM -> 128+15');
  }
  {
    const r = await td(t, ['-q', '-w', out, '-u', 'daemon'], ['no-such-command-xyz'], { cwd: dir });
    t.equal(r.status, 127, '-u daemon: a command not found is 127');
  }
  // a root-owned 0700 script: root may run it, nobody may not
  const script = path.join(dir, 'private.sh');
  writeShared(script, '#!/bin/sh\necho secret-output\n', 0o700);
  {
    const r = await td(t, ['-q', '-w', out], [script], { cwd: dir });
    t.equal(r.status, 0, 'control: root runs the 0700 script');
    t.match(r.stdout, /secret-output/, 'control: and it prints');
  }
  {
    const r = await td(t, ['-q', '-w', out], [script], { env: sudoEnv(nobody), cwd: dir });
    t.equal(r.status, 126, 'under sudo as nobody: the 0700 root script cannot be executed: 126');
    t.match(r.stderr, /private\.sh: Permission denied/, 'the message names the script and says why');
    t.notMatch(r.stdout, /secret-output/, 'the script did not run');
  }
});

// A ping of 127.0.0.1 with a raw ICMP socket, as ping does it: open the socket with the
// privilege the file gives (setuid root or cap_net_raw), drop to the real uid, echo, reply.
const MINI_PING = String.raw`
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static unsigned short csum(const void *p, int n) {
  const unsigned short *w = p;
  unsigned long s = 0;
  for (; n > 1; n -= 2) s += *w++;
  if (n) s += *(const unsigned char *)w;
  s = (s >> 16) + (s & 0xffff);
  s += s >> 16;
  return (unsigned short)~s;
}

int main(void) {
  uid_t ruid = getuid(), euid = geteuid();
  int s = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
  int err = errno;
  if (setuid(ruid) < 0) { perror("setuid"); return 3; }
  printf("ruid %d euid %d\n", (int)ruid, (int)euid);
  fflush(stdout);
  if (s < 0) { printf("socket: %s\n", strerror(err)); return 2; }
  struct icmphdr h;
  memset(&h, 0, sizeof h);
  h.type = ICMP_ECHO;
  h.un.echo.id = htons(getpid() & 0xffff);
  h.un.echo.sequence = htons(1);
  h.checksum = csum(&h, sizeof h);
  struct sockaddr_in to;
  memset(&to, 0, sizeof to);
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (sendto(s, &h, sizeof h, 0, (struct sockaddr *)&to, sizeof to) < 0) { perror("sendto"); return 4; }
  for (int i = 0; i < 50; i++) {
    struct pollfd pfd = {s, POLLIN, 0};
    if (poll(&pfd, 1, 100) <= 0) continue;
    unsigned char buf[1500];
    ssize_t n = recv(s, buf, sizeof buf, 0);
    if (n < 20) continue;
    int ihl = (buf[0] & 15) * 4;
    struct icmphdr *r = (struct icmphdr *)(buf + ihl);
    if (n >= ihl + 8 && r->type == ICMP_ECHOREPLY && r->un.echo.id == h.un.echo.id) {
      printf("reply from 127.0.0.1\n");
      return 0;
    }
  }
  printf("no reply\n");
  return 5;
}
`;

t.test('setuid and file-capability programs still work under tracedump', async (t) => {
  const dir = sharedDir(t, 'runas-setuid');
  const out = path.join(dir, 'x.pcap');
  const env = sudoEnv(nobody);

  {
    const r = await td(t, ['-q', '-w', out], ['grep', '^NoNewPrivs:', '/proc/self/status'], { env, cwd: dir });
    t.equal(r.status, 0, 'grep ran');
    t.match(r.stdout, /^NoNewPrivs:\s+0$/m, 'the command (as nobody) runs without no_new_privs');
  }

  // the system's own setuid-root program: `passwd -S` reads /etc/shadow, which only works
  // when the setuid bit takes effect (without it: "nobody L never -1 -1 -1 -1" or an error)
  const passwd = '/usr/bin/passwd';
  const st = fs.existsSync(passwd) ? fs.statSync(passwd) : null;
  if (!st || st.uid !== 0 || !(st.mode & 0o4000)) {
    // nothing to run: this machine has no setuid-root passwd (the mini ping below still runs)
    t.ok(true, 'setuid passwd -S as nobody', { skip: `${passwd} is not a setuid-root program on this machine` });
  } else {
    const want = spawnSync(passwd, ['-S', nobody.name], { encoding: 'utf8', timeout: 10_000 });
    t.equal(want.status, 0, `control: passwd -S ${nobody.name} as root`);
    const r = await td(t, ['-q', '-w', out], [passwd, '-S'], { env, cwd: dir });
    t.equal(r.status, 0, `setuid passwd -S as nobody exits 0 (${r.stderr.slice(-200)})`);
    t.equal(r.stdout, want.stdout, 'setuid passwd -S as nobody read /etc/shadow: same line as root gets');
  }

  // the ping-like program, three copies: setuid root, cap_net_raw+ep, and a plain one
  const src = path.join(dir, 'miniping.c');
  fs.writeFileSync(src, MINI_PING);
  const plain = path.join(dir, 'miniping-plain');
  const cc = spawnSync('gcc', ['-O1', '-Wall', '-o', plain, src], { encoding: 'utf8', timeout: 60_000 });
  if (cc.status !== 0) throw new Error(`gcc: ${cc.stderr}`);
  fs.chmodSync(plain, 0o755);
  const suid = path.join(dir, 'miniping-suid');
  fs.copyFileSync(plain, suid);
  fs.chownSync(suid, 0, 0);
  fs.chmodSync(suid, 0o4755);
  const capped = path.join(dir, 'miniping-cap');
  fs.copyFileSync(plain, capped);
  fs.chmodSync(capped, 0o755);
  const sc = spawnSync('setcap', ['cap_net_raw+ep', capped], { encoding: 'utf8', timeout: 10_000 });
  if (sc.status !== 0) throw new Error(`setcap: ${sc.stderr}`);

  {
    const r = await td(t, ['-q', '-w', out], [plain], { env, cwd: dir });
    t.equal(r.status, 2, 'control: the plain copy as nobody cannot open a raw socket (exit 2)');
    t.match(r.stdout, /socket: Operation not permitted/, 'control: EPERM');
  }
  {
    const r = await td(t, ['-q', '-w', out], [suid], { env, cwd: dir });
    t.equal(r.status, 0, `setuid-root ping as nobody succeeds (${r.stdout.trim()} ${r.stderr.slice(-200)})`);
    t.match(r.stdout, new RegExp(`^ruid ${nobody.uid} euid 0$`, 'm'), 'it ran with euid 0 and real uid nobody');
    t.match(r.stdout, /^reply from 127\.0\.0\.1$/m, 'the echo was answered');
  }
  {
    const r = await td(t, ['-q', '-w', out], [capped], { env, cwd: dir });
    t.equal(r.status, 0, `cap_net_raw ping as nobody succeeds (${r.stdout.trim()} ${r.stderr.slice(-200)})`);
    t.match(r.stdout, new RegExp(`^ruid ${nobody.uid} euid ${nobody.uid}$`, 'm'), 'it ran as nobody');
    t.match(r.stdout, /^reply from 127\.0\.0\.1$/m, 'the echo was answered (the file capability took effect)');
  }
});

t.test('no tracedump of this file is left running', async (t) => {
  t.equal(children.size, 0, 'every tracedump started here has exited');
});

noLeftovers(t);
