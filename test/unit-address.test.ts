// Textual addresses to raw wire bytes and back: IPv4, IPv6 with :: anywhere, embedded IPv4,
// IPv4-mapped (IPv4 on the wire), zone ids, and the wildcard test.
import t from 'tap';
import { addressBytes, formatAddress, isWildcard } from '../src/packet/address';

const bytes = (...b: number[]) => String.fromCharCode(...b);
const words = (...w: number[]) => bytes(...w.flatMap((x) => [x >> 8, x & 0xff]));

t.test('IPv4', async (t) => {
  for (const [text, b] of [
    ['0.0.0.0', bytes(0, 0, 0, 0)],
    ['127.0.0.1', bytes(127, 0, 0, 1)],
    ['255.255.255.255', bytes(255, 255, 255, 255)],
    ['10.200.3.40', bytes(10, 200, 3, 40)],
  ] as const) {
    t.same(addressBytes(text), { family: 4, bytes: b }, text);
    t.equal(formatAddress(b), text, `${text} formats back`);
  }
});

t.test('IPv6 with :: in every position', async (t) => {
  // every run of zero words of length >= 2 at every start, the other words non-zero
  let checked = 0;
  for (let start = 0; start < 8; start++) {
    for (let len = 2; start + len <= 8; len++) {
      const w = Array.from({ length: 8 }, (_, i) => (i >= start && i < start + len ? 0 : 0x1000 + i * 0x111));
      const head = w.slice(0, start).map((x) => x.toString(16)).join(':');
      const tail = w.slice(start + len).map((x) => x.toString(16)).join(':');
      const text = `${head}::${tail}`;
      const r = addressBytes(text);
      t.same(r, { family: 6, bytes: words(...w) }, `parse ${text}`);
      t.equal(formatAddress(r.bytes), text, `format ${text}`);
      checked++;
    }
  }
  t.equal(checked, 28);
  // no zero run: full form; a single zero word is not compressed
  t.same(addressBytes('1:2:3:4:5:6:7:8').bytes, words(1, 2, 3, 4, 5, 6, 7, 8));
  t.equal(formatAddress(words(1, 2, 3, 4, 5, 6, 7, 8)), '1:2:3:4:5:6:7:8');
  t.equal(formatAddress(words(1, 0, 3, 4, 5, 6, 7, 8)), '1:0:3:4:5:6:7:8', 'single zero word stays');
  // RFC 5952: the longest run is compressed; on a tie, the first
  t.equal(formatAddress(words(1, 0, 0, 4, 0, 0, 0, 8)), '1:0:0:4::8', 'longest run');
  t.equal(formatAddress(words(1, 0, 0, 4, 5, 0, 0, 8)), '1::4:5:0:0:8', 'first of equal runs');
  t.equal(formatAddress(words(0xabcd, 0xef, 0, 0, 0, 0, 0, 1)), 'abcd:ef::1', 'lower case, no leading zeros');
  t.same(addressBytes('ABCD:00EF::0001').bytes, words(0xabcd, 0xef, 0, 0, 0, 0, 0, 1), 'upper case and leading zeros parse');
  t.same(addressBytes('::'), { family: 6, bytes: '\0'.repeat(16) });
  t.equal(formatAddress('\0'.repeat(16)), '::');
  t.same(addressBytes('::1').bytes, words(0, 0, 0, 0, 0, 0, 0, 1));
  t.equal(formatAddress(words(0, 0, 0, 0, 0, 0, 0, 1)), '::1');
  t.equal(formatAddress(words(1, 0, 0, 0, 0, 0, 0, 0)), '1::');
  t.same(addressBytes('1::').bytes, words(1, 0, 0, 0, 0, 0, 0, 0));
});

t.test('embedded IPv4 and IPv4-mapped', async (t) => {
  t.same(addressBytes('::ffff:127.0.0.1'), { family: 4, bytes: bytes(127, 0, 0, 1) }, 'mapped, dotted');
  t.same(addressBytes('::ffff:7f00:1'), { family: 4, bytes: bytes(127, 0, 0, 1) }, 'mapped, hex');
  t.same(addressBytes('::FFFF:10.1.2.3'), { family: 4, bytes: bytes(10, 1, 2, 3) }, 'mapped, upper case');
  t.same(addressBytes('0:0:0:0:0:ffff:1.2.3.4'), { family: 4, bytes: bytes(1, 2, 3, 4) }, 'mapped, full form');
  t.same(addressBytes('::ffff:0.0.0.0'), { family: 4, bytes: bytes(0, 0, 0, 0) }, 'mapped wildcard');
  t.same(addressBytes('::1.2.3.4'), { family: 6, bytes: bytes(...Array(12).fill(0), 1, 2, 3, 4) }, 'IPv4-compatible stays IPv6');
  t.same(addressBytes('64:ff9b::192.0.2.33'), { family: 6, bytes: words(0x64, 0xff9b, 0, 0, 0, 0, 0xc000, 0x0221) }, 'NAT64');
  t.same(addressBytes('1:2:3:4:5:6:1.2.3.4').bytes, words(1, 2, 3, 4, 5, 6, 0x0102, 0x0304), 'full form with IPv4 tail');
  t.same(addressBytes('::ffff:0:1.2.3.4'), { family: 6, bytes: words(0, 0, 0, 0, 0xffff, 0, 0x0102, 0x0304) }, 'SIIT (not mapped)');
  t.same(addressBytes('::fffe:1.2.3.4').family, 6, 'not the mapped prefix');
  t.same(addressBytes('1::ffff:1.2.3.4').family, 6, 'ffff not preceded by zeros');
});

t.test('zone ids', async (t) => {
  t.same(addressBytes('fe80::1%eth0'), { family: 6, bytes: words(0xfe80, 0, 0, 0, 0, 0, 0, 1) });
  t.same(addressBytes('fe80::abcd:1%2'), addressBytes('fe80::abcd:1'));
  t.same(addressBytes('ff02::1%lo'), { family: 6, bytes: words(0xff02, 0, 0, 0, 0, 0, 0, 1) });
});

t.test('round trips', async (t) => {
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) >>> 8) & 0xffff;
  const bad: string[] = [];
  for (let i = 0; i < 5000; i++) {
    // words that are zero often, so that runs of every length appear
    const w = Array.from({ length: 8 }, () => (rnd() % 3 === 0 ? 0 : rnd()));
    if (w.slice(0, 5).every((x) => x === 0) && w[5] === 0xffff) w[5] = 1; // keep it IPv6
    const b = words(...w);
    const text = formatAddress(b);
    const back = addressBytes(text);
    if (back.family !== 6 || back.bytes !== b) bad.push(text);
    // the same bytes as Node's own parser (via a URL's canonical form)
    if (new URL(`http://[${text}]/`).hostname !== `[${text}]`) bad.push(`not canonical: ${text}`);
  }
  t.same(bad, [], '5,000 addresses: format → parse gives the bytes back, canonically');
  for (let i = 0; i < 1000; i++) {
    const b = bytes(rnd() & 0xff, rnd() & 0xff, rnd() & 0xff, rnd() & 0xff);
    if (addressBytes(formatAddress(b)).bytes !== b) bad.push(formatAddress(b));
  }
  t.same(bad, [], '1,000 IPv4 addresses');
});

t.test('not addresses', async (t) => {
  for (const s of ['', 'localhost', '1.2.3', '1.2.3.256', ':::', '1::2::3', 'fe80::g', '[::1]'])
    t.throws(() => addressBytes(s), /not an IP address/, JSON.stringify(s));
});

t.test('isWildcard', async (t) => {
  t.ok(isWildcard(addressBytes('0.0.0.0').bytes));
  t.ok(isWildcard(addressBytes('::').bytes));
  t.ok(isWildcard(addressBytes('::ffff:0.0.0.0').bytes), 'mapped wildcard is the IPv4 wildcard');
  t.notOk(isWildcard(addressBytes('::1').bytes));
  t.notOk(isWildcard(addressBytes('0.0.0.1').bytes));
  t.notOk(isWildcard(addressBytes('128.0.0.0').bytes));
  t.notOk(isWildcard(addressBytes('8000::').bytes));
  t.notOk(isWildcard('\0'.repeat(15) + '\x01'));
  t.notOk(isWildcard('\x01' + '\0'.repeat(15)));
});
