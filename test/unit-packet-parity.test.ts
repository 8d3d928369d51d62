// One IP walker (src/packet/ip.ts) for the live judge (packet/dissect.ts) and the reader
// (read/decode.ts): crafted packets go through both, which must agree with each other and with
// what each packet is — protocol, ports, fragment, the packet an ICMP error quotes.
import t from 'tap';
import { dissect } from '../src/packet/dissect';
import { walkIp } from '../src/packet/ip';
import { decode } from '../src/read/decode';
import { LINKTYPE_RAW } from '../src/packet/link';
import { icmp, ip4, ip6, tcp, udp } from './helpers/unit-packets';

const TCP = 6;
const UDP = 17;

interface Case {
  name: string;
  packet: Buffer;
  /** What the packet is: protocol, ports (null: none), fragment offset (undefined: not one). */
  proto: string;
  sport: number | null;
  dport: number | null;
  fragmentOffset?: number;
  /** An ICMP error: the endpoints of the packet it quotes. */
  quoted?: { proto: string; sport: number; dport: number };
}

const udp4 = ip4('10.0.0.1', '10.0.0.2', UDP, udp(5000, 53));
const tcp6 = ip6('2001:db8::1', '2001:db8::2', TCP, tcp(40000, 443));
const cases: Case[] = [
  { name: 'IPv4 TCP', packet: ip4('10.0.0.1', '10.0.0.2', TCP, tcp(1234, 80)), proto: 'tcp', sport: 1234, dport: 80 },
  { name: 'IPv4 with options', packet: ip4('10.0.0.1', '10.0.0.2', UDP, udp(7, 9), { options: Buffer.from([0x94, 4, 0, 0, 1, 1, 1, 0]) }), proto: 'udp', sport: 7, dport: 9 },
  { name: 'IPv4 first fragment', packet: ip4('10.0.0.1', '10.0.0.2', UDP, udp(7, 9), { moreFragments: true }), proto: 'udp', sport: 7, dport: 9, fragmentOffset: 0 },
  { name: 'IPv4 later fragment', packet: ip4('10.0.0.1', '10.0.0.2', UDP, Buffer.alloc(16), { fragOffset: 185 }), proto: 'udp', sport: null, dport: null, fragmentOffset: 185 },
  ...[0, 43, 60, 135, 139, 140, 51].map((type) => ({
    name: `IPv6 with extension header ${type}`,
    packet: ip6('2001:db8::1', '2001:db8::2', TCP, tcp(40000, 443), [{ type }]),
    proto: 'tcp',
    sport: 40000,
    dport: 443,
  })),
  { name: 'IPv6 with every kind chained', packet: ip6('2001:db8::1', '2001:db8::2', UDP, udp(1, 2), [0, 43, 60, 135, 139, 140, 51].map((type) => ({ type }))), proto: 'udp', sport: 1, dport: 2 },
  { name: 'IPv6 first fragment', packet: ip6('2001:db8::1', '2001:db8::2', UDP, udp(1, 2), [{ type: 44, more: true }]), proto: 'udp', sport: 1, dport: 2, fragmentOffset: 0 },
  { name: 'IPv6 later fragment', packet: ip6('2001:db8::1', '2001:db8::2', UDP, Buffer.alloc(16), [{ type: 44, fragOffset: 100 }]), proto: 'udp', sport: null, dport: null, fragmentOffset: 100 },
  { name: 'ICMP unreachable quoting UDP', packet: ip4('10.0.0.254', '10.0.0.1', 1, icmp(3, 3, udp4)), proto: 'icmp', sport: null, dport: null, quoted: { proto: 'udp', sport: 5000, dport: 53 } },
  { name: 'ICMP redirect quoting TCP', packet: ip4('10.0.0.254', '10.0.0.1', 1, icmp(5, 1, ip4('10.0.0.1', '10.0.0.9', TCP, tcp(41000, 22)).subarray(0, 28))), proto: 'icmp', sport: null, dport: null, quoted: { proto: 'tcp', sport: 41000, dport: 22 } },
  { name: 'ICMPv6 packet too big quoting TCP', packet: ip6('2001:db8::fe', '2001:db8::1', 58, icmp(2, 0, tcp6)), proto: 'icmp6', sport: null, dport: null, quoted: { proto: 'tcp', sport: 40000, dport: 443 } },
  { name: 'ICMPv6 error quoting a packet with extension headers', packet: ip6('2001:db8::fe', '2001:db8::1', 58, icmp(1, 4, ip6('2001:db8::1', '2001:db8::2', UDP, udp(3, 4), [{ type: 60 }, { type: 51 }]))), proto: 'icmp6', sport: null, dport: null, quoted: { proto: 'udp', sport: 3, dport: 4 } },
];

for (const c of cases)
  t.test(c.name, async (t) => {
    const h = walkIp(c.packet);
    t.ok(h && !h.truncated, 'the walker reads the header');
    t.equal(h?.fragment?.offset, c.fragmentOffset, 'fragment offset');
    const reader = decode(LINKTYPE_RAW, c.packet, c.packet.length);
    t.equal(reader.proto, c.proto, 'reader: protocol');
    t.same([reader.sport, reader.dport], [c.sport, c.dport], 'reader: ports');
    const judge = dissect(c.packet);
    if (c.quoted) {
      t.match(reader.quoted, c.quoted, 'reader: the quoted packet');
      t.match(judge, { icmpError: true, proto: c.quoted.proto === 'tcp' ? TCP : UDP, sport: c.quoted.sport, dport: c.quoted.dport }, 'judge: the quoted packet');
      return;
    }
    t.ok(judge, 'the judge reads it too');
    t.equal(judge?.proto, c.proto === 'tcp' ? TCP : UDP, 'judge: protocol');
    if (c.sport !== null) t.same([judge?.sport, judge?.dport], [c.sport, c.dport], 'judge: ports');
    t.equal(judge?.fragment === undefined, c.fragmentOffset === undefined, 'judge: a fragment or not');
    if (judge?.fragment) t.equal(judge.fragment.first, c.fragmentOffset === 0, 'judge: first fragment or later');
  });

t.test('truncated headers: neither reads what is not there', async (t) => {
  const full = ip6('2001:db8::1', '2001:db8::2', TCP, tcp(1, 2), [{ type: 0, units: 2 }]);
  for (const cut of [20, 39, 41, 50]) {
    const p = full.subarray(0, cut);
    const h = walkIp(p);
    t.ok(!h || h.truncated, `IPv6 cut at ${cut}: no transport header found`);
    t.equal(dissect(p), undefined, `judge: nothing at ${cut}`);
    t.same([decode(LINKTYPE_RAW, p, full.length).sport], [null], `reader: no ports at ${cut}`);
  }
  const v4 = ip4('10.0.0.1', '10.0.0.2', TCP, tcp(1, 2), { options: Buffer.alloc(8) });
  t.equal(dissect(v4.subarray(0, 24)), undefined, 'IPv4 cut inside its options');
  const deep = ip6('2001:db8::1', '2001:db8::2', UDP, udp(1, 2), Array.from({ length: 17 }, () => ({ type: 60 })));
  t.ok(walkIp(deep)?.truncated, 'more than 16 extension headers: not walked to the end');
  t.equal(dissect(deep), undefined, 'judge: nothing');
});
