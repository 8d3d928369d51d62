// The native path against the pipeline's own: the same tracer events and capture batches go
// through the real controller twice, with the native path off and on, and the capture files
// must be the same bytes (pcap and pcapng, with -c, -C and -G), while the native path wrote
// most of the packets. Then check mode must catch a record that differs.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { TraceEvent } from '../src/native';
import { CaptureOutput, type RotationOptions } from '../src/output/rotation';
import { type FormatName, makeFormat } from '../src/output/formats';
import { Controller } from '../src/session/controller';
import { LiveFlows } from '../src/flows/live-flows';
import type { NativePathMode } from '../src/capture/native-path';
import type { StopReason } from '../src/report/summary';
import { PendingHandshakes } from '../src/tls/handshakes';
import { flowKeyEnds, reversedFlowKey, tcpFlowKey } from '../src/tracker/endpoints';
import { ep, flowRule, pendingEvent, socketEvent } from './helpers/unit-events';
import { ARPHRD_ETHER, ARPHRD_LOOPBACK, type Ip4Options, PACKET_HOST, PACKET_OUTGOING, type Rec, batch, ip4, ip6, tcp } from './helpers/unit-packets';

type Ip4Extra = Omit<Ip4Options, 'id'>;

const TCP = 6;
const SYN = 0x02;
const ACK = 0x10;
const PSH = 0x08;
const FIN = 0x01;
const app = { pid: 100, tid: 101, comm: 'app' };
const child = { pid: 150, tid: 150, comm: 'worker' };

type Step =
  | { events: TraceEvent[] }
  | { packets: Rec[] }
  | { endAt: number }
  /** The clock (the controller's now) moves to this time. */
  | { now: number }
  /** The program logs these TLS key lines. */
  | { keys: string }
  /** A sweep: the sockets alive are all but these inodes. */
  | { sweepGone: number[] };

let ipId = 1;
const payload = (n: number) => Buffer.alloc(n, 0x41 + (ipId % 26));
const seg = (src: string, sp: number, dst: string, dp: number, flags: number, bytes = 0, seq?: number) =>
  src.includes(':') ? ip6(src, dst, TCP, tcp(sp, dp, flags, payload(bytes), seq)) : ip4(src, dst, TCP, tcp(sp, dp, flags, payload(bytes), seq), { id: ipId++ });

/**
 * One run's script, from T (ms): a connection out over ethernet, a second interface, IPv6,
 * a loopback connection with both ends traced, an exec that changes what the file says of a
 * process, a 4-tuple taken again by a newer socket, a SYN that supersedes a flow, records
 * -i/-f passed over and loopback copies, a TLS ClientHello whose key comes late, a socket
 * whose inode two newer sockets take in turn while its flow is still in its grace, and a detach.
 */
function script(T: number, step = 0.37): Step[] {
  ipId = 1;
  const steps: Step[] = [];
  const exec = (who: typeof app, exe: string, time: number): TraceEvent => ({ kind: 'exec', pid: who.pid, tid: who.tid, time, formerTid: who.tid, comm: who.comm, exe }) as TraceEvent;
  steps.push({ events: [exec(app, '/usr/bin/app', T - 50), { kind: 'spawn', pid: app.pid, tid: app.tid, time: T - 40, child: child.pid, thread: false } as TraceEvent] });
  steps.push({ events: [socketEvent(app, 1, [flowRule(TCP, ep('10.0.0.1', 40000), ep('10.0.0.2', 80))], T)] });
  steps.push({ events: [socketEvent(child, 2, [flowRule(TCP, ep('2001:db8::1', 40001), ep('2001:db8::2', 443))], T)] });
  steps.push({ events: [socketEvent(app, 3, [flowRule(TCP, ep('127.0.0.1', 50000), ep('127.0.0.1', 8080))], T)] });
  steps.push({ events: [socketEvent(child, 4, [flowRule(TCP, ep('127.0.0.1', 8080), ep('127.0.0.1', 50000))], T)] });
  let ts = T + 1;
  const out = (data: Buffer, o: Partial<Rec> = {}): Rec => ({ tsMs: (ts += step), data, pkttype: PACKET_OUTGOING, hatype: ARPHRD_ETHER, ...o });
  const inn = (data: Buffer, o: Partial<Rec> = {}): Rec => ({ tsMs: (ts += step), data, pkttype: PACKET_HOST, hatype: ARPHRD_ETHER, ...o });
  const lo = (data: Buffer, o: Partial<Rec> = {}): Rec => ({ tsMs: (ts += step), data, pkttype: PACKET_HOST, hatype: ARPHRD_LOOPBACK, ifindex: 1, ...o });
  const handshake = (): Rec[] => [
    out(seg('10.0.0.1', 40000, '10.0.0.2', 80, SYN, 0, 7)),
    inn(seg('10.0.0.2', 80, '10.0.0.1', 40000, SYN | ACK)),
    out(seg('10.0.0.1', 40000, '10.0.0.2', 80, ACK)),
  ];
  const traffic = (n: number): Rec[] => {
    const recs: Rec[] = [];
    for (let i = 0; i < n; i++) {
      recs.push(out(seg('10.0.0.1', 40000, '10.0.0.2', 80, ACK | PSH, 50 + (i % 7) * 100)));
      recs.push(inn(seg('10.0.0.2', 80, '10.0.0.1', 40000, ACK, 1400)));
      if (i % 5 === 0) recs.push(out(seg('2001:db8::1', 40001, '2001:db8::2', 443, ACK | PSH, 300)));
      if (i % 5 === 1) recs.push(inn(seg('2001:db8::2', 443, '2001:db8::1', 40001, ACK, 900)));
      if (i % 3 === 0) recs.push(lo(seg('127.0.0.1', 50000, '127.0.0.1', 8080, ACK | PSH, 64)));
      if (i % 3 === 1) recs.push(lo(seg('127.0.0.1', 8080, '127.0.0.1', 50000, ACK | PSH, 128)));
      if (i % 11 === 2) recs.push(lo(seg('127.0.0.1', 8080, '127.0.0.1', 50000, ACK, 0), { pkttype: PACKET_OUTGOING })); // a loopback copy
      if (i % 13 === 3) recs.push(inn(seg('10.9.9.9', 1234, '10.0.0.1', 22, ACK, 10), { skip: true })); // -i/-f said no
      if (i % 17 === 4) recs.push(inn(seg('10.0.0.2', 80, '10.0.0.1', 40000, ACK, 200), { ifindex: 3 })); // another interface
      if (i % 19 === 5) recs.push(inn(seg('10.0.0.2', 80, '10.0.0.1', 40000, ACK, 1400), { len: 9000 })); // cut by the snaplen
    }
    return recs;
  };
  steps.push({ packets: handshake() });
  steps.push({ packets: traffic(40) });
  steps.push({ packets: traffic(40) });
  // the app's child execs: its packets name another program from now on
  steps.push({ events: [exec(child, '/usr/bin/other', ts + 0.1)] });
  steps.push({ packets: traffic(30) });
  // the first connection's 4-tuple, closed, taken again by a newer socket of the program
  const reuseAt = ts + 5;
  steps.push({ events: [socketEvent(child, 5, [flowRule(TCP, ep('10.0.0.1', 40000), ep('10.0.0.2', 80))], reuseAt)] });
  const before = traffic(6);
  ts = reuseAt + 1;
  steps.push({ packets: [...before, out(seg('10.0.0.1', 40000, '10.0.0.2', 80, FIN | ACK)), ...traffic(20)] });
  // a SYN with another sequence number on the IPv6 flow: a new connection, not the program's
  steps.push({ packets: [out(seg('2001:db8::1', 40001, '2001:db8::2', 443, ACK | PSH, 10)), inn(seg('2001:db8::2', 443, '2001:db8::1', 40001, SYN, 0, 99)), ...traffic(10)] });
  // a ClientHello on the first flow: with TLS keys, the file holds it (and what follows) until its key
  const random = Buffer.alloc(32, 0xab);
  const hello = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x2f, 0x01, 0x00, 0x00, 0x2b, 0x03, 0x03]), random, Buffer.alloc(4)]);
  steps.push({ now: ts });
  steps.push({ packets: [...traffic(4), out(ip4('10.0.0.1', '10.0.0.2', TCP, tcp(40000, 80, ACK | PSH, hello), { id: ipId++ })), ...traffic(10)] });
  steps.push({ now: ts + 100 });
  steps.push({ packets: traffic(10) });
  steps.push({ now: ts + 400 });
  steps.push({ packets: traffic(6) });
  steps.push({ keys: `CLIENT_RANDOM ${random.toString('hex')} ${'cd'.repeat(48)}\n` });
  steps.push({ packets: traffic(6) });
  // records on both sides of the file's cut (what is 250 ms old is written, the rest held) when
  // a key arrives: its block goes ahead of the held ones only
  const k0 = ts + 1000;
  steps.push({ now: k0 });
  steps.push({ packets: Array.from({ length: 10 }, (_, i) => out(seg('10.0.0.1', 40000, '10.0.0.2', 80, ACK | PSH, 100), { tsMs: k0 + i * 30 })) });
  steps.push({ now: k0 + 400 });
  steps.push({ packets: [inn(seg('10.0.0.2', 80, '10.0.0.1', 40000, ACK), { tsMs: k0 + 390 })] });
  steps.push({ keys: `CLIENT_RANDOM ${'ef'.repeat(32)} ${'cd'.repeat(48)}\n` });
  steps.push({ packets: [inn(seg('10.0.0.2', 80, '10.0.0.1', 40000, ACK), { tsMs: k0 + 395 })] });
  ts = k0 + 400;
  steps.push({ now: ts + 3000 });
  // a loopback connection on inode 7; its socket is swept away, and inode 7 goes to a socket on
  // another port, then to one on the first port again, while the old flow is in its grace
  const A = () => lo(seg('127.0.0.1', 51000, '127.0.0.1', 8081, ACK | PSH, 32));
  steps.push({ events: [socketEvent(app, 7, [flowRule(TCP, ep('127.0.0.1', 51000), ep('127.0.0.1', 8081))], ts)] });
  steps.push({ packets: [A(), A(), A()] });
  steps.push({ sweepGone: [7] });
  steps.push({ events: [socketEvent(app, 7, [flowRule(TCP, ep('127.0.0.1', 52000), ep('127.0.0.1', 8082))], ts + 1)] });
  steps.push({ packets: [A(), A(), A()] });
  steps.push({ sweepGone: [7] });
  steps.push({ events: [socketEvent(app, 7, [flowRule(TCP, ep('127.0.0.1', 51000), ep('127.0.0.1', 8083))], ts + 2)] });
  steps.push({ packets: [A(), A(), A()] });
  // a connection whose packets come before its socket event (they wait for the call in flight),
  // with IPv4 options, a fragment and a TCP header cut short among them
  const C = (flags: number, bytes = 0, o: Ip4Extra = {}) => out(ip4('10.0.0.1', '10.0.0.3', TCP, tcp(40100, 443, flags, payload(bytes)), { id: ipId++, ...o }));
  const Cin = (flags: number, bytes = 0) => inn(ip4('10.0.0.3', '10.0.0.1', TCP, tcp(443, 40100, flags, payload(bytes)), { id: ipId++ }));
  steps.push({ events: [pendingEvent(app, 9, TCP, [ep('10.0.0.3', 443)], ts)] });
  steps.push({ packets: [C(SYN), Cin(SYN | ACK), C(ACK), C(ACK | PSH, 200), Cin(ACK, 700), C(ACK | PSH, 50), ...traffic(3)] });
  steps.push({ events: [socketEvent(app, 9, [flowRule(TCP, ep('10.0.0.1', 40100), ep('10.0.0.3', 443))], ts)] });
  steps.push({
    packets: [
      C(ACK | PSH, 300),
      C(ACK | PSH, 300, { options: Buffer.from([0x01, 0x01, 0x01, 0x00]) }),
      C(ACK | PSH, 300, { moreFragments: true }),
      { ...C(ACK), data: C(ACK).data.subarray(0, 30) },
      Cin(ACK, 100),
      C(ACK | PSH, 300),
    ],
  });
  steps.push({ endAt: ts + 20 });
  ts += 10;
  steps.push({ packets: traffic(20) });
  return steps;
}

interface RunResult {
  files: Map<string, Buffer>;
  counters: object;
  native: number;
  mismatches: number;
  stops: StopReason[];
  /** --flows: packets added to their flows from the native side's fields. */
  fromNativeFields: number;
}

function run(
  t: Test,
  mode: NativePathMode,
  format: FormatName,
  o: { count?: number; rotation?: RotationOptions; mangle?: boolean; step?: number; name?: string; keys?: boolean; flows?: boolean } = {},
  T = Math.floor(Date.now() / 1000) * 1000 + 100,
): RunResult {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'td-native-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const stops: StopReason[] = [];
  let controller: Controller;
  // the controller's clock, moved by the script (the file's flushes with TLS keys depend on it)
  const realNow = Date.now;
  let now = T;
  Date.now = () => now;
  t.teardown(() => void (Date.now = realNow));
  let keyLines: string | undefined;
  const handshakes = o.keys ? new PendingHandshakes() : undefined;
  const takeKeys = (): Buffer | undefined => {
    const k = keyLines ? Buffer.from(keyLines) : undefined;
    keyLines = undefined;
    if (k) handshakes?.noteKeys(k);
    return k;
  };
  const output = new CaptureOutput({
    path: path.join(dir, o.name ?? `out.${format}`),
    newFormat: () => {
      const f = makeFormat(format, { snaplen: 262144, description: 'test', interfaceName: (i) => `if${i}`, exeOf: (pid) => controller.programs.exeOf(pid) });
      if (!o.mangle) return f;
      // a format whose own records differ from what the native path writes: check mode must say so
      const options = f.known.ownerOptions;
      return { ...f, known: { ...f.known, ownerOptions: (owner) => Buffer.from(options(owner)).fill(0x58, 8, 12) } };
    },
    rotation: o.rotation,
    file: o.keys ? { holdBack: true, secrets: takeKeys } : undefined,
    totals: () => ({ start: 0n, end: 0n, kernelDrops: 0 }),
  });
  // --flows: the records in flows.jsonl, compared with the capture files
  const flowsFd = o.flows ? fs.openSync(path.join(dir, 'flows.jsonl'), 'w') : undefined;
  const flows = o.flows ? new LiveFlows({ fd: flowsFd, idleSec: 120, activeSec: 1800, exeOf: () => undefined }) : undefined;
  controller = new Controller({
    file: output,
    flows,
    count: o.count,
    flushEveryBatch: !!o.keys,
    handshakes,
    format: undefined,
    eventsFd: 2,
    status: undefined,
    stopStats: undefined,
    onStarted: () => output.commit(),
    requestStop: (why) => void stops.push(why),
    stopRequested: () => stops.length > 0,
    nativePath: mode,
  });
  output.commit();
  for (const step of script(T, o.step)) {
    if ('events' in step) controller.onEvents(step.events);
    else if ('packets' in step) controller.onBatch(batch(step.packets));
    else if ('now' in step) now = step.now;
    else if ('keys' in step) keyLines = step.keys;
    else if ('sweepGone' in step) controller.table.observe({ inodes: new Set(Array.from({ length: 10 }, (_, i) => i).filter((i) => !step.sweepGone.includes(i))), before: now, after: now });
    else controller.pipeline.endAt(step.endAt);
  }
  controller.pipeline.drain(true);
  flows?.end();
  if (flowsFd !== undefined) fs.closeSync(flowsFd);
  output.close({ start: 0n, end: 0n, kernelDrops: 0 });
  const files = new Map<string, Buffer>();
  for (const name of fs.readdirSync(dir).sort()) {
    // -G: the file opened at the start, before the first packet's period, is named by the clock
    if (/^\d+\./.test(name) && Number(name.split('.')[0]) * 1000 < T - 1000) continue;
    files.set(name, fs.readFileSync(path.join(dir, name)));
  }
  return {
    files,
    counters: { ...controller.pipeline.counters },
    native: controller.nativePath?.written ?? 0,
    mismatches: controller.nativePath?.mismatches ?? 0,
    stops,
    fromNativeFields: flows?.fromNativeFields ?? 0,
  };
}

function same(t: Test, format: FormatName, o: Parameters<typeof run>[3] = {}, T = Math.floor(Date.now() / 1000) * 1000 + 100): void {
  // (the same capture times for both: the file's bytes hold them)
  const off = run(t, 'off', format, o, T);
  const on = run(t, 'on', format, o, T);
  t.same([...on.files.keys()], [...off.files.keys()], 'the same files');
  for (const [name, bytes] of off.files) {
    const other = on.files.get(name)!;
    let at = 0;
    while (at < bytes.length && bytes[at] === other[at]) at++;
    t.ok(bytes.equals(other), `${name}: the same ${bytes.length} bytes`, { firstDifference: at === bytes.length ? undefined : at });
  }
  t.same(on.counters, off.counters, 'the same counts');
  t.same(on.stops, off.stops, 'the same stops asked for');
  t.equal(off.native, 0, 'off: the native path wrote nothing');
  const written = (off.counters as { written: number }).written;
  t.ok(on.native > written * 0.6, `on: the native path wrote ${on.native} of ${written} packets`);
}

t.test('pcapng: the same file from either path', async (t) => same(t, 'pcapng'));
t.test('pcap: the same file from either path', async (t) => same(t, 'pcap'));
t.test('pcapng with TLS keys: records held for their keys, the key block in the same place', async (t) => same(t, 'pcapng', { keys: true }));
t.test('-c 200: the same packets, and the same stop', async (t) => same(t, 'pcapng', { count: 200 }));
t.test('-C: the same files at the same boundaries', async (t) => same(t, 'pcapng', { rotation: { fileSizeMB: 0.03 } }));
t.test('-G 1: the same files at the same boundaries', async (t) =>
  // packets 3 ms apart over 2 s, from 5 s ahead of the clock (every file is a packet's period)
  same(t, 'pcapng', { rotation: { periodSec: 1 }, step: 3, name: '%s.pcapng' }, Math.floor(Date.now() / 1000) * 1000 + 5000));
t.test('-C with pcap', async (t) => same(t, 'pcap', { rotation: { fileSizeMB: 0.05 } }));
t.test('--flows: the same flow records, most packets added from the native fields', async (t) => {
  const T = Math.floor(Date.now() / 1000) * 1000 + 100;
  same(t, 'pcapng', { flows: true }, T);
  const checked = run(t, 'check', 'pcapng', { flows: true }, T);
  t.equal(checked.mismatches, 0, 'check mode: the native fields equal the flow reader\'s');
  const on = run(t, 'on', 'pcapng', { flows: true }, T);
  t.ok(on.fromNativeFields > on.native / 2, `${on.fromNativeFields} of the ${on.native} native records added from their fields`);
  t.ok(on.files.get('flows.jsonl')!.length > 0, 'flow records were written');
});

t.test('flow keys: both ends, and the flow the other way round', async (t) => {
  const k = tcpFlowKey('\x0a\x00\x00\x01', 40000, '\x0a\x00\x00\x7c', 80); // (0x7c is '|')
  t.same(flowKeyEnds(k), [{ bytes: '\x0a\x00\x00\x01', port: 40000 }, { bytes: '\x0a\x00\x00\x7c', port: 80 }]);
  t.equal(reversedFlowKey(k), tcpFlowKey('\x0a\x00\x00\x7c', 80, '\x0a\x00\x00\x01', 40000));
  const v6 = '\x20\x01'.padEnd(16, '\x00');
  t.equal(reversedFlowKey(tcpFlowKey(v6, 443, v6.replace(/.$/, '\x01'), 5000)), tcpFlowKey(v6.replace(/.$/, '\x01'), 5000, v6, 443));
});

t.test('check mode counts the native records that differ from the pipeline\'s', async (t) => {
  const mangled = run(t, 'check', 'pcapng', { mangle: true });
  t.ok(mangled.native > 0, 'the native path wrote');
  t.ok(mangled.mismatches > 0, `${mangled.mismatches} records differ`);
  const clean = run(t, 'check', 'pcapng');
  t.ok(clean.native > 0, 'unmangled: the native path wrote');
  t.equal(clean.mismatches, 0, 'unmangled: none differs');
});
