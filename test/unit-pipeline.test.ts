// The endpoint table and the capture pipeline, fed synthetic tracer events and capture batches
// in the native record layout, with a fake clock.
import t from 'tap';
import { type Dissected, dissect } from '../src/packet/dissect';
import { CapturePipeline } from '../src/capture/pipeline';
import { EndpointTable, type Owner, PacketKeyCache, packetKeys } from '../src/tracker/endpoints';
import { bindRule, ep, exitEvent, flowRule, pendingEvent, socketEvent } from './helpers/unit-events';
import { ARPHRD_ETHER, ARPHRD_LOOPBACK, PACKET_HOST, PACKET_OUTGOING, type Rec, batch, icmp, ip4, ip6, tcp, udp } from './helpers/unit-packets';

const TCP = 6;
const UDP = 17;
const T0 = 1_700_000_000_000; // realtime ms of the first packet
const SYN = 0x02;
const ACK = 0x10;
const FIN = 0x01;
const RST = 0x04;
const GRACE = { tcpFlowMs: 60_000, closedMarginMs: 2_000, tcpDoneMs: 10_000 };
const OPTIONS = { eventLagMs: 300, maxHoldMs: 2_000 };

const app = { pid: 100, tid: 101, comm: 'app' };
const other = { pid: 200, tid: 200, comm: 'helper' };

function d(p: Buffer): Dissected {
  const x = dissect(p);
  if (!x) throw new Error('test packet does not dissect');
  return x;
}

/** A pipeline with a fake clock; `out` lists the names of written packets with their owners. */
function harness(options = OPTIONS) {
  const clock = { now: T0 + 5 };
  const table = new EndpointTable(GRACE);
  const out: Array<{ name: string; owner: Owner; ts: number }> = [];
  const names = new Map<string, string>();
  const pipeline = new CapturePipeline(
    table,
    (rec, owner) => {
      out.push({ name: names.get(rec.data.toString('hex')) ?? `?${rec.data.toString('hex')}`, owner, ts: rec.sec * 1000 + rec.nsec / 1e6 });
    },
    options,
    () => clock.now,
  );
  const add = (recs: Array<Rec & { name: string }>) => {
    for (const r of recs) names.set(r.data.toString('hex'), r.name);
    pipeline.addBatch(batch(recs));
  };
  const written = () => out.map((o) => o.name);
  return { clock, table, pipeline, out, add, written };
}

// distinct packets of one TCP connection 10.0.0.1:40000 <-> 10.0.0.2:80 (the ip id tells them apart)
let nextId = 1;
const v4tcp = (src: string, sp: number, dst: string, dp: number, flags: number, seq?: number) =>
  ip4(src, dst, TCP, tcp(sp, dp, flags, undefined, seq), { id: nextId++ });
const v4udp = (src: string, sp: number, dst: string, dp: number) => ip4(src, dst, UDP, udp(sp, dp), { id: nextId++ });

t.test('table: flows, binds and pending destinations', async (t) => {
  const table = new EndpointTable(GRACE);
  table.apply(socketEvent(app, 1, [flowRule(TCP, ep('10.0.0.1', 40000), ep('10.0.0.2', 80))]));
  table.apply(socketEvent(app, 2, [bindRule(UDP, ep('0.0.0.0', 5353))]));
  table.apply(socketEvent(app, 3, [bindRule(TCP, ep('127.0.0.1', 8080))]));
  table.apply(socketEvent(other, 4, [bindRule(TCP, ep('::', 9000))]));
  table.apply(socketEvent(app, 5, [flowRule(UDP, ep('::ffff:127.0.0.1', 6000), ep('::ffff:127.0.0.2', 7000))]));
  const owner = (inode: number, who = app): Owner => ({ pid: who.pid, tid: who.tid, comm: who.comm, inode });
  const at = T0;
  t.same(table.judge(d(v4tcp('10.0.0.1', 40000, '10.0.0.2', 80, SYN)), at), owner(1), 'flow, outgoing');
  t.same(table.judge(d(v4tcp('10.0.0.2', 80, '10.0.0.1', 40000, SYN | ACK)), at), owner(1), 'flow, incoming');
  t.equal(table.judge(d(v4tcp('10.0.0.1', 40001, '10.0.0.2', 80, SYN)), at), undefined, 'another local port');
  t.equal(table.judge(d(v4udp('10.0.0.1', 40000, '10.0.0.2', 80)), at), undefined, 'same ports, UDP');
  t.same(table.judge(d(v4udp('192.168.1.9', 5353, '224.0.0.251', 5353)), at), owner(2), '0.0.0.0:P bind, sent');
  t.same(table.judge(d(v4udp('10.3.3.3', 1234, '10.0.0.1', 5353)), at), owner(2), '0.0.0.0:P bind, received');
  t.equal(table.judge(d(ip6('::1', '::1', UDP, udp(1234, 5353))), at), undefined, 'an IPv4 bind does not take IPv6');
  t.same(table.judge(d(v4tcp('127.0.0.9', 50000, '127.0.0.1', 8080, SYN)), at), owner(3), '127.0.0.1:P bind');
  t.equal(table.judge(d(v4tcp('127.0.0.9', 50000, '127.0.0.2', 8080, SYN)), at), undefined, '127.0.0.2:P is not 127.0.0.1:P');
  t.same(table.judge(d(ip6('2001:db8::5', '2001:db8::1', TCP, tcp(40000, 9000))), at), owner(4, other), '[::]:P, IPv6');
  t.same(table.judge(d(v4tcp('10.0.0.5', 40000, '10.0.0.1', 9000, SYN)), at), owner(4, other), '[::]:P, IPv4 (dual stack)');
  t.same(table.judge(d(v4udp('127.0.0.2', 7000, '127.0.0.1', 6000)), at), owner(5), 'IPv4-mapped flow keyed as IPv4');
  t.equal(table.judge(d(ip6('::ffff:7f00:2', '::ffff:7f00:1', UDP, udp(7000, 6000))), at), undefined, 'not as IPv6');

  // pending destinations: counted per call in flight, ended by the socket or exit event of the thread
  table.apply(pendingEvent({ pid: 300, tid: 301 }, 10, UDP, [ep('8.8.8.8', 53), ep('2001:4860::8888', 53)]));
  table.apply(pendingEvent({ pid: 300, tid: 302 }, 11, UDP, [ep('8.8.8.8', 53)]));
  t.equal(table.pendingCount, 2);
  const query = d(v4udp('10.0.0.1', 33333, '8.8.8.8', 53));
  const answer = d(v4udp('8.8.8.8', 53, '10.0.0.1', 33333));
  t.equal(table.judge(query, at), 'pending', 'to a pending destination');
  t.equal(table.judge(answer, at), 'pending', 'from a pending destination');
  t.equal(table.judge(d(v4udp('10.0.0.1', 33333, '8.8.4.4', 53)), at), undefined, 'another destination');
  table.apply(socketEvent({ pid: 300, tid: 301 }, 10, []));
  t.equal(table.judge(query, at), 'pending', 'still pending for the other thread');
  t.equal(table.pendingCount, 1, 'the IPv6 destination ended with its call');
  table.apply(exitEvent({ pid: 300, tid: 302 }));
  t.equal(table.judge(query, at), undefined, 'no call in flight any more');
  t.equal(table.pendingCount, 0);
});

t.test('pipeline: a packet under a pending rule waits for the socket event', async (t) => {
  const h = harness();
  h.table.apply(pendingEvent(app, 500, TCP, [ep('10.0.0.2', 80)]));
  h.add([
    { name: 'syn', tsMs: T0, data: v4tcp('10.0.0.1', 40000, '10.0.0.2', 80, SYN) },
    { name: 'other-port', tsMs: T0 + 1, data: v4tcp('10.0.0.1', 40001, '10.0.0.2', 80, SYN) },
    { name: 'syn-ack', tsMs: T0 + 2, data: v4tcp('10.0.0.2', 80, '10.0.0.1', 40000, SYN | ACK) },
  ]);
  t.same(h.written(), [], 'nothing decided while the call is in flight');
  t.equal(h.pipeline.waiting, 3);
  h.clock.now += 1000; // longer than eventLagMs: pending packets wait for their event regardless
  h.pipeline.drain(false);
  t.same(h.written(), [], 'still waiting after eventLagMs');
  h.table.apply(socketEvent(app, 500, [flowRule(TCP, ep('10.0.0.1', 40000), ep('10.0.0.2', 80))]));
  h.pipeline.drain(false);
  t.same(h.written(), ['syn', 'syn-ack'], 'the exact flow is written');
  t.same(h.out[0].owner, { pid: 100, tid: 101, comm: 'app', inode: 500 });
  t.equal(h.pipeline.waiting, 0, 'the other local port was rejected (unclaimed for longer than eventLagMs)');
  t.match(h.pipeline.counters, { seen: 3, written: 2, rejected: 1, duplicates: 0 });
  t.equal(h.pipeline.counters.writtenBytes, 80, 'wire bytes of the written packets');
});

t.test('pipeline: unclaimed packets wait eventLagMs for a late event, then are rejected', async (t) => {
  const h = harness();
  h.add([
    { name: 'a', tsMs: T0, data: v4udp('10.0.0.1', 5000, '10.0.0.9', 53) },
    { name: 'b', tsMs: T0 + 1, data: v4udp('10.0.0.1', 5001, '10.0.0.9', 53) },
  ]);
  h.clock.now += 299;
  h.pipeline.drain(false);
  t.equal(h.pipeline.waiting, 2, 'waiting before eventLagMs');
  // the event of 'a' arrives late (the tracer's batch came after the capture's)
  h.table.apply(socketEvent(app, 7, [flowRule(UDP, ep('10.0.0.1', 5000), ep('10.0.0.9', 53))]));
  h.pipeline.drain(false);
  t.same(h.written(), ['a'], 'claimed by the late event');
  t.equal(h.pipeline.waiting, 1);
  h.clock.now += 1;
  h.pipeline.drain(false);
  t.equal(h.pipeline.waiting, 0, 'rejected at eventLagMs');
  t.match(h.pipeline.counters, { written: 1, rejected: 1 });
  // the final drain decides at once
  h.add([{ name: 'c', tsMs: T0 + 2, data: v4udp('10.0.0.1', 5002, '10.0.0.9', 53) }]);
  t.equal(h.pipeline.waiting, 1);
  h.pipeline.drain(true);
  t.equal(h.pipeline.waiting, 0);
  t.match(h.pipeline.counters, { written: 1, rejected: 2 });
});

t.test('pipeline: output stays in capture order', async (t) => {
  const h = harness();
  h.table.apply(socketEvent(app, 1, [bindRule(UDP, ep('0.0.0.0', 5353))]));
  h.table.apply(pendingEvent(app, 2, TCP, [ep('10.0.0.2', 443)]));
  h.add([
    { name: 'p1-pending', tsMs: T0, data: v4tcp('10.0.0.1', 41000, '10.0.0.2', 443, SYN) },
    { name: 'p2-bound', tsMs: T0 + 1, data: v4udp('10.0.0.1', 5353, '224.0.0.251', 5353) },
  ]);
  h.add([
    { name: 'p3-late-event', tsMs: T0 + 2, data: v4udp('10.0.0.1', 6000, '10.0.0.3', 53) },
    { name: 'p4-bound', tsMs: T0 + 3, data: v4udp('10.0.0.7', 999, '10.0.0.1', 5353) },
  ]);
  t.same(h.written(), [], 'a decided packet does not overtake a waiting one');
  h.table.apply(socketEvent(app, 2, [flowRule(TCP, ep('10.0.0.1', 41000), ep('10.0.0.2', 443))]));
  h.pipeline.drain(false);
  t.same(h.written(), ['p1-pending', 'p2-bound']);
  h.table.apply(socketEvent(other, 3, [flowRule(UDP, ep('10.0.0.1', 6000), ep('10.0.0.3', 53))]));
  h.pipeline.drain(false);
  t.same(h.written(), ['p1-pending', 'p2-bound', 'p3-late-event', 'p4-bound']);
  t.same(h.out.map((o) => o.owner.inode), [2, 1, 3, 1]);
  t.same(h.out.map((o) => o.ts), [T0, T0 + 1, T0 + 2, T0 + 3], 'timestamps carried through');
});

t.test('pipeline: packets decided on arrival are written at once, until one waits; then in order behind it', async (t) => {
  const h = harness();
  h.table.apply(socketEvent(app, 1, [bindRule(UDP, ep('0.0.0.0', 5353))]));
  h.table.apply(pendingEvent(app, 2, TCP, [ep('10.0.0.2', 443)]));
  h.add([
    { name: 'q1-bound', tsMs: T0, data: v4udp('10.0.0.1', 5353, '224.0.0.251', 5353) },
    { name: 'q2-pending', tsMs: T0 + 1, data: v4tcp('10.0.0.1', 42000, '10.0.0.2', 443, SYN) },
    { name: 'q3-bound', tsMs: T0 + 2, data: v4udp('10.0.0.1', 5353, '224.0.0.251', 5353) },
  ]);
  t.same(h.written(), ['q1-bound'], 'the packet ahead of the waiting one is written');
  t.equal(h.pipeline.waiting, 2, 'the one behind it waits too');
  h.table.apply(socketEvent(app, 2, [flowRule(TCP, ep('10.0.0.1', 42000), ep('10.0.0.2', 443))]));
  h.add([{ name: 'q4-bound', tsMs: T0 + 3, data: v4udp('10.0.0.7', 9, '10.0.0.1', 5353) }]);
  t.same(h.written(), ['q1-bound', 'q2-pending', 'q3-bound', 'q4-bound'], 'a new batch behind waiting packets keeps capture order');
  h.add([{ name: 'q5-bound', tsMs: T0 + 4, data: v4udp('10.0.0.9', 7, '10.0.0.1', 5353) }]);
  t.same(h.written().slice(-1), ['q5-bound']);
  t.equal(h.pipeline.waiting, 0);
  t.same(h.out.map((o) => o.owner.inode), [1, 2, 1, 1, 1]);
});

t.test('packet keys from the cache are the keys of each packet, both ways round and across flows', async (t) => {
  const cache = new PacketKeyCache();
  const packets = [
    v4tcp('10.0.0.1', 40000, '10.0.0.2', 80, SYN),
    v4tcp('10.0.0.2', 80, '10.0.0.1', 40000, SYN | ACK),
    v4tcp('10.0.0.1', 40000, '10.0.0.2', 80, ACK),
    v4udp('10.0.0.1', 40000, '10.0.0.2', 80), // same endpoints, another protocol
    v4tcp('10.0.0.1', 40001, '10.0.0.2', 80, SYN), // another port
    v4tcp('10.0.0.3', 40001, '10.0.0.2', 80, SYN), // another address
    v4tcp('10.0.0.2', 40001, '10.0.0.3', 80, SYN), // addresses swapped, ports not
    v4tcp('10.0.0.3', 80, '10.0.0.2', 40001, SYN), // ports swapped, addresses not
    ip6('fd00::1', 'fd00::2', TCP, tcp(40000, 80, SYN)),
    ip6('fd00::2', 'fd00::1', TCP, tcp(80, 40000, ACK)),
    v4tcp('10.0.0.1', 40000, '10.0.0.2', 80, ACK),
  ];
  for (const [i, p] of packets.entries()) t.same(cache.keysOf(d(p)), packetKeys(d(p)), `packet ${i}`);
});

t.test('pipeline: a waiting packet stops blocking the queue after maxHoldMs', async (t) => {
  const h = harness();
  h.table.apply(socketEvent(app, 1, [bindRule(UDP, ep('0.0.0.0', 5353))]));
  h.table.apply(pendingEvent(app, 2, TCP, [ep('10.0.0.2', 443)])); // a connect that hangs
  h.add([
    { name: 'stuck', tsMs: T0, data: v4tcp('10.0.0.1', 41000, '10.0.0.2', 443, SYN) },
    { name: 'q1', tsMs: T0 + 1, data: v4udp('10.0.0.1', 5353, '224.0.0.251', 5353) },
  ]);
  h.clock.now += 1999;
  h.pipeline.drain(false);
  t.same(h.written(), [], 'held back before maxHoldMs');
  h.clock.now += 1;
  h.pipeline.drain(false);
  t.same(h.written(), ['q1'], 'released at maxHoldMs');
  t.equal(h.pipeline.waiting, 1, 'the stuck packet still waits for its event');
  h.add([{ name: 'q2', tsMs: T0 + 3000, data: v4udp('10.0.0.1', 5353, '224.0.0.251', 5353) }]);
  t.same(h.written(), ['q1', 'q2'], 'later packets are not held by it');
  h.table.apply(socketEvent(app, 2, [flowRule(TCP, ep('10.0.0.1', 41000), ep('10.0.0.2', 443))]));
  h.pipeline.drain(false);
  t.same(h.written(), ['q1', 'q2', 'stuck'], 'written out of order once decided');
  t.equal(h.pipeline.waiting, 0);

  // one that never resolves is rejected by the final drain
  h.table.apply(pendingEvent({ pid: 100, tid: 102 }, 3, TCP, [ep('10.0.0.3', 443)]));
  h.add([{ name: 'never', tsMs: T0 + 4000, data: v4tcp('10.0.0.1', 41001, '10.0.0.3', 443, SYN) }]);
  h.clock.now += 5000;
  h.pipeline.drain(false);
  t.equal(h.pipeline.waiting, 1);
  h.pipeline.drain(true);
  t.equal(h.pipeline.waiting, 0);
  t.match(h.pipeline.counters, { seen: 4, written: 3, rejected: 1 });
});

t.test('pipeline: loopback outgoing copies are dropped', async (t) => {
  const h = harness();
  h.table.apply(socketEvent(app, 1, [flowRule(UDP, ep('127.0.0.1', 5000), ep('127.0.0.1', 6000))]));
  const p = v4udp('127.0.0.1', 5000, '127.0.0.1', 6000);
  const e = v4udp('127.0.0.1', 6000, '127.0.0.1', 5000);
  h.add([
    { name: 'lo-out', tsMs: T0, data: p, ifindex: 1, hatype: ARPHRD_LOOPBACK, pkttype: PACKET_OUTGOING },
    { name: 'lo-in', tsMs: T0, data: p, ifindex: 1, hatype: ARPHRD_LOOPBACK, pkttype: PACKET_HOST },
    { name: 'eth-out', tsMs: T0 + 1, data: e, ifindex: 2, hatype: ARPHRD_ETHER, pkttype: PACKET_OUTGOING },
  ]);
  t.same(h.written(), ['lo-in', 'eth-out'], 'the received copy; an outgoing Ethernet packet stays');
  t.match(h.pipeline.counters, { seen: 3, written: 2, duplicates: 1, rejected: 0 });
});

t.test('sweep: gone sockets, grace periods, release', async (t) => {
  const table = new EndpointTable(GRACE);
  table.apply(socketEvent(app, 1, [bindRule(UDP, ep('0.0.0.0', 5353))]));
  table.apply(socketEvent(app, 2, [flowRule(TCP, ep('10.0.0.1', 40000), ep('10.0.0.2', 80))]));
  table.apply(socketEvent(app, 3, [flowRule(UDP, ep('10.0.0.1', 40000), ep('10.0.0.2', 53))]));
  t.same(table.sweep(new Set([1, 2, 3]), T0), [], 'all alive');
  const gone = T0 + 1000;
  t.same(table.sweep(new Set([2]), gone), [], 'marked gone, not released yet');
  t.same(table.sweep(new Set([2]), gone + GRACE.closedMarginMs - 1), [], 'within the margin');
  t.same(table.sweep(new Set([2]), gone + GRACE.closedMarginMs).sort(), [1, 3], 'released after the margin');
  t.equal(table.judge(d(v4udp('10.0.0.7', 1, '10.0.0.1', 5353)), gone - 10), undefined, 'a released bind matches nothing');
  t.equal(table.judge(d(v4udp('10.0.0.2', 53, '10.0.0.1', 40000)), gone - 10), undefined, 'a released UDP flow matches nothing');
  const tcpGone = T0 + 10_000;
  t.same(table.sweep(new Set(), tcpGone), []);
  t.same(table.sweep(new Set(), tcpGone + GRACE.tcpFlowMs - 1), [], 'a TCP flow keeps its grace');
  t.same(table.sweep(new Set(), tcpGone + GRACE.tcpFlowMs), [2]);
  t.same(table.sweep(new Set(), tcpGone + 10 * GRACE.tcpFlowMs), [], 'returned once');
  t.equal(table.judge(d(v4tcp('10.0.0.2', 80, '10.0.0.1', 40000, ACK)), tcpGone), undefined, 'a released TCP flow matches nothing');
});

t.test('sweep: only sockets of the protocols listed can be marked gone', async (t) => {
  const table = new EndpointTable(GRACE);
  table.apply(socketEvent(app, 1, [bindRule(UDP, ep('0.0.0.0', 5353))]));
  table.apply(socketEvent(app, 2, [flowRule(TCP, ep('10.0.0.1', 40000), ep('10.0.0.2', 80))]));
  t.same(table.sweep(new Set(), T0, new Set([UDP])), [], 'a UDP-only scan');
  t.same(table.sweep(new Set(), T0 + GRACE.closedMarginMs, new Set([UDP])), [1], 'the UDP socket released');
  t.same(table.judge(d(v4tcp('10.0.0.2', 80, '10.0.0.1', 40000, ACK)), T0 + 10_000), { pid: 100, tid: 101, comm: 'app', inode: 2 }, 'the TCP socket untouched');
  t.same(table.sweep(new Set(), T0 + 10 * GRACE.tcpFlowMs, new Set([UDP])), [], 'still not gone');
});

t.test("a bind's packets after goneAt are rejected", async (t) => {
  const h = harness();
  h.table.apply(socketEvent(app, 1, [bindRule(UDP, ep('0.0.0.0', 5353))]));
  const goneAt = T0 + 500;
  h.table.sweep(new Set(), goneAt);
  const owner = { pid: 100, tid: 101, comm: 'app', inode: 1 };
  t.same(h.table.judge(d(v4udp('10.0.0.1', 5353, '10.0.0.9', 5353)), goneAt), owner, 'at goneAt');
  t.equal(h.table.judge(d(v4udp('10.0.0.1', 5353, '10.0.0.9', 5353)), goneAt + 1), undefined, 'after goneAt');
  h.add([
    { name: 'before', tsMs: goneAt - 100, data: v4udp('10.0.0.1', 5353, '10.0.0.9', 5353) },
    { name: 'after', tsMs: goneAt + 100, data: v4udp('10.0.0.9', 5353, '10.0.0.1', 5353) },
  ]);
  h.clock.now += OPTIONS.eventLagMs;
  h.pipeline.drain(false);
  t.same(h.written(), ['before']);
  t.match(h.pipeline.counters, { written: 1, rejected: 1 });
  // the same inode seen again later is a new socket (inode reuse): its rules apply anew
  h.table.apply(socketEvent(other, 1, [bindRule(UDP, ep('0.0.0.0', 5353))]));
  t.same(h.table.judge(d(v4udp('10.0.0.9', 5353, '10.0.0.1', 5353)), goneAt + 200), { pid: 200, tid: 200, comm: 'helper', inode: 1 });
});

t.test('a gone TCP flow keeps its FIN tail; a new SYN on its 4-tuple is superseded', async (t) => {
  const table = new EndpointTable(GRACE);
  table.apply(socketEvent(app, 1, [flowRule(TCP, ep('10.0.0.1', 40000), ep('10.0.0.2', 80))]));
  const owner = { pid: 100, tid: 101, comm: 'app', inode: 1 };
  const goneAt = T0 + 10_000;
  t.same(table.judge(d(v4tcp('10.0.0.1', 40000, '10.0.0.2', 80, SYN, 1000)), T0), owner, 'the original SYN');
  t.same(table.judge(d(v4tcp('10.0.0.2', 80, '10.0.0.1', 40000, SYN | ACK, 777)), T0 + 1), owner, 'SYN-ACK');
  t.same(table.judge(d(v4tcp('10.0.0.1', 40000, '10.0.0.2', 80, SYN, 1000)), T0 + 1000), owner, 'a retransmitted SYN');
  table.sweep(new Set(), goneAt);
  t.same(table.judge(d(v4tcp('10.0.0.1', 40000, '10.0.0.2', 80, FIN | ACK)), goneAt + 5000), owner, 'FIN after goneAt');
  t.same(table.judge(d(v4tcp('10.0.0.2', 80, '10.0.0.1', 40000, ACK)), goneAt + 5001), owner, 'last ACK');
  t.same(table.judge(d(v4tcp('10.0.0.2', 80, '10.0.0.1', 40000, RST)), goneAt + 5002), owner, 'RST');
  t.same(table.sweep(new Set(), goneAt + GRACE.closedMarginMs), [], 'tail grace is the TCP one');
  t.equal(table.judge(d(v4tcp('10.0.0.9', 40000, '10.0.0.1', 80, SYN, 5)), goneAt + 100), undefined, 'unrelated SYN');
  t.equal(table.judge(d(v4tcp('10.0.0.1', 40000, '10.0.0.2', 80, SYN, 99_999)), goneAt + 6000), undefined, 'a new SYN after it is gone');
  t.equal(table.judge(d(v4tcp('10.0.0.2', 80, '10.0.0.1', 40000, SYN | ACK, 5)), goneAt + 6001), undefined, 'its answer');
  t.equal(table.judge(d(v4tcp('10.0.0.1', 40000, '10.0.0.2', 80, ACK)), goneAt + 6002), undefined, 'the rest of the new connection');
  t.same(table.sweep(new Set(), goneAt + GRACE.closedMarginMs), [1], 'superseded: released after the short margin');
  // the program reconnects from the same port: a new socket takes the 4-tuple
  table.apply(socketEvent(app, 2, [flowRule(TCP, ep('10.0.0.1', 40000), ep('10.0.0.2', 80))]));
  t.same(table.judge(d(v4tcp('10.0.0.1', 40000, '10.0.0.2', 80, SYN, 123_456)), goneAt + 7000), { ...owner, inode: 2 });
});

t.test('a SYN after the socket is gone is not its own, even when its first SYN was never seen', async (t) => {
  // e.g. the original SYN was lost to a full ring: a closed socket sends no SYN
  const table = new EndpointTable(GRACE);
  table.apply(socketEvent(app, 1, [flowRule(TCP, ep('10.0.0.1', 40000), ep('10.0.0.2', 80))]));
  const owner = { pid: 100, tid: 101, comm: 'app', inode: 1 };
  t.same(table.judge(d(v4tcp('10.0.0.2', 80, '10.0.0.1', 40000, ACK, 1)), T0), owner, 'the flow, alive');
  const goneAt = T0 + 10_000;
  table.sweep(new Set(), goneAt);
  t.same(table.judge(d(v4tcp('10.0.0.1', 40000, '10.0.0.2', 80, FIN | ACK)), goneAt + 10), owner, 'its FIN tail');
  t.equal(table.judge(d(v4tcp('10.0.0.1', 40000, '10.0.0.2', 80, SYN, 424242)), goneAt + 5000), undefined, 'a SYN 5 s after it was gone');
});

t.test('a new SYN before the old socket is released, through the pipeline', async (t) => {
  const h = harness();
  h.table.apply(socketEvent(app, 1, [flowRule(TCP, ep('10.0.0.1', 40000), ep('10.0.0.2', 80))]));
  h.add([{ name: 'syn', tsMs: T0, data: v4tcp('10.0.0.1', 40000, '10.0.0.2', 80, SYN, 1000) }]);
  h.table.sweep(new Set(), T0 + 100);
  h.add([
    { name: 'fin', tsMs: T0 + 200, data: v4tcp('10.0.0.1', 40000, '10.0.0.2', 80, FIN | ACK) },
    { name: 'fin-ack', tsMs: T0 + 201, data: v4tcp('10.0.0.2', 80, '10.0.0.1', 40000, FIN | ACK) },
    { name: 'new-syn', tsMs: T0 + 5000, data: v4tcp('10.0.0.1', 40000, '10.0.0.2', 80, SYN, 5000) },
    { name: 'new-ack', tsMs: T0 + 5001, data: v4tcp('10.0.0.1', 40000, '10.0.0.2', 80, ACK) },
  ]);
  h.clock.now += OPTIONS.eventLagMs;
  h.pipeline.drain(false);
  t.same(h.written(), ['syn', 'fin', 'fin-ack']);
  t.match(h.pipeline.counters, { written: 3, rejected: 2 });
});

t.test('fragments follow their first fragment', async (t) => {
  const h = harness();
  h.table.apply(socketEvent(app, 9, [bindRule(UDP, ep('0.0.0.0', 4789))]));
  const big = Buffer.alloc(1472);
  h.add([
    { name: 'first', tsMs: T0, data: ip4('10.0.0.1', '10.0.0.2', UDP, udp(5000, 4789, big), { id: 0x4242, moreFragments: true }) },
    { name: 'second', tsMs: T0 + 1, data: ip4('10.0.0.1', '10.0.0.2', UDP, Buffer.alloc(1480, 1), { id: 0x4242, fragOffset: 185, moreFragments: true }) },
    { name: 'last', tsMs: T0 + 2, data: ip4('10.0.0.1', '10.0.0.2', UDP, Buffer.alloc(100, 2), { id: 0x4242, fragOffset: 370 }) },
    { name: 'foreign-first', tsMs: T0 + 3, data: ip4('10.0.0.1', '10.0.0.2', UDP, udp(5000, 4790, big), { id: 0x5555, moreFragments: true }) },
    { name: 'foreign-later', tsMs: T0 + 4, data: ip4('10.0.0.1', '10.0.0.2', UDP, Buffer.alloc(100, 3), { id: 0x5555, fragOffset: 185 }) },
    { name: 'other-src', tsMs: T0 + 5, data: ip4('10.0.0.3', '10.0.0.2', UDP, Buffer.alloc(100, 4), { id: 0x4242, fragOffset: 185 }) },
    { name: 'v6-first', tsMs: T0 + 6, data: ip6('2001:db8::1', '2001:db8::2', UDP, udp(5000, 4789, big), [{ type: 44, more: true, id: 77 }]) },
    { name: 'v6-later', tsMs: T0 + 7, data: ip6('2001:db8::1', '2001:db8::2', UDP, Buffer.alloc(64, 5), [{ type: 44, fragOffset: 185, id: 77 }]) },
  ]);
  t.same(h.written(), ['first', 'second', 'last'], 'decided at once up to the first undecided one');
  h.clock.now += OPTIONS.eventLagMs;
  h.pipeline.drain(false);
  t.same(h.written(), ['first', 'second', 'last'], 'foreign fragments rejected');
  t.match(h.pipeline.counters, { written: 3, rejected: 5 }, 'the IPv6 datagram is not the program\'s: [::] is not bound');
  t.ok(h.out.every((o) => o.owner.inode === 9));

  // with a dual-stack bind the IPv6 fragments are claimed too
  const h6 = harness();
  h6.table.apply(socketEvent(app, 10, [bindRule(UDP, ep('::', 4789))]));
  h6.add([
    { name: 'v6-first', tsMs: T0, data: ip6('2001:db8::1', '2001:db8::2', UDP, udp(5000, 4789, big), [{ type: 44, more: true, id: 77 }]) },
    { name: 'v6-later', tsMs: T0 + 1, data: ip6('2001:db8::1', '2001:db8::2', UDP, Buffer.alloc(64, 5), [{ type: 0 }, { type: 44, fragOffset: 185, id: 77 }]) },
    { name: 'v6-other-id', tsMs: T0 + 2, data: ip6('2001:db8::1', '2001:db8::2', UDP, Buffer.alloc(64, 6), [{ type: 44, fragOffset: 185, id: 78 }]) },
  ]);
  h6.clock.now += OPTIONS.eventLagMs;
  h6.pipeline.drain(false);
  t.same(h6.written(), ['v6-first', 'v6-later']);
  // fragment memory expires
  h6.pipeline.expireFragments(T0 + 30_001);
  h6.add([{ name: 'v6-very-late', tsMs: T0 + 3, data: ip6('2001:db8::1', '2001:db8::2', UDP, Buffer.alloc(64, 7), [{ type: 44, fragOffset: 370, id: 77 }]) }]);
  h6.pipeline.drain(true);
  t.same(h6.written(), ['v6-first', 'v6-later'], 'forgotten after expireFragments');
});

t.test('a later fragment captured before its first fragment follows it', async (t) => {
  // fragments can arrive out of order (network reordering): both are in the same batch
  const h = harness();
  h.table.apply(socketEvent(app, 9, [bindRule(UDP, ep('0.0.0.0', 4789))]));
  h.add([
    { name: 'later', tsMs: T0, data: ip4('10.0.0.2', '10.0.0.1', UDP, Buffer.alloc(100, 1), { id: 0x777, fragOffset: 185 }) },
    { name: 'first', tsMs: T0 + 1, data: ip4('10.0.0.2', '10.0.0.1', UDP, udp(53, 4789, Buffer.alloc(1472)), { id: 0x777, moreFragments: true }) },
  ]);
  h.clock.now += OPTIONS.eventLagMs;
  h.pipeline.drain(false);
  h.pipeline.drain(true);
  t.same(h.written().sort(), ['first', 'later'], 'both fragments of the datagram are written');
});

t.test('ICMP errors about a flow belong to its socket', async (t) => {
  const h = harness();
  h.table.apply(socketEvent(app, 4, [flowRule(UDP, ep('10.0.0.1', 33434), ep('10.9.9.9', 33435))]));
  const quoted = v4udp('10.0.0.1', 33434, '10.9.9.9', 33435);
  h.add([
    { name: 'ttl-exceeded', tsMs: T0, data: ip4('10.0.0.254', '10.0.0.1', 1, icmp(11, 0, quoted)) },
    { name: 'unreachable-other', tsMs: T0 + 1, data: ip4('10.0.0.254', '10.0.0.1', 1, icmp(3, 3, v4udp('10.0.0.1', 33435, '10.9.9.9', 33435))) },
    { name: 'echo', tsMs: T0 + 2, data: ip4('10.0.0.254', '10.0.0.1', 1, icmp(0, 0, quoted)) },
  ]);
  h.pipeline.drain(true);
  t.same(h.written(), ['ttl-exceeded']);
  t.match(h.pipeline.counters, { written: 1, rejected: 2 });
});

t.test('a controller busy past eventLagMs gives up on a packet only once the events are current', async (t) => {
  const h = harness();
  h.pipeline.eventsCurrent(T0);
  h.add([
    { name: 'ours', tsMs: T0, data: v4udp('10.0.0.1', 5000, '10.0.0.9', 53) },
    { name: 'theirs', tsMs: T0 + 1, data: v4udp('10.0.0.1', 5001, '10.0.0.9', 53) },
  ]);
  // a second of packet work, during which no event could be applied
  h.clock.now += 1000;
  h.pipeline.drain(false);
  t.equal(h.pipeline.waiting, 2, 'both still wait: the events are known only up to before they arrived');
  // the events queued meanwhile are applied: they are current up to now
  h.table.apply(socketEvent(app, 7, [flowRule(UDP, ep('10.0.0.1', 5000), ep('10.0.0.9', 53))]));
  h.pipeline.eventsCurrent(h.clock.now);
  h.pipeline.drain(false);
  t.same(h.written(), ['ours'], 'claimed by its event');
  t.match(h.pipeline.counters, { written: 1, rejected: 1 }, 'the other is given up at once');
});

t.test('a 4-tuple reused by a later socket of the program: each packet goes to the socket of its time', async (t) => {
  // a port in TIME_WAIT taken again (loopback reuses it): both sockets' events are applied
  // before the first connection's packets are judged (a busy controller)
  const table = new EndpointTable(GRACE);
  const local = ep('127.0.0.1', 40000);
  const remote = ep('127.0.0.1', 80);
  table.apply(pendingEvent(app, 1, TCP, [remote], T0));
  table.apply(socketEvent(app, 1, [flowRule(TCP, local, remote)], T0 + 1));
  table.apply(pendingEvent(app, 2, TCP, [remote], T0 + 1000));
  table.apply(socketEvent(app, 2, [flowRule(TCP, local, remote)], T0 + 1001));
  const first = { pid: 100, tid: 101, comm: 'app', inode: 1 };
  const second = { ...first, inode: 2 };
  const syn = (ts: number, seq: number) => table.judge(d(v4tcp('127.0.0.1', 40000, '127.0.0.1', 80, SYN, seq)), ts);
  const ack = (ts: number) => table.judge(d(v4tcp('127.0.0.1', 80, '127.0.0.1', 40000, ACK)), ts);
  t.same(syn(T0 + 0.5, 1000), first, "the first connection's SYN");
  t.same(ack(T0 + 2), first, 'its reply');
  t.same(syn(T0 + 1000.5, 9000), second, "the second connection's SYN");
  t.same(ack(T0 + 1002), second, 'its reply');
  t.same(ack(T0 + 3), first, 'a late packet of the first, judged last');
});

t.test('a waiting packet is judged again only when the table has changed', async (t) => {
  const h = harness();
  let judged = 0;
  const judge = h.table.judge.bind(h.table);
  h.table.judge = (...a: Parameters<typeof judge>) => (judged++, judge(...a));
  h.pipeline.eventsCurrent(T0);
  h.add([{ name: 'a', tsMs: T0, data: v4udp('10.0.0.1', 5000, '10.0.0.9', 53) }]);
  t.equal(judged, 1, 'judged on arrival');
  for (let i = 0; i < 10; i++) h.pipeline.drain(false);
  t.equal(judged, 1, 'ten drains with nothing new: not judged again');
  h.table.apply(socketEvent(app, 7, [flowRule(UDP, ep('10.0.0.1', 5000), ep('10.0.0.9', 53))]));
  h.pipeline.drain(false);
  t.equal(judged, 2, 'judged again after an event');
  t.same(h.written(), ['a']);
});

t.test('after a detach (endAt), later packets are neither queued nor written', async (t) => {
  const h = harness();
  h.table.apply(socketEvent(app, 7, [flowRule(UDP, ep('10.0.0.1', 5000), ep('10.0.0.9', 53))]));
  h.pipeline.endAt(T0 + 10);
  h.add([
    { name: 'before', tsMs: T0 + 5, data: v4udp('10.0.0.1', 5000, '10.0.0.9', 53) },
    { name: 'after', tsMs: T0 + 20, data: v4udp('10.0.0.1', 5000, '10.0.0.9', 53) },
  ]);
  t.same(h.written(), ['before'], 'only the packet before the detach');
  t.equal(h.pipeline.waiting, 0, 'nothing waits');
  t.match(h.pipeline.counters, { written: 1, rejected: 1 });
});

t.test('batch memory: packets decided by whileValid are not copied; packets still waiting own their bytes', async (t) => {
  const table = new EndpointTable(GRACE, true); // UDP judged by sweeps: a fresh socket's packets wait for one
  const written: Array<{ data: Buffer; owner: Owner }> = [];
  const pipeline = new CapturePipeline(table, (rec, owner) => void written.push({ data: rec.data, owner }), OPTIONS, () => T0 + 5);
  table.apply(socketEvent(app, 7, [flowRule(UDP, ep('10.0.0.1', 5000), ep('10.0.0.9', 53))], T0 - 1));
  table.apply(socketEvent(app, 8, [flowRule(UDP, ep('10.0.0.1', 5001), ep('10.0.0.9', 53))], T0 - 1));
  const a = v4udp('10.0.0.1', 5000, '10.0.0.9', 53);
  const b = v4udp('10.0.0.1', 5001, '10.0.0.9', 53);
  const mem = batch([
    { tsMs: T0, data: a },
    { tsMs: T0 + 1, data: b },
  ]);
  let sawWaiting = -1;
  pipeline.addBatch(mem, () => {
    sawWaiting = pipeline.waiting;
    // a sweep that proves socket 7 alive after its packet; socket 8 is not in it (not yet listed)
    table.observe({ inodes: new Set([7, 8]), before: T0 + 0.5, after: T0 + 0.6 }, new Set([UDP]));
    pipeline.drain(false);
  });
  t.equal(sawWaiting, 2, 'both packets waited for a sweep when whileValid ran');
  t.equal(written.length, 1, "socket 7's packet is decided by the sweep inside whileValid");
  t.equal(pipeline.waiting, 1, "socket 8's packet (after the sweep) still waits");
  mem.fill(0); // the batch memory is reused by the next batch
  t.ok(written[0].data.every((x) => x === 0), 'it was written from the batch itself, not from a copy');
  table.observe({ inodes: new Set([7, 8]), before: T0 + 2, after: T0 + 2.1 }, new Set([UDP]));
  pipeline.drain(false);
  t.equal(written.length, 2, 'written after the next sweep');
  t.same(written[1].data, b, 'with its own bytes, not the reused batch memory');
  t.equal(written[1].owner.inode, 8);
});

t.test('a socket event carrying its entry (a merged pending event) is judged as the two events applied in turn', async (t) => {
  const dest = ep('10.0.0.2', 80);
  const pending = (time: number, tid: number, inode: number) => pendingEvent({ pid: 100, tid }, inode, TCP, [dest], time);
  // a connect that succeeded (local port 40000), and one refused inside the call (no port left)
  const done = socketEvent({ pid: 100, tid: 101 }, 1, [flowRule(TCP, ep('10.0.0.1', 40000), dest)], T0 + 5);
  const refused = { ...socketEvent({ pid: 100, tid: 102 }, 2, [], T0 + 6), local: null, remotes: [dest], result: -111, errno: 'ECONNREFUSED' };
  const apart = new EndpointTable(GRACE);
  apart.apply(pending(T0 + 1, 101, 1));
  apart.apply(pending(T0 + 2, 102, 2));
  apart.apply(done);
  apart.apply(refused);
  const merged = new EndpointTable(GRACE);
  merged.apply({ ...done, entry: { time: T0 + 1, rules: pending(T0 + 1, 101, 1).rules } });
  merged.apply({ ...refused, entry: { time: T0 + 2, rules: pending(T0 + 2, 102, 2).rules } });
  const packets: Array<[string, Buffer, number]> = [
    ['SYN before either call', v4tcp('10.0.0.1', 40000, '10.0.0.2', 80, SYN), T0 - 5],
    ['SYN inside the call', v4tcp('10.0.0.1', 40000, '10.0.0.2', 80, SYN), T0 + 3],
    ['reply after the call', v4tcp('10.0.0.2', 80, '10.0.0.1', 40000, SYN | ACK), T0 + 7],
    ['refused SYN', v4tcp('10.0.0.1', 41000, '10.0.0.2', 80, SYN), T0 + 4],
    ['its RST', v4tcp('10.0.0.2', 80, '10.0.0.1', 41000, RST | ACK), T0 + 4.5],
  ];
  for (const [name, p, ts] of packets) t.same(merged.judge(d(p), ts), apart.judge(d(p), ts), name);
  t.equal(merged.pendingCount, 0, 'no pending destination left');
  t.same(
    packets.map(([, p, ts]) => (merged.judge(d(p), ts) as Owner | undefined)?.inode),
    [undefined, 1, 1, 2, 2],
    'the verdicts themselves',
  );
});

t.test('a call entered again (restarted after a signal) leaves no pending destination behind', async (t) => {
  const table = new EndpointTable(GRACE);
  const dest = ep('10.0.0.2', 80);
  // the tracer reports no exit for a call the kernel restarts: its entry comes again
  table.apply(pendingEvent({ pid: 100, tid: 101 }, 1, TCP, [dest], T0));
  table.apply(pendingEvent({ pid: 100, tid: 101 }, 1, TCP, [dest], T0 + 50));
  t.equal(table.pendingCount, 1, 'one call in flight');
  table.apply(socketEvent({ pid: 100, tid: 101 }, 1, [flowRule(TCP, ep('10.0.0.1', 40000), dest)], T0 + 60));
  t.equal(table.pendingCount, 0, 'none once it returned');
  t.equal(table.judge(d(v4tcp('10.0.0.3', 5000, '10.0.0.2', 80, SYN)), T0 + 70), undefined, "another socket's SYN to the destination is nobody's, not pending");
});

t.test('pipeline: packets still undecided at the end are counted apart', async (t) => {
  const h = harness();
  h.table.apply(pendingEvent(app, 3, TCP, [ep('10.0.0.2', 443)]));
  h.add([
    { name: 'pending', tsMs: T0, data: v4tcp('10.0.0.1', 41000, '10.0.0.2', 443, SYN) },
    { name: 'nobody', tsMs: T0 + 1, data: v4udp('10.0.0.1', 6000, '10.0.0.3', 53) },
  ]);
  h.clock.now += 5000;
  h.pipeline.drain(false);
  t.equal(h.pipeline.waiting, 1, 'the pending one waits for its call, the other is rejected');
  h.pipeline.drain(true);
  t.same(h.written(), [], 'the call never ended: not written');
  t.match(h.pipeline.counters, { written: 0, rejected: 2, undecided: 1 }, 'but counted as left out undecided');
});

t.test('a first SYN judged by the port rule of a bound socket counts as its flow\'s own', async (t) => {
  // bind(40000), then connect(): the SYN leaves before the exit stop gives the flow rule
  const table = new EndpointTable(GRACE);
  table.apply(socketEvent(app, 1, [bindRule(TCP, ep('0.0.0.0', 40000))], T0));
  const owner = { pid: 100, tid: 101, comm: 'app', inode: 1 };
  t.same(table.judge(d(v4tcp('10.0.0.1', 40000, '10.0.0.2', 80, SYN, 1000)), T0 + 1, 'src'), owner, 'its SYN, by the port rule');
  table.apply(socketEvent(app, 1, [flowRule(TCP, ep('10.0.0.1', 40000), ep('10.0.0.2', 80))], T0 + 2));
  // not seen gone yet (the next sweep is still to come): another program takes the 4-tuple
  t.equal(table.judge(d(v4tcp('10.0.0.1', 40000, '10.0.0.2', 80, SYN, 5555)), T0 + 2000, 'src'), undefined, 'a SYN with another sequence: not its own');
  t.equal(table.judge(d(v4tcp('10.0.0.2', 80, '10.0.0.1', 40000, SYN | ACK, 9)), T0 + 2001, 'dst'), undefined, 'nor what answers it');
  t.equal(table.judge(d(v4tcp('10.0.0.1', 40000, '10.0.0.2', 80, SYN, 1000)), T0 + 2002, 'src'), undefined, 'the 4-tuple is not its own any more');
});
