// The ring made in the background (native/capture.h, defer_ring): a launched command runs while
// the kernel allocates it, and its first socket call waits until the capture is live. So a
// command that makes no socket call never waits for the ring, one that connects at once loses
// none of its packets, and a ring that cannot be made kills a command at its socket call.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { type ExitEvent, type TraceEvent, native } from '../src/native';
import { TCP_SYN, readPcap } from './helpers/pcap';
import { runTracedump, workDir } from './helpers/capture';

const PY = '/usr/bin/python3';
// 1 GiB: a ring the kernel takes a good fraction of a second to zero, even on a warm machine
const BIG_RING_KIB = 1 << 20;

function summary(file: string): { cpu_seconds_to_capture_start: number | null; packets_written: number } {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

t.test('a command that makes no socket call ends without waiting for the ring', async (t) => {
  const dir = workDir(t);
  const out = path.join(dir, 'true.pcap');
  const sj = path.join(dir, 'true.json');
  const r = await runTracedump(t, ['-B', String(BIG_RING_KIB), '-w', out, '--summary-json', sj], ['true']);
  t.equal(r.status, 0, r.stderr);
  const s = summary(sj);
  t.equal(s.cpu_seconds_to_capture_start, null, 'the capture was never live: the run did not wait for its ring');
  t.equal(s.packets_written, 0);
  t.same(readPcap(out).packets, [], 'a valid capture file, without packets');
});

t.test("a command that connects at once: its first call waited for the ring, and its SYN is in the file", async (t) => {
  const server = net.createServer((c) => c.end('hi'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const port = (server.address() as net.AddressInfo).port;
  const dir = workDir(t);
  const out = path.join(dir, 'connect.pcap');
  const sj = path.join(dir, 'connect.json');
  const script = `import socket\ns = socket.create_connection(('127.0.0.1', ${port}))\nprint(s.recv(10).decode())\ns.close()\n`;
  const r = await runTracedump(t, ['-B', String(BIG_RING_KIB), '-w', out, '--summary-json', sj], [PY, '-c', script]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /hi/, 'the connection worked');
  t.ok(summary(sj).cpu_seconds_to_capture_start !== null, 'the capture went live');
  const packets = readPcap(out).packets;
  t.ok(packets.length >= 6, `the connection's packets (${packets.length})`);
  t.equal(packets[0]?.tcpFlags, TCP_SYN, 'the first packet is its SYN');
});

t.test('a ring that cannot be made: the command is killed at its socket call, one without IP sockets runs on', async (t) => {
  // a block size that is not a whole number of pages: the kernel refuses it at once (EINVAL)
  const capture = new (native().Capture)({ blockSize: (4 << 20) + 512, blockCount: 2, deferRing: true }, () => {});
  t.teardown(() => capture.stop());
  capture.start();
  for (let i = 0; i < 200 && !capture.state().error; i++) await new Promise((r) => setTimeout(r, 10));
  const state = capture.state();
  t.equal(state.live, false);
  t.equal(state.error?.code, 'EINVAL', `the helper's error comes back (${JSON.stringify(state.error)})`);
  t.equal(state.error?.syscall, 'setsockopt(PACKET_RX_RING)');
  const run = (script: string) =>
    new Promise<ExitEvent | undefined>((resolve) => {
      let exit: ExitEvent | undefined;
      const tracer = native().launch({ path: PY, argv: [PY, '-c', script], env: [], cwd: '/', capture }, (batch: TraceEvent[]) => {
        for (const e of batch) if (e.kind === 'exit' && e.tid === tracer.pid) exit = e;
        if (batch.some((e) => e.kind === 'done')) resolve(exit);
      });
    });
  const killed = await run(`import socket\nsocket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', 9))\n`);
  t.equal(killed?.signal, 9, 'the sender was killed (SIGKILL) before its datagram');
  // (Python asks nscd over a Unix socket at start: no IP packet can come of that, it runs on)
  const ran = await run('print(6 * 7)');
  t.equal(ran?.code, 0, `a command without IP socket calls runs to its end (${JSON.stringify(ran)})`);
});
