// The eBPF assembler (encoding checked byte by byte and by the kernel's verifier) and the
// socket filter program, loaded into the real kernel and run with BPF_PROG_TEST_RUN on crafted
// packets against rule maps filled through the native RuleSet.
import t, { type Test } from 'tap';
import { EbpfAssembler, HELPER_MAP_LOOKUP_ELEM } from '../src/filter/ebpf';
import { buildEbpfFilter } from '../src/filter/ebpf-program';
import { type NativeRuleSet, native } from '../src/native';
import { icmp, ip4, ip6, tcp, udp } from './helpers/unit-packets';

const SNAPLEN = 262144;
const TCP = 6;
const UDP = 17;
const UDPLITE = 136;

const addon = native();

interface Filter {
  rules: NativeRuleSet;
  fd: number;
  run(packet: Buffer): number;
  passes(packet: Buffer): boolean;
}

function filter(tt: Test, maxEntries = 1000): Filter {
  const rules = new addon.RuleSet(maxEntries);
  const fd = addon.loadSocketFilter(buildEbpfFilter({ maps: rules.mapFds(), snaplen: SNAPLEN, loopbackIfindex: 1 }));
  tt.teardown(() => addon.closeFd(fd));
  const run = (p: Buffer) => addon.testRun(fd, p);
  return { rules, fd, run, passes: (p) => run(p) === SNAPLEN };
}

// transport header builders by protocol (UDP-Lite has the UDP layout)
const l4 = (proto: number, sport: number, dport: number) => (proto === TCP ? tcp(sport, dport, 0x10) : udp(sport, dport));

t.test('assembler', async (t) => {
  t.test('instruction encoding', async (t) => {
    const buf = new EbpfAssembler().movImm(3, -1).movReg(6, 1).aluImm('add', 2, -8).load('w', 0, 6, 40).store('h', 10, -4, 0).storeImm('dw', 10, -16, 7).exit().assemble();
    t.equal(buf.length, 7 * 8);
    t.same(buf.subarray(0, 8), Buffer.from([0xb7, 0x03, 0, 0, 0xff, 0xff, 0xff, 0xff]), 'mov64 r3, -1');
    t.same(buf.subarray(8, 16), Buffer.from([0xbf, 0x16, 0, 0, 0, 0, 0, 0]), 'mov64 r6, r1 (src in the high nibble)');
    t.same(buf.subarray(16, 24), Buffer.from([0x07, 0x02, 0, 0, 0xf8, 0xff, 0xff, 0xff]), 'add64 r2, -8');
    t.same(buf.subarray(24, 32), Buffer.from([0x61, 0x60, 40, 0, 0, 0, 0, 0]), 'ldxw r0, [r6+40]');
    t.same(buf.subarray(32, 40), Buffer.from([0x6b, 0x0a, 0xfc, 0xff, 0, 0, 0, 0]), 'stxh [r10-4], r0');
    t.same(buf.subarray(40, 48), Buffer.from([0x7a, 0x0a, 0xf0, 0xff, 7, 0, 0, 0]), 'stdw [r10-16], 7');
    t.same(buf.subarray(48, 56), Buffer.from([0x95, 0, 0, 0, 0, 0, 0, 0]), 'exit');
  });

  t.test('jump offsets count the instructions skipped', async (t) => {
    const a = new EbpfAssembler()
      .jumpImm('jeq', 0, 1, 'two') // 0 -> 3: off 2
      .jumpImm('jne', 0, 5, 'next') // 1 -> 2: off 0
      .label('next')
      .movImm(0, 0) // 2
      .label('two')
      .jump('end') // 3 -> 5 (past the last): off 1
      .exit(); // 4
    a.label('end');
    const buf = a.assemble();
    t.equal(buf.length, 5 * 8);
    t.same(buf.subarray(0, 8), Buffer.from([0x15, 0x00, 2, 0, 1, 0, 0, 0]), 'jeq r0, 1, +2');
    t.same(buf.subarray(8, 16), Buffer.from([0x55, 0x00, 0, 0, 5, 0, 0, 0]), 'jne r0, 5, +0');
    t.equal(buf.readInt16LE(24 + 2), 1, 'a label after the last instruction is one past it');
    t.equal(buf[24], 0x05, 'ja');
  });

  t.test('LD_IMM64 takes two slots and jumps across it count both', async (t) => {
    const a = new EbpfAssembler().jump('after').loadMapFd(1, 0x11223344).label('after').exit();
    t.equal(a.length, 4, 'length counts the wide instruction twice');
    const buf = a.assemble();
    t.equal(buf.length, 4 * 8);
    t.equal(buf.readInt16LE(2), 2, 'the jump skips both slots');
    t.same(buf.subarray(8, 16), Buffer.from([0x18, 0x11, 0, 0, 0x44, 0x33, 0x22, 0x11]), 'lddw r1, map_fd (src = PSEUDO_MAP_FD)');
    t.same(buf.subarray(16, 24), Buffer.alloc(8), 'second slot: upper half zero');
    t.same(buf.subarray(24, 32), Buffer.from([0x95, 0, 0, 0, 0, 0, 0, 0]), 'exit after both slots');
  });

  t.test('legacy packet loads and call', async (t) => {
    const buf = new EbpfAssembler().loadAbs('h', 6).loadInd('b', 8, 2).call(HELPER_MAP_LOOKUP_ELEM).assemble();
    t.same(buf.subarray(0, 8), Buffer.from([0x28, 0, 0, 0, 6, 0, 0, 0]), 'ldabsh 6');
    t.same(buf.subarray(8, 16), Buffer.from([0x50, 0x80, 0, 0, 2, 0, 0, 0]), 'ldindb r8+2');
    t.same(buf.subarray(16, 24), Buffer.from([0x85, 0, 0, 0, 1, 0, 0, 0]), 'call 1');
  });

  t.test('errors', async (t) => {
    t.throws(() => new EbpfAssembler().jump('nowhere').exit().assemble(), /undefined label nowhere/);
    t.throws(() => new EbpfAssembler().label('top').movImm(0, 0).jump('top').assemble(), /out of range/, 'backward jump');
    t.throws(() => new EbpfAssembler().label('x').jump('x').assemble(), /out of range/, 'jump to itself');
    t.throws(() => new EbpfAssembler().label('x').label('x'), /defined twice/);
  });

  t.test('the kernel runs what it encodes', async (t) => {
    // r0 = 1 if the IP protocol is TCP, 2 otherwise; through a map lookup when it is UDP
    const rules = new addon.RuleSet(16);
    const a = new EbpfAssembler().movReg(6, 1).loadAbs('b', 9);
    a.jumpImm('jeq', 0, 6, 'tcp').jumpImm('jeq', 0, 17, 'udp').movImm(0, 2).exit();
    a.label('tcp').movImm(0, 1).exit();
    a.label('udp').storeImm('dw', 10, -8, 0).storeImm('dw', 10, -16, 0).storeImm('dw', 10, -24, 0);
    a.loadMapFd(1, rules.mapFds().binds).movReg(2, 10).aluImm('add', 2, -24).call(HELPER_MAP_LOOKUP_ELEM);
    a.jumpImm('jeq', 0, 0, 'miss').movImm(0, 3).exit();
    a.label('miss').movImm(0, 4).exit();
    const fd = addon.loadSocketFilter(a.assemble());
    t.teardown(() => addon.closeFd(fd));
    t.equal(addon.testRun(fd, ip4('10.0.0.1', '10.0.0.2', TCP, tcp(1, 2))), 1, 'TCP branch');
    t.equal(addon.testRun(fd, ip4('10.0.0.1', '10.0.0.2', 47, Buffer.alloc(8))), 2, 'fall-through');
    t.equal(addon.testRun(fd, ip4('10.0.0.1', '10.0.0.2', UDP, udp(1, 2))), 4, 'map lookup across LD_IMM64 (miss)');
  });

  t.test('a refused program carries the verifier log', async (t) => {
    const bad = new EbpfAssembler().exit().assemble(); // r0 never set
    let err: unknown;
    try {
      addon.closeFd(addon.loadSocketFilter(bad));
    } catch (e) {
      err = e;
    }
    t.ok(err instanceof Error, 'loadSocketFilter throws');
    t.match((err as { verifierLog?: string }).verifierLog, /R0/, 'the log names the unset register');
  });
});

t.test('filter: exact flows', async (t) => {
  for (const proto of [TCP, UDP, UDPLITE]) {
    t.test(`IPv4 proto ${proto}`, async (t) => {
      const f = filter(t);
      t.equal(f.rules.add({ proto, local: { address: '10.1.1.1', port: 40000 }, remote: { address: '10.2.2.2', port: 443 }, inode: 1 }), 1);
      t.equal(f.rules.count(), 1);
      t.ok(f.passes(ip4('10.1.1.1', '10.2.2.2', proto, l4(proto, 40000, 443))), 'outgoing');
      t.ok(f.passes(ip4('10.2.2.2', '10.1.1.1', proto, l4(proto, 443, 40000))), 'incoming');
      t.notOk(f.passes(ip4('10.1.1.1', '10.2.2.2', proto, l4(proto, 40001, 443))), 'other local port');
      t.notOk(f.passes(ip4('10.1.1.1', '10.2.2.2', proto, l4(proto, 40000, 444))), 'other remote port');
      t.notOk(f.passes(ip4('10.1.1.1', '10.2.2.3', proto, l4(proto, 40000, 443))), 'other remote address');
      t.notOk(f.passes(ip4('10.1.1.9', '10.2.2.2', proto, l4(proto, 40000, 443))), 'other local address');
      t.notOk(f.passes(ip4('10.1.1.1', '10.2.2.2', proto, l4(proto, 443, 40000))), 'ports swapped, addresses not');
      for (const other of [TCP, UDP, UDPLITE].filter((p) => p !== proto))
        t.notOk(f.passes(ip4('10.1.1.1', '10.2.2.2', other, l4(other, 40000, 443))), `same 4-tuple, proto ${other}`);
      t.equal(f.run(ip4('10.2.2.2', '10.1.1.1', proto, l4(proto, 443, 40000))), SNAPLEN, 'returns the snaplen');
    });
    t.test(`IPv6 proto ${proto}`, async (t) => {
      const f = filter(t);
      f.rules.add({ proto, local: { address: '2001:db8::1', port: 5000 }, remote: { address: 'fe80::1:2', port: 53 }, inode: 2 });
      t.ok(f.passes(ip6('2001:db8::1', 'fe80::1:2', proto, l4(proto, 5000, 53))), 'outgoing');
      t.ok(f.passes(ip6('fe80::1:2', '2001:db8::1', proto, l4(proto, 53, 5000))), 'incoming');
      t.notOk(f.passes(ip6('2001:db8::1', 'fe80::1:2', proto, l4(proto, 5001, 53))), 'other local port');
      t.notOk(f.passes(ip6('2001:db8::1', 'fe80::1:3', proto, l4(proto, 5000, 53))), 'other remote address (last word)');
      t.notOk(f.passes(ip6('2001:db9::1', 'fe80::1:2', proto, l4(proto, 5000, 53))), 'other local address (first word)');
      t.notOk(f.passes(ip4('0.0.0.0', '0.0.0.0', proto, l4(proto, 5000, 53))), 'IPv4 with the same ports');
    });
  }

  t.test('IPv4 with IP options: ports found after the longer header', async (t) => {
    const f = filter(t);
    f.rules.add({ proto: TCP, local: { address: '10.1.1.1', port: 1234 }, remote: { address: '10.2.2.2', port: 80 }, inode: 1 });
    const opts = Buffer.from([0x94, 0x04, 0, 0, 1, 1, 1, 0]); // router alert + NOPs + EOL
    t.ok(f.passes(ip4('10.1.1.1', '10.2.2.2', TCP, tcp(1234, 80), { options: opts })));
    t.notOk(f.passes(ip4('10.1.1.1', '10.2.2.2', TCP, tcp(1235, 80), { options: opts })));
    // with IHL 7, a reader assuming 20 bytes would see the options as ports
    const fake = Buffer.from([0x04, 0xd2, 0x00, 0x50, 0x01, 0x01, 0x01, 0x00]); // "ports" 1234 -> 80
    t.notOk(f.passes(ip4('10.1.1.1', '10.2.2.2', TCP, tcp(9, 9), { options: fake })), 'options are not ports');
  });

  t.test('IPv4 first fragment is keyed (ports present)', async (t) => {
    const f = filter(t);
    f.rules.add({ proto: UDP, local: { address: '10.1.1.1', port: 1234 }, remote: { address: '10.2.2.2', port: 53 }, inode: 1 });
    t.ok(f.passes(ip4('10.1.1.1', '10.2.2.2', UDP, udp(1234, 53, Buffer.alloc(64)), { moreFragments: true })));
    t.notOk(f.passes(ip4('10.1.1.1', '10.2.2.2', UDP, udp(1235, 53, Buffer.alloc(64)), { moreFragments: true })));
  });
});

t.test('filter: bound endpoints', async (t) => {
  t.test('0.0.0.0:P matches any local address with port P, both directions', async (t) => {
    const f = filter(t);
    f.rules.add({ proto: UDP, local: { address: '0.0.0.0', port: 5353 }, inode: 7 });
    t.ok(f.passes(ip4('192.168.1.10', '224.0.0.251', UDP, udp(5353, 5353))), 'sent from P');
    t.ok(f.passes(ip4('10.9.9.9', '127.0.0.1', UDP, udp(40000, 5353))), 'received on P');
    t.ok(f.passes(ip4('127.0.0.5', '8.8.8.8', UDP, udp(5353, 53))), 'sent from P on another address');
    t.notOk(f.passes(ip4('10.9.9.9', '127.0.0.1', UDP, udp(40000, 5354))), 'other port');
    t.notOk(f.passes(ip4('10.9.9.9', '127.0.0.1', TCP, tcp(40000, 5353))), 'other protocol');
    t.notOk(f.passes(ip6('::1', '::1', UDP, udp(40000, 5353))), 'IPv6 to P (an IPv4 bind)');
  });

  t.test('127.0.0.1:P does not match 127.0.0.2:P', async (t) => {
    const f = filter(t);
    f.rules.add({ proto: TCP, local: { address: '127.0.0.1', port: 8080 }, inode: 7 });
    t.ok(f.passes(ip4('127.0.0.9', '127.0.0.1', TCP, tcp(50000, 8080))), 'to 127.0.0.1:P');
    t.ok(f.passes(ip4('127.0.0.1', '127.0.0.9', TCP, tcp(8080, 50000))), 'from 127.0.0.1:P');
    t.notOk(f.passes(ip4('127.0.0.9', '127.0.0.2', TCP, tcp(50000, 8080))), 'to 127.0.0.2:P');
    t.notOk(f.passes(ip4('127.0.0.2', '127.0.0.9', TCP, tcp(8080, 50000))), 'from 127.0.0.2:P');
  });

  t.test('dual-stack [::]:P also matches IPv4 to P', async (t) => {
    const f = filter(t);
    t.equal(f.rules.add({ proto: TCP, local: { address: '::', port: 9000 }, inode: 3 }), 1);
    t.equal(f.rules.count(), 2, 'a v6 and a v4 wildcard key');
    t.ok(f.passes(ip6('2001:db8::5', '2001:db8::1', TCP, tcp(40000, 9000))), 'IPv6 to P');
    t.ok(f.passes(ip6('2001:db8::1', '2001:db8::5', TCP, tcp(9000, 40000))), 'IPv6 from P');
    t.ok(f.passes(ip4('10.0.0.5', '10.0.0.1', TCP, tcp(40000, 9000))), 'IPv4 to P');
    t.ok(f.passes(ip4('10.0.0.1', '10.0.0.5', TCP, tcp(9000, 40000))), 'IPv4 from P');
    t.notOk(f.passes(ip4('10.0.0.5', '10.0.0.1', TCP, tcp(40000, 9001))), 'IPv4 to another port');
    t.equal(f.rules.release(3), 2, 'release removes both keys');
    t.notOk(f.passes(ip4('10.0.0.5', '10.0.0.1', TCP, tcp(40000, 9000))), 'IPv4 after release');
    t.notOk(f.passes(ip6('2001:db8::5', '2001:db8::1', TCP, tcp(40000, 9000))), 'IPv6 after release');
  });

  t.test('v6only [::]:P does not match IPv4', async (t) => {
    const f = filter(t);
    f.rules.add({ proto: UDP, local: { address: '::', port: 9001 }, inode: 3, v6only: true });
    t.equal(f.rules.count(), 1);
    t.ok(f.passes(ip6('::1', '::1', UDP, udp(40000, 9001))), 'IPv6 to P');
    t.notOk(f.passes(ip4('127.0.0.1', '127.0.0.1', UDP, udp(40000, 9001))), 'IPv4 to P');
  });

  t.test('a specific IPv6 bind matches only its address', async (t) => {
    const f = filter(t);
    f.rules.add({ proto: UDP, local: { address: 'fe80::abcd', port: 546 }, inode: 3 });
    t.ok(f.passes(ip6('fe80::1', 'fe80::abcd', UDP, udp(547, 546))));
    t.notOk(f.passes(ip6('fe80::1', 'fe80::abce', UDP, udp(547, 546))));
    t.notOk(f.passes(ip4('10.0.0.1', '10.0.0.2', UDP, udp(547, 546))), 'no IPv4 key for a specific IPv6 bind');
  });
});

t.test('filter: IPv4-mapped IPv6 endpoints are keyed as IPv4', async (t) => {
  const f = filter(t);
  f.rules.add({ proto: TCP, local: { address: '::ffff:127.0.0.1', port: 6000 }, remote: { address: '::ffff:127.0.0.2', port: 7000 }, inode: 4 });
  f.rules.add({ proto: UDP, local: { address: '::ffff:10.0.0.1', port: 6001 }, inode: 5 });
  t.ok(f.passes(ip4('127.0.0.1', '127.0.0.2', TCP, tcp(6000, 7000))), 'flow, outgoing IPv4');
  t.ok(f.passes(ip4('127.0.0.2', '127.0.0.1', TCP, tcp(7000, 6000))), 'flow, incoming IPv4');
  t.notOk(f.passes(ip6('::ffff:7f00:1', '::ffff:7f00:2', TCP, tcp(6000, 7000))), 'not as an IPv6 packet');
  t.ok(f.passes(ip4('10.0.0.7', '10.0.0.1', UDP, udp(1, 6001))), 'bind, IPv4');
  t.notOk(f.passes(ip4('10.0.0.7', '10.0.0.2', UDP, udp(1, 6001))), 'bind is not a wildcard');
});

t.test('filter: release', async (t) => {
  const f = filter(t);
  const flow = { proto: TCP, local: { address: '10.0.0.1', port: 1111 }, remote: { address: '10.0.0.2', port: 22 } };
  const out = ip4('10.0.0.1', '10.0.0.2', TCP, tcp(1111, 22));
  f.rules.add({ ...flow, inode: 100 });
  f.rules.add({ ...flow, inode: 101 }); // the same key held by two sockets
  f.rules.add({ proto: TCP, local: { address: '0.0.0.0', port: 80 }, inode: 102 });
  t.equal(f.rules.count(), 2, 'one flow key, one bind key');
  t.ok(f.passes(out));
  t.equal(f.rules.release(100), 0, 'first owner released: the key stays');
  t.ok(f.passes(out), 'still passes');
  t.equal(f.rules.release(999), 0, 'unknown inode');
  t.equal(f.rules.release(101), 1, 'last owner released: the key goes');
  t.notOk(f.passes(out), 'flow gone');
  t.equal(f.rules.count(), 1);
  t.ok(f.passes(ip4('10.0.0.3', '10.0.0.9', TCP, tcp(5, 80))), 'bind unaffected');
  t.equal(f.rules.release(102), 1);
  t.notOk(f.passes(ip4('10.0.0.3', '10.0.0.9', TCP, tcp(5, 80))), 'bind gone');
  t.equal(f.rules.count(), 0);
  t.equal(f.rules.release(101), 0, 'released twice');
  f.rules.add({ ...flow, inode: 103 });
  t.ok(f.passes(out), 'a key can come back after its release');
});

t.test('filter: ICMP echoes by the identifier of a ping socket', async (t) => {
  const f = filter(t);
  const echo = (type: number, id: number) => {
    const b = icmp(type, 0, Buffer.alloc(16));
    b.writeUInt16BE(id, 4);
    return b;
  };
  f.rules.add({ proto: 1, local: { address: '0.0.0.0', port: 4242 }, inode: 1 });
  t.ok(f.passes(ip4('10.0.0.1', '10.9.9.9', 1, echo(8, 4242))), 'its request');
  t.ok(f.passes(ip4('10.9.9.9', '10.0.0.1', 1, echo(0, 4242))), 'the reply to it');
  t.notOk(f.passes(ip4('10.0.0.1', '10.9.9.9', 1, echo(8, 4243))), "another identifier's request");
  f.rules.add({ proto: 58, local: { address: '2001:db8::1', port: 99 }, remote: { address: '2001:db8::99', port: 0 }, inode: 2 });
  t.ok(f.passes(ip6('2001:db8::1', '2001:db8::99', 58, echo(128, 99))), 'a connected ICMPv6 ping socket: its request');
  t.ok(f.passes(ip6('2001:db8::99', '2001:db8::1', 58, echo(129, 99))), 'and the reply');
  t.notOk(f.passes(ip6('2001:db8::98', '2001:db8::1', 58, echo(129, 99))), 'not a reply from another host');
});

t.test('filter: packets the program cannot key go to userspace', async (t) => {
  const f = filter(t); // no rules at all
  const inner4 = ip4('10.0.0.1', '10.0.0.2', UDP, udp(1, 2));
  for (const type of [3, 4, 5, 11, 12])
    t.ok(f.passes(ip4('10.0.0.254', '10.0.0.1', 1, icmp(type, 0, inner4))), `ICMP error type ${type}`);
  for (const type of [0, 8, 13, 2, 255])
    t.notOk(f.passes(ip4('10.0.0.254', '10.0.0.1', 1, icmp(type, 0, inner4))), `ICMP type ${type}`);

  const inner6 = ip6('2001:db8::1', '2001:db8::2', UDP, udp(1, 2));
  for (const type of [1, 2, 3, 4])
    t.ok(f.passes(ip6('2001:db8::fe', '2001:db8::1', 58, icmp(type, 0, inner6))), `ICMPv6 error type ${type}`);
  for (const type of [0, 5, 128, 129, 133, 135, 255])
    t.notOk(f.passes(ip6('2001:db8::fe', '2001:db8::1', 58, icmp(type, 0, inner6))), `ICMPv6 type ${type}`);

  for (const off of [1, 185, 0x1fff])
    t.ok(f.passes(ip4('10.0.0.1', '10.0.0.2', UDP, Buffer.alloc(16), { fragOffset: off })), `IPv4 fragment at ${off * 8}`);
  t.ok(f.passes(ip4('10.0.0.1', '10.0.0.2', 47, Buffer.alloc(16), { fragOffset: 3, moreFragments: true })), 'later fragment of any protocol');
  t.notOk(f.passes(ip4('10.0.0.1', '10.0.0.2', UDP, udp(1, 2), { dontFragment: true })), 'DF is not a fragment');

  for (const ext of [0, 43, 44, 60, 135, 139, 140])
    t.ok(f.passes(ip6('2001:db8::1', '2001:db8::2', TCP, tcp(1, 2), [{ type: ext }])), `IPv6 extension header ${ext}`);
  t.ok(f.passes(ip6('2001:db8::1', '2001:db8::2', 51, Buffer.alloc(20))), 'IPv6 AH (the judge walks it)');

  for (const proto of [47, 132, 50, 2, 0x29])
    t.notOk(f.passes(ip4('10.0.0.1', '10.0.0.2', proto, Buffer.alloc(20))), `IPv4 protocol ${proto}`);
  for (const next of [47, 132, 50, 59])
    t.notOk(f.passes(ip6('2001:db8::1', '2001:db8::2', next, Buffer.alloc(20))), `IPv6 next header ${next}`);
});

t.test('filter: truncated packets are rejected, never crash', async (t) => {
  const f = filter(t);
  // rules that would match the full packets, and an all-zero-address wildcard
  f.rules.add({ proto: TCP, local: { address: '10.0.0.1', port: 1 }, remote: { address: '10.0.0.2', port: 2 }, inode: 1 });
  f.rules.add({ proto: UDP, local: { address: '0.0.0.0', port: 0x0102 }, inode: 2 });
  f.rules.add({ proto: TCP, local: { address: '2001:db8::1', port: 1 }, remote: { address: '2001:db8::2', port: 2 }, inode: 3 });
  const full4 = ip4('10.0.0.1', '10.0.0.2', TCP, tcp(1, 2));
  const full6 = ip6('2001:db8::1', '2001:db8::2', TCP, tcp(1, 2));
  t.ok(f.passes(full4) && f.passes(full6), 'the full packets pass');
  // BPF_PROG_TEST_RUN refuses (EINVAL) packets shorter than the fixed IP header itself
  for (let n = 0; n < full4.length; n++) {
    let r: number | string;
    try {
      r = f.run(full4.subarray(0, n));
    } catch (e) {
      r = (e as NodeJS.ErrnoException).code ?? 'error';
    }
    // ports end at byte 24: from there on, the lookup succeeds
    if (n < 20) t.ok(r === 0 || r === 'EINVAL', `IPv4 ${n} bytes: ${r}`);
    else if (n < 24) t.equal(r, 0, `IPv4 ${n} bytes: rejected`);
    else t.equal(r, SNAPLEN, `IPv4 ${n} bytes: ports complete`);
  }
  for (let n = 40; n < 44; n++) t.equal(f.run(full6.subarray(0, n)), 0, `IPv6 ${n} bytes: rejected`);
  const opts = ip4('10.0.0.1', '10.0.0.2', TCP, tcp(1, 2), { options: Buffer.alloc(40, 1) }); // IHL 15
  for (let n = 20; n < 64; n++) t.equal(f.run(opts.subarray(0, n)), 0, `IPv4 IHL 15, ${n} bytes: rejected`);
  t.equal(f.run(ip4('10.0.0.254', '10.0.0.1', 1, Buffer.alloc(0))), 0, 'ICMP without its header');
  t.equal(f.run(ip6('2001:db8::fe', '2001:db8::1', 58, Buffer.alloc(0))), 0, 'ICMPv6 without its header');
  // lengths in the header that lie
  const liar = Buffer.from(full4);
  liar.writeUInt16BE(9000, 2);
  t.equal(f.run(liar), SNAPLEN, 'IPv4 total length beyond the buffer: still keyed on what is there');
});

t.test('filter: 10,000 flow rules', async (t) => {
  const n = 10_000;
  const f = filter(t, n);
  const flowOf = (i: number) => ({
    local: { address: `10.${(i >> 8) & 0xff}.${i & 0xff}.1`, port: 10000 + (i % 50000) },
    remote: { address: `172.16.${i & 0xff}.${(i >> 8) & 0xff}`, port: 443 },
  });
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) f.rules.add({ proto: TCP, ...flowOf(i), inode: 1_000_000 + i });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  t.comment(`inserted ${n} flow rules in ${ms.toFixed(1)} ms (${((ms * 1000) / n).toFixed(1)} µs each)`);
  t.equal(f.rules.count(), n);
  let missing = 0;
  let wrong = 0;
  for (let i = 0; i < n; i++) {
    const { local, remote } = flowOf(i);
    if (!f.passes(ip4(remote.address, local.address, TCP, tcp(remote.port, local.port)))) missing++;
    if (f.passes(ip4(remote.address, local.address, TCP, tcp(remote.port, local.port + 1)))) wrong++;
  }
  t.equal(missing, 0, 'every flow matches');
  t.equal(wrong, 0, 'no neighbour matches');
});

t.test('filter: a rule beyond the map capacity is not silently counted', async (t) => {
  const f = filter(t, 4);
  const added: number[] = [];
  let threw: unknown;
  try {
    for (let i = 0; i < 5; i++)
      added.push(f.rules.add({ proto: UDP, local: { address: '10.0.0.1', port: 100 + i }, remote: { address: '10.0.0.2', port: 53 }, inode: i + 1 }));
  } catch (e) {
    threw = e;
  }
  let matching = 0;
  for (let i = 0; i < 5; i++) if (f.passes(ip4('10.0.0.2', '10.0.0.1', UDP, udp(53, 100 + i)))) matching++;
  t.equal(matching, 4, 'the map holds its capacity');
  if (threw === undefined)
    t.equal(f.rules.count(), matching, `count() agrees with the map when add() does not throw (add returned ${added.join(',')})`);
  else t.pass(`add() threw: ${(threw as Error).message}`);
});
