// An unconnected UDP socket sends only from inside send calls the tracer stops at: a datagram
// from its port outside those calls is another socket's, one that took the port after it
// closed (the race test/capture-tcp.test.ts's noise hits now and then).
import t from 'tap';
import { EndpointTable } from '../src/tracker/endpoints';
import { dissect } from '../src/packet/dissect';
import { QUEUED_SEND_MS, addSendWindow, inSendWindow, loopbackSendTailMs } from '../src/tracker/send-windows';
import type { SocketEvent } from '../src/native';
import { bindRule, ep, pendingEvent, socketEvent } from './helpers/unit-events';
import { ip4, udp } from './helpers/unit-packets';

const who = { pid: 10, tid: 10, comm: 'client' };
const PORT = 48691;
const SERVER = ep('127.0.0.1', 42265);
const query = dissect(ip4('127.0.0.1', '127.0.0.1', 17, udp(PORT, SERVER.port)))!;
const answer = dissect(ip4('127.0.0.1', '127.0.0.1', 17, udp(SERVER.port, PORT)))!;
const pid = (v: unknown) => (v as { pid?: number } | undefined)?.pid;

/** The first sendto of a fresh socket: entry stop at `entry` (pending), exit stop at `exit`. */
function firstSendto(table: EndpointTable, inode: number, entry: number, exit: number): void {
  table.apply(pendingEvent(who, inode, 17, [SERVER], entry));
  const e: SocketEvent = { ...socketEvent(who, inode, [bindRule(17, ep('0.0.0.0', PORT))], exit), call: 'sendto', remotes: [SERVER] };
  table.apply(e);
}

/** A later sendto on a socket that has its port: an entry stop only (no result). */
function laterSendto(table: EndpointTable, inode: number, entry: number): void {
  table.apply({ ...socketEvent(who, inode, [], entry), call: 'sendto', proto: 'udp', remotes: [SERVER], result: null });
}

t.test('windows: merged, sorted, and an allowance for real interfaces', (t) => {
  const w: number[] = [];
  addSendWindow(w, 10, 11);
  addSendWindow(w, 10.5, 12); // overlaps: merged
  addSendWindow(w, 20, 21);
  addSendWindow(w, 15, 16); // out of order
  t.same(w, [10, 12, 15, 16, 20, 21]);
  t.ok(inSendWindow(w, 11.5, 0));
  t.notOk(inSendWindow(w, 13, 0), 'between windows, on loopback');
  t.ok(inSendWindow(w, 13, 5), 'between windows, with a queue allowance');
  t.notOk(inSendWindow(w, 9, 5), 'before the first');
  t.end();
});

t.test('a datagram from the port after the socket closed, sent by another socket, is not the program\'s', (t) => {
  const table = new EndpointTable(undefined, true);
  firstSendto(table, 1, 100, 101);
  // the program's query (inside its call) and the answer
  t.equal(table.judge(query, 100.5, 'both'), 'recheck', 'its query, sent inside the call: the sweep decides as before');
  t.equal(table.judge(answer, 102, 'both'), 'recheck', 'the answer waits for a sweep');
  // the program closes the socket; another process takes the port and asks the same server
  t.equal(table.judge(query, 110, 'both'), undefined, "the other socket's query (no send call of the program then)");
  t.equal(table.judge(answer, 110.5, 'both'), 'recheck', 'its answer: was the program\'s socket still alive?');
  // the sweep finds both gone (the other socket too: portTaken cannot tell)
  table.sweep(new Set(), 120, new Set([17]));
  t.equal(pid(table.judge(query, 100.5, 'both')), 10, "the program's query");
  t.equal(pid(table.judge(answer, 102, 'both')), 10, "the program's answer, before the other socket sent");
  t.equal(table.judge(answer, 110.5, 'both'), undefined, "the other socket's answer");
  t.end();
});

t.test('a sweep that sees the socket alive after the foreign datagram keeps its answers (a shared port)', (t) => {
  const table = new EndpointTable(undefined, true);
  firstSendto(table, 1, 100, 101);
  t.equal(table.judge(query, 110, 'both'), undefined);
  table.sweep(new Set([1]), 120, new Set([17]));
  t.equal(pid(table.judge(answer, 110.5, 'both')), 10, 'alive at 120: still its port');
  t.end();
});

t.test('a send event applied after its datagram was judged: judged again, the program\'s', (t) => {
  const table = new EndpointTable(undefined, true);
  firstSendto(table, 1, 100, 101);
  t.equal(table.judge(query, 200.2, 'both'), undefined, 'no window yet');
  const before = table.version;
  laterSendto(table, 1, 200);
  t.ok(table.version > before, 'the event bumps the version (waiting packets are judged again)');
  t.equal(table.judge(query, 200.2, 'both'), 'recheck', 'inside the entry-only window: judged as usual');
  t.equal(table.judge(answer, 200.4, 'both'), 'recheck', 'the answer: no foreign datagram before it any more, the sweep decides as usual');
  t.end();
});

t.test('on a real interface a datagram may leave after the call returned (queueing)', (t) => {
  const table = new EndpointTable(undefined, true);
  firstSendto(table, 1, 100, 101);
  const out = dissect(ip4('198.18.0.1', '198.18.0.2', 17, udp(PORT, SERVER.port)))!;
  t.equal(table.judge(out, 150, 'src'), 'recheck', '49 ms after the exit: still within the allowance, judged as usual');
  t.equal(table.judge(out, 5_000, 'src'), undefined, 'seconds later: another socket');
  t.end();
});

t.test('a socket seen only receiving (no traced send) is judged as before', (t) => {
  const table = new EndpointTable(undefined, true);
  table.apply(socketEvent(who, 1, [bindRule(17, ep('0.0.0.0', PORT))], 100));
  t.equal(table.judge(query, 110, 'both'), 'recheck', 'no windows: the sweep decides');
  t.end();
});

t.test('a kernel that stamps received packets late (netdev_tstamp_prequeue=0) gets an allowance on loopback too', (t) => {
  t.equal(loopbackSendTailMs(() => '1\n'), 0, 'the default: stamped inside the call');
  t.equal(loopbackSendTailMs(() => undefined), 0, 'unreadable: the default');
  t.equal(loopbackSendTailMs(() => '0\n'), QUEUED_SEND_MS);
  const table = new EndpointTable(undefined, true, QUEUED_SEND_MS);
  firstSendto(table, 1, 100, 101);
  t.equal(table.judge(query, 110, 'both'), 'recheck', 'within the allowance: judged as usual');
  t.end();
});

t.test("another socket's exchange just before the program's socket was given the same port is not the program's", (t) => {
  const table = new EndpointTable(undefined, true);
  // the other process asks from PORT at 99.0 (answer 99.03) and closes; the kernel then gives
  // PORT to the program's fresh socket, whose sendto enters at 99.5
  firstSendto(table, 1, 99.5, 100.2);
  table.sweep(new Set([1]), 120, new Set([17])); // the program's socket alive at 120
  t.equal(table.judge(query, 99.0, 'both'), undefined, 'the query before the call that bound the port');
  t.equal(table.judge(answer, 99.03, 'both'), undefined, 'and its answer');
  t.equal(pid(table.judge(query, 100.0, 'both')), 10, "the program's own query, inside its call");
  t.end();
});
