// The classic BPF fallback: the assembler (trampolines for far jumps), the two programs
// (run by the interpreter on crafted packets and accepted by the kernel), port-interval
// widening, and the stop-path switch between the wide and the exact program.
import t from 'tap';
import { ClassicAssembler, OP, BPF_MAXINSNS, encodeClassic, validate } from '../src/filter/classic';
import { buildExactClassic, buildWideClassic, portIntervals } from '../src/filter/classic-program';
import { runClassic } from '../src/filter/classic-interpreter';
import { native } from '../src/native';
import { icmp, ip4, ip6, tcp, udp } from './helpers/unit-packets';

const cfg = { snaplen: 1000, loopbackIfindex: 1 };
const V4 = { protocol: 0x0800, pkttype: 0, ifindex: 2 };
const V6 = { protocol: 0x86dd, pkttype: 0, ifindex: 2 };
const udp4 = (sport: number, dport: number) => ip4('10.0.0.1', '10.0.0.2', 17, udp(sport, dport));
const tcp4 = (sport: number, dport: number) => ip4('10.0.0.1', '10.0.0.2', 6, tcp(sport, dport));

t.test('assembler: a jump beyond 255 instructions goes through a trampoline', (t) => {
  const a = new ClassicAssembler();
  a.op(OP.ldB, 0).jump(OP.jeq, 0x45, 'far', undefined);
  for (let i = 0; i < 300; i++) a.op(OP.ldB, 0);
  a.ret(0);
  a.label('far').ret(7);
  const p = a.assemble();
  validate(p);
  t.ok(p.length > 303, 'a trampoline was inserted');
  t.equal(runClassic(p, Buffer.from([0x45, 0, 0, 0, 0, 0, 0, 0, 0, 0]), V4), 7, 'the far target is reached');
  t.equal(runClassic(p, Buffer.from([0x46, 0, 0, 0, 0, 0, 0, 0, 0, 0]), V4), 0, 'the fall-through skips the trampoline');
  t.end();
});

t.test('assembler: errors', (t) => {
  t.throws(() => new ClassicAssembler().jump(OP.jeq, 1, 'nowhere', undefined).ret(0).assemble(), /undefined label/);
  t.throws(() => new ClassicAssembler().label('x').op(OP.ldB, 0).jump(OP.jeq, 1, 'x', undefined).ret(0).assemble(), /backward/);
  t.throws(() => validate([{ code: OP.ldB, jt: 0, jf: 0, k: 0 }]), /return/);
  t.throws(() => validate(Array(BPF_MAXINSNS + 1).fill({ code: OP.ret, jt: 0, jf: 0, k: 0 })), /instructions/);
  t.end();
});

t.test('portIntervals merges neighbours and widens to fit', (t) => {
  t.same(portIntervals([5, 3, 4, 10, 11, 20], 10), [[3, 5], [10, 11], [20, 20]]);
  t.same(portIntervals([1, 10, 12, 100], 2), [[1, 12], [100, 100]], 'the smallest gaps merge first');
  const wide = portIntervals([1, 5, 9, 1000, 2000], 1);
  t.same(wide, [[1, 2000]]);
  t.end();
});

t.test('wide program: every TCP/UDP packet and ICMP errors; not the loopback outgoing copy', (t) => {
  const p = buildWideClassic(cfg);
  t.ok(runClassic(p, tcp4(1, 2), V4) > 0, 'TCP');
  t.ok(runClassic(p, udp4(1, 2), V4) > 0, 'UDP');
  t.ok(runClassic(p, ip6('fd00::1', 'fd00::2', 17, udp(1, 2)), V6) > 0, 'UDP over IPv6');
  t.ok(runClassic(p, ip4('10.0.0.2', '10.0.0.1', 1, icmp(3, 3, udp4(1, 2))), V4) > 0, 'ICMP port unreachable');
  t.equal(runClassic(p, ip4('10.0.0.2', '10.0.0.1', 1, icmp(8, 0)), V4), 0, 'not an ICMP echo');
  t.equal(runClassic(p, ip4('10.0.0.1', '10.0.0.2', 47, Buffer.alloc(8)), V4), 0, 'not GRE');
  t.equal(runClassic(p, udp4(1, 2), { ...V4, pkttype: 4, ifindex: 1 }), 0, 'not the outgoing copy on lo');
  t.ok(runClassic(p, udp4(1, 2), { ...V4, pkttype: 4, ifindex: 2 }) > 0, 'outgoing on another interface');
  t.end();
});

t.test('exact program: exactly the ports in use (either side), per protocol', (t) => {
  const ports = new Map([
    [17, [5000, 5001, 6000]],
    [6, [80]],
  ]);
  const p = buildExactClassic(ports, cfg);
  for (const port of [5000, 5001, 6000]) {
    t.ok(runClassic(p, udp4(port, 53), V4) > 0, `UDP from ${port}`);
    t.ok(runClassic(p, udp4(53, port), V4) > 0, `UDP to ${port}`);
  }
  t.equal(runClassic(p, udp4(5002, 53), V4), 0, 'UDP 5002 is not in use');
  t.equal(runClassic(p, udp4(80, 53), V4), 0, 'port 80 is TCP only');
  t.ok(runClassic(p, tcp4(40000, 80), V4) > 0, 'TCP to 80');
  t.ok(runClassic(p, ip6('fd00::1', 'fd00::2', 17, udp(6000, 1)), V6) > 0, 'IPv6 too');
  t.equal(runClassic(buildExactClassic(new Map(), cfg), udp4(5000, 53), V4), 0, 'no ports: nothing');
  t.end();
});

t.test('exact program: 3,000 scattered ports fit and all pass', (t) => {
  const ports: number[] = [];
  for (let i = 0; i < 3000; i++) ports.push(10000 + i * 17);
  const p = buildExactClassic(new Map([[17, ports]]), cfg);
  t.ok(p.length <= BPF_MAXINSNS, `${p.length} instructions`);
  const missing = ports.filter((port) => runClassic(p, udp4(port, 53), V4) === 0 || runClassic(p, udp4(53, port), V4) === 0);
  t.same(missing, [], 'every port passes, as source and as destination');
  t.equal(runClassic(p, udp4(9999, 53), V4), 0, 'a port below every interval does not');
  t.end();
});

t.test('the kernel accepts both programs, and the switch swaps them by generation', (t) => {
  const addon = native();
  const cap = new addon.Capture({ blockSize: 1 << 20, blockCount: 2 }, () => {});
  const wide = encodeClassic(buildWideClassic(cfg));
  const exact = encodeClassic(buildExactClassic(new Map([[17, [5000]]]), cfg));
  cap.attachClassic(exact);
  cap.attachClassic(wide);
  const rules = new addon.RuleSet({ capture: cap, wide });
  t.equal(rules.generation(), 0);
  rules.add({ proto: 17, local: { address: '0.0.0.0', port: 5000 }, inode: 1 });
  t.equal(rules.generation(), 1, 'a rule added: generation 1');
  t.equal(rules.classicSwaps(), 1, 'the wide program was swapped in');
  t.equal(rules.offerClassic(exact, 0), false, 'an exact program from generation 0 is refused');
  t.equal(rules.offerClassic(exact, 1), true, 'one reflecting generation 1 is attached');
  rules.add({ proto: 17, local: { address: '0.0.0.0', port: 5001 }, inode: 2 });
  t.equal(rules.classicSwaps(), 2, 'the next rule swaps the wide program in again');
  cap.stop();
  t.end();
});
