// When the sweeper asks the kernel for a socket dump: only for protocols the endpoint table holds
// sockets of (a dump tells the table nothing else). The dump itself is the real sock_diag one,
// handed to the sweeper; the test only records which protocols were asked for.
import t from 'tap';
import { native } from '../src/native';
import { EndpointTable, tcpFlowKey } from '../src/tracker/endpoints';
import { SWEEP, Sweeper } from '../src/tracker/sweeper';
import { bindRule, ep, flowRule, socketEvent } from './helpers/unit-events';

const TCP = 6;
const UDP = 17;
const GRACE = { tcpFlowMs: 60_000, closedMarginMs: 2_000, tcpDoneMs: 10_000 };
const app = { pid: 100, tid: 101, comm: 'app' };

t.test('no dump for a protocol the table holds no socket of', async (t) => {
  const addon = native();
  const asked: number[][] = [];
  // the real dump, recorded: the sweeper is given it (no addon patched)
  const list = (protocols: number[]) => {
    asked.push([...protocols]);
    return addon.liveSockets(protocols);
  };
  const table = new EndpointTable(GRACE);
  const rules = new addon.RuleSet(64);
  const sweeper = new Sweeper(table, rules, (m) => t.fail(m), list);
  let now = Date.now();
  sweeper.poke(now);
  sweeper.final(now);
  t.same(asked, [], 'an empty table: no dump at all');

  table.apply(socketEvent(app, 1, [flowRule(TCP, ep('127.0.0.1', 40000), ep('127.0.0.1', 80))], now));
  t.ok(table.holds(TCP) && !table.holds(UDP));
  now += SWEEP.tcpEveryMs;
  sweeper.poke(now);
  t.same(asked, [[TCP]], 'TCP sockets only: a TCP dump, no UDP one');
  now += SWEEP.udpEveryMs;
  sweeper.poke(now);
  t.same(asked, [[TCP]], 'and no UDP dump on its own cadence');

  table.apply(socketEvent(app, 2, [bindRule(UDP, ep('0.0.0.0', 5353))], now));
  now += SWEEP.udpEveryMs;
  sweeper.poke(now);
  t.same(asked.at(-1), [UDP], 'a UDP socket: UDP dumps again (UDP-Lite left out)');

  // both gone (not in the dumps: inodes 1 and 2 are nobody's here) and their grace over: forgotten
  table.sweep(new Set(), now);
  table.sweep(new Set(), now + GRACE.tcpFlowMs);
  t.ok(!table.holds(TCP) && !table.holds(UDP), 'forgotten sockets are not held');
  const before = asked.length;
  sweeper.final(now + GRACE.tcpFlowMs);
  t.equal(asked.length, before, 'and cost no dump');
});

t.test('a gone TCP socket is kept while the kernel still finishes its connection, then forgotten', async (t) => {
  const table = new EndpointTable(GRACE);
  const T0 = 1_000_000;
  table.apply(socketEvent(app, 7, [flowRule(TCP, ep('127.0.0.1', 40000), ep('127.0.0.1', 80))], T0));
  const flow = tcpFlowKey('\x7f\0\0\x01', 40000, '\x7f\0\0\x01', 80);
  const other = tcpFlowKey('\x7f\0\0\x01', 40001, '\x7f\0\0\x01', 80);
  const at = (ms: number, finishing: string[]) => table.observe({ inodes: new Set(), finishing: new Set(finishing), before: ms, after: ms }, new Set([TCP]));
  t.same(at(T0 + 100, [flow]), [], 'gone, its connection in TIME_WAIT: kept');
  t.same(at(T0 + 50_000, [flow]), [], 'still finishing 50 s later: kept');
  t.same(at(T0 + 58_000, [other]), [], 'finished: kept for the margin');
  t.same(at(T0 + 58_000 + GRACE.tcpDoneMs, []), [7], 'forgotten once the margin is over');

  table.apply(socketEvent(app, 8, [flowRule(TCP, ep('::ffff:127.0.0.1', 40002), ep('::ffff:127.0.0.1', 80))], T0));
  t.same(at(T0 + 100, []), [], 'gone, its connection over at once (the peer closed first)');
  t.same(at(T0 + 100 + GRACE.tcpDoneMs, []), [8], 'forgotten after the margin, not the 60 s of TIME_WAIT');
  table.apply(socketEvent(app, 9, [flowRule(TCP, ep('127.0.0.1', 40003), ep('127.0.0.1', 80))], T0));
  t.same(table.sweep(new Set(), T0 + 200), [], 'a dump without the finishing list (no TCP)');
  t.same(table.sweep(new Set(), T0 + 200 + GRACE.tcpDoneMs), [], 'keeps the whole TCP grace');
});

t.test("the kernel's TIME_WAIT connections are listed as finishing, in the rule's orientation", async (t) => {
  const net = await import('node:net');
  const server = net.createServer((c) => c.on('data', () => c.end()).on('error', () => {}));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const port = (server.address() as { port: number }).port;
  // the client closes first: its side of the connection goes to TIME_WAIT
  const client = net.connect(port, '127.0.0.1');
  await new Promise<void>((r) => client.on('connect', r));
  const local = client.localPort as number;
  client.end('x');
  await new Promise<void>((r) => client.on('close', () => r()));
  const snap = native().liveSockets([TCP]);
  const keys = new Set<string>();
  for (let i = 0; i + 40 <= snap.finishing.length; i += 40)
    if (snap.finishing[i] === 4) keys.add(tcpFlowKey(snap.finishing.toString('latin1', i + 8, i + 12), snap.finishing.readUInt16LE(i + 2), snap.finishing.toString('latin1', i + 24, i + 28), snap.finishing.readUInt16LE(i + 4)));
  t.ok(keys.has(tcpFlowKey('\x7f\0\0\x01', local, '\x7f\0\0\x01', port)), `127.0.0.1:${local} -> :${port} is finishing (${keys.size} finishing)`);
});
