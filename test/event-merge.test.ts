// A call's 'pending' event (its entry stop) and the 'socket' event that ends it cross to the
// controller as one event when one delivery carries both (native/event_json.cc): checked on a
// real traced connect, with the kernel filter's rule set in place so the entry has its rules.
import net from 'node:net';
import t from 'tap';
import { type SocketEvent, type TraceEvent, native } from '../src/native';

const PY = '/usr/bin/python3';

t.test('a connect: one socket event carrying its entry stop, no pending event left', async (t) => {
  const server = net.createServer((c) => c.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const port = (server.address() as net.AddressInfo).port;
  const rules = new (native().RuleSet)(1024);
  const events: TraceEvent[] = [];
  // the pause lets the delivery its exec event asks for pass before the first call
  const script = `import socket, time\ntime.sleep(0.3)\nfor i in range(3):\n    socket.create_connection(('127.0.0.1', ${port})).close()\n`;
  await new Promise<void>((resolve) => {
    // polled socket events: they wait for a delivery something else asks for (the exits here),
    // so each call's two events arrive together
    native().launch(
      { path: PY, argv: [PY, '-c', script], env: [], cwd: '/', rules, socketEventsPolled: true },
      (batch) => {
        events.push(...batch);
        if (batch.some((e) => e.kind === 'done')) resolve();
      },
    );
  });
  const connects = events.filter((e): e is SocketEvent => e.kind === 'socket' && e.call === 'connect');
  t.equal(connects.length, 3, 'three connect events');
  t.equal(events.filter((e) => e.kind === 'pending').length, 0, 'no pending event crosses on its own');
  for (const c of connects) {
    t.ok(c.entry, 'the connect carries its entry stop');
    t.ok(c.entry!.time <= c.time && c.time - c.entry!.time < 5000, 'entered before it returned');
    t.same(
      c.entry!.rules.map((r) => [r.kind, r.proto, r.remote?.port]),
      [['pending', 6, port]],
      "the entry's rule: the destination while the local port is picked",
    );
    t.equal(c.result, 0);
    t.not(c.local?.port ?? 0, 0, 'the local port from the exit stop');
  }
});
