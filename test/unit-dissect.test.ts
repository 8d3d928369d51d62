// The dissector on crafted packets: endpoints, TCP flags, ICMP errors (the quoted packet's
// endpoints), fragments, IPv6 extension header chains, and truncated or malformed input.
import t from 'tap';
import { dissect } from '../src/packet/dissect';
import { icmp, ip4, ip6, raw, tcp, udp, v4, v6 } from './helpers/unit-packets';

const TCP = 6;
const UDP = 17;
const UDPLITE = 136;

t.test('IPv4 TCP/UDP/UDP-Lite', async (t) => {
  t.same(dissect(ip4('10.0.0.1', '192.168.7.200', TCP, tcp(40000, 443, 0x12, undefined, 0xfedcba98))), {
    family: 4,
    proto: TCP,
    src: raw(v4('10.0.0.1')),
    dst: raw(v4('192.168.7.200')),
    sport: 40000,
    dport: 443,
    tcpFlags: 0x12,
    tcpSeq: 0xfedcba98,
    icmpError: false,
    fragment: undefined,
    payload: 40,
  });
  for (const flags of [0x01, 0x02, 0x04, 0x10, 0x11, 0x18, 0xff])
    t.equal(dissect(ip4('1.2.3.4', '5.6.7.8', TCP, tcp(1, 2, flags)))?.tcpFlags, flags, `flags ${flags}`);
  const u = dissect(ip4('255.255.255.255', '0.0.0.0', UDP, udp(65535, 0, Buffer.from('hi'))));
  t.match(u, { family: 4, proto: UDP, sport: 65535, dport: 0, tcpFlags: 0, tcpSeq: 0, icmpError: false });
  t.equal(u?.src, '\xff\xff\xff\xff');
  t.equal(u?.dst, '\0\0\0\0');
  t.match(dissect(ip4('1.2.3.4', '5.6.7.8', UDPLITE, udp(53, 5353))), { proto: UDPLITE, sport: 53, dport: 5353 });
  // IP options move the transport header
  const opt = dissect(ip4('1.2.3.4', '5.6.7.8', TCP, tcp(1111, 2222, 0x02), { options: Buffer.from([0x94, 4, 0, 0, 7, 7, 7, 7]) }));
  t.match(opt, { sport: 1111, dport: 2222, tcpFlags: 0x02, payload: 48 }, 'after IP options');
  t.equal(u?.payload, 28, 'a UDP payload starts after the 8-byte header');
  t.equal(dissect(ip4('10.0.0.254', '10.0.0.1', 1, icmp(3, 3, ip4('10.0.0.1', '10.9.9.9', TCP, tcp(1, 2)))))?.payload, -1, 'an ICMP error has no payload of its own');
  // a UDP header has no flags byte where TCP's is: a UDP payload byte must not be read as flags
  t.equal(dissect(ip4('1.2.3.4', '5.6.7.8', UDP, udp(1, 2, Buffer.alloc(20, 0xff))))?.tcpFlags, 0);
  t.equal(dissect(ip4('1.2.3.4', '5.6.7.8', UDP, udp(1, 2, Buffer.alloc(20, 0xff))))?.tcpSeq, 0, 'no sequence number for UDP');
  // a TCP header cut after the sequence number: seq known, flags not
  const cut = ip4('1.2.3.4', '5.6.7.8', TCP, tcp(1, 2, 0x02, undefined, 77)).subarray(0, 20 + 8);
  t.match(dissect(cut), { sport: 1, dport: 2, tcpSeq: 77, tcpFlags: 0 });
});

t.test('IPv6 TCP/UDP', async (t) => {
  t.same(dissect(ip6('2001:db8::1', 'fe80::dead:beef', TCP, tcp(5000, 80, 0x11, undefined, 1))), {
    family: 6,
    proto: TCP,
    src: raw(v6('2001:db8::1')),
    dst: raw(v6('fe80::dead:beef')),
    sport: 5000,
    dport: 80,
    tcpFlags: 0x11,
    tcpSeq: 1,
    icmpError: false,
    fragment: undefined,
    payload: 60,
  });
  t.match(dissect(ip6('::1', '::1', UDP, udp(53, 40000))), { family: 6, proto: UDP, sport: 53, dport: 40000, tcpFlags: 0 });
  t.match(dissect(ip6('::1', '::1', UDPLITE, udp(7, 8))), { proto: UDPLITE, sport: 7, dport: 8 });
});

t.test('ICMP errors give the quoted packet endpoints', async (t) => {
  const sent = ip4('10.0.0.1', '10.9.9.9', UDP, udp(40000, 33434));
  for (const type of [3, 4, 5, 11, 12]) {
    const d = dissect(ip4('10.0.0.254', '10.0.0.1', 1, icmp(type, 1, sent)));
    t.match(d, { family: 4, proto: UDP, src: raw(v4('10.0.0.1')), dst: raw(v4('10.9.9.9')), sport: 40000, dport: 33434, icmpError: true }, `type ${type}`);
    t.equal(d?.fragment, undefined);
  }
  // only the first 8 bytes of the quoted transport header are guaranteed: ports are enough
  const tcpSent = ip4('10.0.0.1', '10.9.9.9', TCP, tcp(40001, 80, 0x02)).subarray(0, 28);
  t.match(dissect(ip4('10.0.0.254', '10.0.0.1', 1, icmp(3, 3, tcpSent))), { proto: TCP, sport: 40001, dport: 80, icmpError: true, tcpFlags: 0 });
  for (const type of [9, 13])
    t.equal(dissect(ip4('10.0.0.254', '10.0.0.1', 1, icmp(type, 0, sent))), undefined, `ICMP type ${type} is not an error`);
  // an error about an ICMP error is not followed
  const err = ip4('10.0.0.1', '10.0.0.254', 1, icmp(3, 1, sent));
  t.equal(dissect(ip4('10.0.0.254', '10.0.0.1', 1, icmp(3, 1, err))), undefined, 'nested ICMP error');
  t.equal(dissect(ip4('10.0.0.254', '10.0.0.1', 1, icmp(3, 1, ip4('10.0.0.1', '10.9.9.9', 47, Buffer.alloc(8))))), undefined, 'quoting GRE');
  // a fragmented ICMP error is not read
  t.equal(dissect(ip4('10.0.0.254', '10.0.0.1', 1, icmp(3, 1, sent), { moreFragments: true })), undefined);
});

t.test('ICMPv6 errors give the quoted packet endpoints', async (t) => {
  const sent = ip6('2001:db8::1', '2001:db8::99', TCP, tcp(40000, 443, 0x02));
  for (const type of [1, 2, 3, 4])
    t.match(
      dissect(ip6('2001:db8::fe', '2001:db8::1', 58, icmp(type, 0, sent))),
      { family: 6, proto: TCP, src: raw(v6('2001:db8::1')), dst: raw(v6('2001:db8::99')), sport: 40000, dport: 443, icmpError: true },
      `type ${type}`,
    );
  for (const type of [0, 5, 135])
    t.equal(dissect(ip6('2001:db8::fe', '2001:db8::1', 58, icmp(type, 0, sent))), undefined, `ICMPv6 type ${type}`);
  // the quoted packet can have its own extension headers
  const withExt = ip6('2001:db8::1', '2001:db8::99', UDP, udp(1, 2), [{ type: 60 }]);
  t.match(dissect(ip6('2001:db8::fe', '2001:db8::1', 58, icmp(1, 4, withExt))), { proto: UDP, sport: 1, dport: 2, icmpError: true });
  // an ICMPv6 error after an extension header
  t.match(dissect(ip6('2001:db8::fe', '2001:db8::1', 58, icmp(3, 0, sent), [{ type: 0 }])), { sport: 40000, icmpError: true });
});

t.test('IPv4 fragments: ports only in the first', async (t) => {
  const first = dissect(ip4('10.0.0.1', '10.0.0.2', UDP, udp(5000, 6000, Buffer.alloc(1472)), { id: 0xbeef, moreFragments: true }));
  t.match(first, { sport: 5000, dport: 6000, fragment: { id: 0xbeef, first: true } });
  const later = dissect(ip4('10.0.0.1', '10.0.0.2', UDP, Buffer.from([0x13, 0x88, 0x17, 0x70, 0, 0, 0, 0]), { id: 0xbeef, fragOffset: 185, moreFragments: true }));
  t.match(later, { family: 4, proto: UDP, src: raw(v4('10.0.0.1')), sport: 0, dport: 0, fragment: { id: 0xbeef, first: false } }, 'payload bytes are not ports');
  const last = dissect(ip4('10.0.0.1', '10.0.0.2', TCP, Buffer.alloc(3), { id: 7, fragOffset: 370 }));
  t.match(last, { proto: TCP, sport: 0, dport: 0, tcpFlags: 0, fragment: { id: 7, first: false } }, 'last fragment (MF clear), too short for ports');
  t.equal(dissect(ip4('10.0.0.1', '10.0.0.2', UDP, udp(1, 2), { dontFragment: true }))?.fragment, undefined, 'DF alone is no fragment');
});

t.test('IPv6 extension header chains and fragments', async (t) => {
  const chain = ip6('2001:db8::1', '2001:db8::2', TCP, tcp(1234, 80, 0x10), [{ type: 0 }, { type: 43, units: 2 }, { type: 60, units: 1 }]);
  t.match(dissect(chain), { family: 6, proto: TCP, sport: 1234, dport: 80, tcpFlags: 0x10, fragment: undefined }, 'hop-by-hop, routing, destination options');
  const frag1 = ip6('2001:db8::1', '2001:db8::2', UDP, udp(53, 5353, Buffer.alloc(100)), [{ type: 0 }, { type: 44, fragOffset: 0, more: true, id: 0x01020304 }]);
  t.match(dissect(frag1), { proto: UDP, sport: 53, dport: 5353, fragment: { id: 0x01020304, first: true } }, 'first fragment');
  const frag2 = ip6('2001:db8::1', '2001:db8::2', UDP, Buffer.from([0, 53, 0x14, 0xe9, 1, 1, 1, 1]), [{ type: 44, fragOffset: 14, more: false, id: 0x01020304 }]);
  t.match(dissect(frag2), { proto: UDP, sport: 0, dport: 0, fragment: { id: 0x01020304, first: false } }, 'later fragment');
  const fragDst = ip6('2001:db8::1', '2001:db8::2', TCP, tcp(9, 10), [{ type: 44, more: true, id: 5 }, { type: 60 }]);
  t.match(dissect(fragDst), { sport: 9, dport: 10, fragment: { id: 5, first: true } }, 'destination options after the fragment header');
  t.equal(dissect(ip6('::1', '::1', 59, Buffer.alloc(0))), undefined, 'no next header');
  t.equal(dissect(ip6('::1', '::1', 132, Buffer.alloc(12))), undefined, 'SCTP');
  t.equal(dissect(ip6('::1', '::1', 51, Buffer.alloc(24))), undefined, 'AH is not walked');
});

t.test('other versions and protocols', async (t) => {
  t.equal(dissect(ip4('1.2.3.4', '5.6.7.8', 47, Buffer.alloc(20))), undefined, 'GRE');
  t.equal(dissect(ip4('1.2.3.4', '5.6.7.8', 132, Buffer.alloc(20))), undefined, 'SCTP');
  const bad = ip4('1.2.3.4', '5.6.7.8', TCP, tcp(1, 2));
  bad[0] = 0x55;
  t.equal(dissect(bad), undefined, 'version 5');
  t.equal(dissect(Buffer.alloc(0)), undefined, 'empty');
});

t.test('truncated and malformed input returns undefined and never throws', async (t) => {
  const samples: Array<[string, Buffer, number]> = [
    // [name, packet, first length at which the packet is complete enough for its endpoints]
    ['IPv4 TCP', ip4('10.0.0.1', '10.0.0.2', TCP, tcp(1, 2, 0x02)), 24],
    ['IPv4 UDP', ip4('10.0.0.1', '10.0.0.2', UDP, udp(1, 2)), 24],
    ['IPv4 options TCP', ip4('10.0.0.1', '10.0.0.2', TCP, tcp(1, 2), { options: Buffer.alloc(12, 1) }), 36],
    ['IPv6 TCP', ip6('::1', '::2', TCP, tcp(1, 2)), 44],
    ['IPv6 chain', ip6('::1', '::2', UDP, udp(1, 2), [{ type: 0, units: 1 }, { type: 44, more: true }, { type: 60 }]), 40 + 16 + 8 + 8 + 4],
    ['ICMP error', ip4('10.0.0.9', '10.0.0.1', 1, icmp(3, 1, ip4('10.0.0.1', '10.0.0.2', UDP, udp(1, 2)))), 20 + 8 + 24],
    ['ICMPv6 error', ip6('::9', '::1', 58, icmp(1, 0, ip6('::1', '::2', UDP, udp(1, 2)))), 40 + 8 + 44],
  ];
  for (const [name, p, complete] of samples) {
    const bad: number[] = [];
    for (let n = 0; n < p.length; n++) {
      let d;
      try {
        d = dissect(Buffer.from(p.subarray(0, n))); // a copy: nothing past n to read by mistake
      } catch (e) {
        bad.push(n);
        t.fail(`${name} cut at ${n} threw ${(e as Error).message}`);
        continue;
      }
      if (n < complete && d !== undefined) bad.push(n);
      if (n >= complete && (d === undefined || d.sport !== 1 || d.dport !== 2)) bad.push(n);
    }
    t.same(bad, [], `${name}: undefined below ${complete} bytes, endpoints from there`);
  }
  // random garbage with IPv4/IPv6 version nibbles
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) >>> 16) & 0xff;
  let threw = 0;
  for (let i = 0; i < 20_000; i++) {
    const b = Buffer.alloc(rnd() % 120);
    for (let j = 0; j < b.length; j++) b[j] = rnd();
    if (b.length) b[0] = (b[0] & 0x0f) | (i % 2 ? 0x40 : 0x60);
    if (b.length > 9 && i % 4 === 1) b[9] = [1, 6, 17, 136][i % 16 >> 2];
    if (b.length > 6 && i % 4 === 0) b[6] = [0, 43, 44, 60, 58, 6][i % 6];
    try {
      const d = dissect(b);
      if (d && (d.sport < 0 || d.sport > 65535 || (d.src.length !== 4 && d.src.length !== 16))) throw new Error('bad result');
    } catch {
      threw++;
    }
  }
  t.equal(threw, 0, '20,000 random packets');
});

t.test('IPv4 header length below 20 is malformed', async (t) => {
  // IHL 4 would put the "transport header" inside the IP header itself (at the addresses)
  const p = ip4('10.0.0.1', '10.0.0.2', TCP, tcp(1, 2));
  p[0] = 0x44;
  t.equal(dissect(p), undefined);
});

t.test('addresses stay right while the dissector reuses the strings of recent ones', async (t) => {
  // a flow both ways round, then addresses rotating through more than the two remembered
  const seq = ['10.0.0.1', '10.0.0.2', '10.0.0.2', '10.0.0.1', '10.0.0.3', '255.0.0.1', '0.0.0.0', '10.0.0.1', '255.0.0.1', '0.0.0.0', '0.0.0.0', '10.0.0.3'];
  for (let i = 0; i + 1 < seq.length; i++) {
    const x = dissect(ip4(seq[i], seq[i + 1], UDP, udp(1, 2)));
    t.equal(x?.src, raw(v4(seq[i])), `src ${seq[i]} (packet ${i})`);
    t.equal(x?.dst, raw(v4(seq[i + 1])), `dst ${seq[i + 1]} (packet ${i})`);
  }
});

t.test('ICMP echoes are keyed as ping sockets see them: the identifier on the pinger\'s side', async (t) => {
  const echo = (type: number, id: number) => {
    const b = icmp(type, 0, Buffer.alloc(56));
    b.writeUInt16BE(id, 4);
    b.writeUInt16BE(7, 6); // sequence
    return b;
  };
  t.match(dissect(ip4('10.0.0.1', '10.9.9.9', 1, echo(8, 4242))), { proto: 1, src: raw(v4('10.0.0.1')), sport: 4242, dport: 0, icmpError: false, payload: 28 }, 'request: from (src, id) to (dst, 0)');
  t.match(dissect(ip4('10.9.9.9', '10.0.0.1', 1, echo(0, 4242))), { proto: 1, sport: 0, dport: 4242, icmpError: false }, 'reply: from (src, 0) to (dst, id)');
  t.match(dissect(ip6('2001:db8::1', '2001:db8::99', 58, echo(128, 99))), { family: 6, proto: 58, sport: 99, dport: 0 }, 'ICMPv6 request');
  t.match(dissect(ip6('2001:db8::99', '2001:db8::1', 58, echo(129, 99))), { family: 6, proto: 58, sport: 0, dport: 99 }, 'ICMPv6 reply');
  const request = ip4('10.0.0.1', '10.9.9.9', 1, echo(8, 4242));
  t.match(dissect(ip4('10.0.0.254', '10.0.0.1', 1, icmp(3, 1, request))), { proto: 1, src: raw(v4('10.0.0.1')), sport: 4242, dport: 0, icmpError: true }, 'an error about a request: the request\'s endpoints');
  t.equal(dissect(ip4('10.0.0.1', '10.9.9.9', 1, Buffer.from([8, 0, 0, 0, 0x10]))), undefined, 'a request too short for its identifier');
});
