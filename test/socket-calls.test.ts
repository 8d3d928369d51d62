// End-to-end: each kind of socket call the fixture makes is reported exactly as the fixture
// itself recorded it (pid, tid, call, fd, family, proto, local endpoint, remotes, result).
import t, { type Test } from 'tap';
import { checkScenario } from './helpers/compare';
import { type RunResult, buildFixture, socketEvents, traced } from './helpers/tracedump';

const { bin, dir } = buildFixture(t);

// [subcommand, number of recorded calls, extra checks]; every scenario exits 0
type Extra = (tt: Test, r: RunResult) => void;
const scenarios: [string, number, Extra?][] = [
  [
    'tcp', // server bind+listen, blocking connect, sendmsg without msg_name (peer as remote)
    4,
    (tt, r) => {
      const sm = socketEvents(r).find((e) => e.call === 'sendmsg');
      tt.equal(sm?.remotes?.length, 1, 'sendmsg on a connected TCP socket names its peer');
    },
  ],
  [
    'tcp-nonblock', // EINPROGRESS
    3,
    (tt, r) => {
      const c = socketEvents(r).find((e) => e.call === 'connect');
      tt.equal(c?.result, -115, 'non-blocking connect result is -EINPROGRESS');
      tt.equal(c?.errno, 'EINPROGRESS', 'errno name');
      tt.not(c?.local?.port ?? 0, 0, 'the local port is already known at EINPROGRESS');
    },
  ],
  [
    'refused', // ECONNREFUSED
    2,
    (tt, r) => {
      const c = socketEvents(r).find((e) => e.call === 'connect');
      tt.equal(c?.result, -111, 'refused connect result is -ECONNREFUSED');
      tt.equal(c?.errno, 'ECONNREFUSED', 'errno name');
    },
  ],
  ['udp-connected', 3], // connect; send/write/sendto(NULL) not reported; sendmsg without name
  [
    'udp-sendto', // fresh unbound socket twice, then an explicitly bound one
    5,
    (tt, r) => {
      const s = socketEvents(r).filter((e) => e.call === 'sendto');
      tt.equal(s.length, 3, 'three sendto events');
      tt.not(s[0]?.result, null, 'first sendto on an unbound socket has an exit stop (port assigned inside)');
    },
  ],
  ['sendmsg', 3], // msg_name on a fresh socket, twice
  [
    'sendmmsg', // 4 datagrams to 3 destinations; then on a connected socket without names
    6,
    (tt, r) => {
      const s = socketEvents(r).filter((e) => e.call === 'sendmmsg');
      tt.same(
        s.map((e) => e.remotes?.length),
        [3, 1],
        'sendmmsg lists each destination once; on a connected socket, the peer',
      );
    },
  ],
  [
    'server', // bind + listen + accept from itself, one thread
    3,
    (tt, r) => {
      tt.match(r.stdout.toString(), /accepted self 127\.0\.0\.1/, 'the fixture accepted its own connection');
      const b = socketEvents(r).find((e) => e.call === 'bind');
      tt.same(b?.remotes, [], 'bind names no remote');
      const l = socketEvents(r).find((e) => e.call === 'listen');
      tt.same(l?.remotes, [], 'listen names no remote');
    },
  ],
  [
    'ipv6', // TCP and UDP on ::1
    5,
    (tt, r) => {
      const s = socketEvents(r);
      tt.ok(s.length > 0 && s.every((e) => e.family === 6), 'all events are family 6');
      tt.ok(
        s.some((e) => e.call === 'connect' && e.remotes?.[0]?.address === '::1'),
        'connect to ::1',
      );
    },
  ],
  [
    'mapped', // ::ffff:127.0.0.1 on AF_INET6 sockets
    9,
    (tt, r) => {
      const c = socketEvents(r).filter((e) => e.call === 'connect' && e.family === 6);
      tt.equal(c.length, 2, 'two connects on AF_INET6 sockets');
      tt.ok(
        c.every((e) => e.remotes?.[0]?.address === '::ffff:127.0.0.1' && e.local?.address === '::ffff:127.0.0.1'),
        'IPv4-mapped remote and local addresses',
      );
    },
  ],
  [
    'quiet', // AF_UNIX calls, non-socket fds, send()/write()/sendto(NULL): only the TCP calls
    3,
  ],
  [
    'bind-no-port', // IP_BIND_ADDRESS_NO_PORT
    4,
    (tt, r) => {
      tt.match(r.stdout.toString(), /^after-bind-port 0$/m, 'getsockname after bind still shows port 0');
      const conn = r.record.find((x) => x.call === 'connect');
      const b = r.record.find((x) => x.call === 'bind' && x.fd === conn?.fd);
      tt.equal(b?.local?.port, 0, 'the fixture recorded port 0 after its NO_PORT bind, under tracedump');
      const ev = socketEvents(r).filter((e) => e.call === 'bind');
      tt.same(
        ev.map((e) => e.local?.port === 0),
        [false, true],
        'tracedump reports the server bind with a port, the NO_PORT bind with port 0',
      );
      const c = socketEvents(r).find((e) => e.call === 'connect');
      tt.not(c?.local?.port ?? 0, 0, 'connect reports the port chosen at connect');
      tt.not(c?.result, null, 'connect had an exit stop');
    },
  ],
];

for (const [cmd, calls, extra] of scenarios) {
  t.test(cmd, async (tt) => {
    const r = await traced([bin, cmd], dir, { timeoutMs: 30_000 });
    checkScenario(tt, r, { status: 0, calls, bin });
    extra?.(tt, r);
  });
}
