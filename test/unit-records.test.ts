// The capture batch reader against hand-made records in native/capture.h's layout.
import t from 'tap';
import { RECORD_HEADER_SIZE, readRecords } from '../src/capture/records';

function header(f: { sec: number; nsec: number; caplen: number; len: number; ifindex: number; protocol: number; hatype: number; pkttype: number; flags?: number; gap?: number }): Buffer {
  const h = Buffer.alloc(RECORD_HEADER_SIZE);
  h.writeUInt32LE(f.sec, 0);
  h.writeUInt32LE(f.nsec, 4);
  h.writeUInt32LE(f.caplen, 8);
  h.writeUInt32LE(f.len, 12);
  h.writeInt32LE(f.ifindex, 16);
  h.writeUInt16LE(f.protocol, 20);
  h.writeUInt16LE(f.hatype, 22);
  h[24] = f.pkttype;
  h[25] = f.flags ?? 0;
  h.writeUInt16LE(f.gap ?? 0, 26);
  return h;
}

t.test('every field, gaps between records, and skipped records', async (t) => {
  const a = Buffer.from('45000014aaaa', 'hex');
  const b = Buffer.from('60000000bbbbbbbb', 'hex');
  const c = Buffer.from('45cc', 'hex');
  const batch = Buffer.concat([
    header({ sec: 0xfedcba98, nsec: 999_999_999, caplen: a.length, len: 1500, ifindex: 7, protocol: 0x0800, hatype: 772, pkttype: 4, gap: 3 }),
    a,
    Buffer.alloc(3, 0xee), // the next frame's kernel headers
    header({ sec: 1, nsec: 2, caplen: b.length, len: b.length, ifindex: -1, protocol: 0x86dd, hatype: 0xfffe, pkttype: 0, flags: 1 }),
    b, // skipped (-i/-f)
    header({ sec: 3, nsec: 4, caplen: c.length, len: 65535, ifindex: 0x7fffffff, protocol: 0x0800, hatype: 1, pkttype: 3 }),
    c,
  ]);
  const recs = readRecords(batch);
  t.equal(recs.length, 2, 'the skipped record is passed over');
  t.same(
    recs.map(({ data, ...r }) => ({ ...r, data: data.toString('hex') })),
    [
      { sec: 0xfedcba98, nsec: 999_999_999, caplen: a.length, len: 1500, ifindex: 7, protocol: 0x0800, hatype: 772, pkttype: 4, data: a.toString('hex') },
      { sec: 3, nsec: 4, caplen: c.length, len: 65535, ifindex: 0x7fffffff, protocol: 0x0800, hatype: 1, pkttype: 3, data: c.toString('hex') },
    ],
  );
  t.equal(recs[0].data.buffer, batch.buffer, 'data is a view of the batch, not a copy');
  t.same(readRecords(batch.subarray(0, RECORD_HEADER_SIZE - 1)), [], 'a truncated header ends the batch');
});
