// `tracedump flows` on crafted captures, case by case against Zeek's documented meanings of
// conn_state and history (base/protocols/conn/main.zeek, the TCP analyzer), with the byte
// counts of the sequence space and tshark's conversation counts on the same files.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { A, type Crafted, F, P, R, S, TcpConversation, icmpPacket, udpPacket, writeCraftedPcap } from './helpers/craft-pcap';
import { CLI } from './helpers/tracedump';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tracedump-flows-states-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

const C: [string, number] = ['10.0.0.1', 40000];
const SRV: [string, number] = ['10.0.0.2', 40001];
const WEB: [string, number] = ['10.0.0.2', 80];

type Row = Record<string, unknown>;

function flows(packets: Crafted[], name: string, args: string[] = []): Row[] {
  const file = path.join(dir, `${name}.pcap`);
  writeCraftedPcap(file, packets);
  const r = spawnSync(CLI, ['flows', '--json', ...args, file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`flows ${name}: ${r.status} ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter((l) => l)
    .map((l) => JSON.parse(l) as Row);
}

const pick = (r: Row | undefined, keys: string[]) => Object.fromEntries(keys.map((k) => [k, r?.[k]]));

interface Case {
  name: string;
  packets: () => Crafted[];
  want: Row;
}

const cases: Case[] = [
  {
    name: 'a normal close: SF',
    packets: () =>
      new TcpConversation(C, SRV)
        .send(0, 'c', S)
        .send(0.001, 's', S | A)
        .send(0.002, 'c', A)
        .send(0.003, 'c', P | A, 100)
        .send(0.004, 's', A)
        .send(0.005, 's', P | A, 200)
        .send(0.006, 'c', A)
        .send(0.007, 'c', F | A)
        .send(0.008, 's', F | A)
        .send(0.009, 'c', A).packets,
    // the last ACK comes after both FINs: it does not make the connection longer
    want: { conn_state: 'SF', history: 'ShADadFf', orig_bytes: 100, resp_bytes: 200, orig_pkts: 6, resp_pkts: 4, duration: 0.008, 'id.orig_p': 40000 },
  },
  {
    name: 'a refused connect: REJ',
    packets: () => new TcpConversation(C, SRV).send(0, 'c', S).send(0.001, 's', R | A).packets,
    want: { conn_state: 'REJ', history: 'Sr', orig_bytes: 0, resp_bytes: 0, orig_pkts: 1, resp_pkts: 1 },
  },
  {
    name: 'the originator resets after data: RSTO',
    packets: () =>
      new TcpConversation(C, SRV)
        .send(0, 'c', S)
        .send(0.001, 's', S | A)
        .send(0.002, 'c', A)
        .send(0.003, 'c', P | A, 50)
        .send(0.004, 's', P | A, 60)
        .send(0.005, 'c', R).packets,
    want: { conn_state: 'RSTO', history: 'ShADdR', orig_bytes: 50, resp_bytes: 60 },
  },
  {
    name: 'the responder resets after data: RSTR',
    packets: () =>
      new TcpConversation(C, SRV)
        .send(0, 'c', S)
        .send(0.001, 's', S | A)
        .send(0.002, 'c', A)
        .send(0.003, 'c', P | A, 50)
        .send(0.004, 's', P | A, 60)
        .send(0.005, 's', R).packets,
    want: { conn_state: 'RSTR', history: 'ShADdr', orig_bytes: 50, resp_bytes: 60 },
  },
  {
    name: 'a SYN and no answer: S0 (one packet: no duration, no byte counts)',
    packets: () => new TcpConversation(C, SRV).send(0, 'c', S).packets,
    want: { conn_state: 'S0', history: 'S', orig_bytes: undefined, duration: undefined, orig_pkts: 1, resp_pkts: 0 },
  },
  {
    name: 'a SYN then a FIN, no answer: SH',
    packets: () => new TcpConversation(C, SRV).send(0, 'c', S).send(0.5, 'c', F).packets,
    want: { conn_state: 'SH', history: 'SF' },
  },
  {
    name: 'a SYN then a RST, no answer: RSTOS0',
    packets: () => new TcpConversation(C, SRV).send(0, 'c', S).send(0.5, 'c', R).packets,
    want: { conn_state: 'RSTOS0', history: 'SR' },
  },
  {
    name: 'established, not closed: S1',
    packets: () => new TcpConversation(C, SRV).send(0, 'c', S).send(0.001, 's', S | A).send(0.002, 'c', A).packets,
    want: { conn_state: 'S1', history: 'ShA' },
  },
  {
    name: 'a capture that starts mid-stream: OTH',
    packets: () => new TcpConversation(C, SRV).send(0, 'c', P | A, 100).send(0.001, 's', A).send(0.002, 's', P | A, 50).packets,
    want: { conn_state: 'OTH', history: 'Dad', orig_bytes: 100, resp_bytes: 50 },
  },
  {
    name: "a SYN-ACK from a server port first: the roles flipped at once ('^')",
    packets: () => new TcpConversation(C, WEB).send(0, 's', S | A).send(0.001, 'c', A).packets,
    want: { conn_state: 'S1', history: '^hA', 'id.orig_p': 40000, 'id.resp_p': 80 },
  },
  {
    // flipped at the ACK, the SYN-ACK's sender stays SYN_ACK_SENT and the other PARTIAL: OTH
    name: "a SYN-ACK from a client port first, then an ACK: flipped by Zeek's 'H' rule",
    packets: () => new TcpConversation(C, SRV).send(0, 's', S | A).send(0.001, 'c', A).packets,
    want: { conn_state: 'OTH', history: '^hA', 'id.orig_p': 40000, 'id.resp_p': 40001 },
  },
  {
    name: 'UDP both ways: SF',
    packets: () => [udpPacket(0, C, SRV, 10), udpPacket(0.001, SRV, C, 20), udpPacket(0.002, C, SRV, 10)],
    want: { proto: 'udp', conn_state: 'SF', history: 'Dd', orig_bytes: 20, resp_bytes: 20, orig_pkts: 2, resp_pkts: 1 },
  },
  {
    name: 'UDP one way: S0',
    packets: () => [udpPacket(0, C, SRV, 10), udpPacket(0.5, C, SRV, 10)],
    want: { proto: 'udp', conn_state: 'S0', history: 'D', orig_bytes: 20 },
  },
  {
    name: "UDP from a server port first: flipped, SHR ('^d')",
    packets: () => [udpPacket(0, ['10.0.0.2', 53], C, 30), udpPacket(0.1, ['10.0.0.2', 53], C, 30)],
    want: { proto: 'udp', conn_state: 'SHR', history: '^d', 'id.orig_p': 40000, 'id.resp_p': 53 },
  },
  {
    name: 'ICMP echo and reply: one flow, OTH, no history',
    packets: () => [icmpPacket(0, '10.0.0.1', '10.0.0.2', 8, 0, 56), icmpPacket(0.001, '10.0.0.2', '10.0.0.1', 0, 0, 56)],
    want: { proto: 'icmp', conn_state: 'OTH', history: undefined, 'id.orig_p': 8, 'id.resp_p': 0, orig_bytes: 56, resp_bytes: 56 },
  },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const rows = flows(c.packets(), c.name.replace(/\W+/g, '-'));
    t.equal(rows.length, 1, 'one flow');
    t.same(pick(rows[0], Object.keys(c.want)), c.want, 'as Zeek defines it');
  });
}

t.test('a new SYN on a closed 4-tuple starts another flow; tshark counts the same conversations', async (t) => {
  const first = new TcpConversation(C, SRV)
    .send(0, 'c', S)
    .send(0.001, 's', S | A)
    .send(0.002, 'c', A)
    .send(0.003, 'c', F | A)
    .send(0.004, 's', F | A)
    .send(0.005, 'c', A).packets;
  const second = new TcpConversation(C, SRV);
  (second as unknown as { seq: { c: number } }).seq.c = 500000; // another ISN
  second.send(1, 'c', S).send(1.001, 's', R | A);
  const file = path.join(dir, 'reuse.pcap');
  writeCraftedPcap(file, [...first, ...second.packets]);
  const rows = flows([...first, ...second.packets], 'reuse');
  t.same(
    rows.map((r) => [r.conn_state, r.orig_pkts, r.resp_pkts]),
    [
      ['SF', 4, 2],
      ['REJ', 1, 1],
    ],
    'two flows: SF, then REJ',
  );
  t.not(rows[0]?.uid, rows[1]?.uid, 'with their own uids');
  const conv = spawnSync('tshark', ['-r', file, '-q', '-z', 'conv,tcp'], { encoding: 'utf8' });
  const lines = conv.stdout.split('\n').filter((l) => /<->/.test(l));
  t.equal(lines.length, 2, `tshark also sees two conversations (${conv.stderr})`);
});

t.test('timeouts: --idle splits a flow after a silence, --active after a length', async (t) => {
  const packets = [udpPacket(0, C, SRV, 1), udpPacket(5, C, SRV, 1), udpPacket(30, C, SRV, 1)];
  t.equal(flows(packets, 'idle-default').length, 1, 'default --idle 120: one flow');
  t.equal(flows(packets, 'idle-10', ['--idle', '10']).length, 2, '--idle 10: the 25 s silence ends it');
  t.equal(flows(packets, 'active-4', ['--active', '4']).length, 3, '--active 4: each packet starts another');
});

t.test('the same file read twice gives the same uids; Zeek-style uids', async (t) => {
  const packets = new TcpConversation(C, SRV).send(0, 'c', S).send(0.001, 's', R | A).packets;
  const a = flows(packets, 'uid-a');
  const b = flows(packets, 'uid-b');
  t.equal(a[0]?.uid, b[0]?.uid, 'same uid');
  t.match(String(a[0]?.uid), /^C[0-9a-zA-Z]{10,17}$/, 'C and base62, at most 18 characters');
});

// ---- the output formats ------------------------------------------------------------------------

/** Two TCP flows and a UDP one, for the formats. */
function sample(): string {
  const file = path.join(dir, 'formats.pcap');
  const a = new TcpConversation(C, SRV).send(0, 'c', S).send(0.001, 's', S | A).send(0.002, 'c', A).send(0.003, 'c', P | A, 100).send(0.004, 's', P | A, 3000);
  const b = new TcpConversation(['10.0.0.1', 40002], WEB).send(0.1, 'c', S).send(0.101, 's', R | A);
  writeCraftedPcap(file, [...a.packets, ...b.packets, udpPacket(0.2, C, ['10.0.0.3', 53], 40), udpPacket(0.25, ['10.0.0.3', 53], C, 80)]);
  return file;
}

const run = (args: string[]) => spawnSync(CLI, ['flows', ...args], { encoding: 'utf8' });

t.test("--zeek: Zeek's TSV log, read by its header as zeek-cut does", async (t) => {
  const r = run(['--zeek', sample()]);
  t.equal(r.status, 0, r.stderr);
  const lines = r.stdout.split('\n').filter((l) => l);
  t.equal(lines[0], '#separator \\x09', 'the separator line');
  t.same(lines.slice(1, 5), ['#set_separator\t,', '#empty_field\t(empty)', '#unset_field\t-', '#path\tconn'], 'the header lines');
  const fields = lines.find((l) => l.startsWith('#fields\t'))?.split('\t').slice(1) ?? [];
  const types = lines.find((l) => l.startsWith('#types\t'))?.split('\t').slice(1) ?? [];
  t.equal(fields.length, types.length, 'a type for each field');
  t.same(fields.slice(0, 6), ['ts', 'uid', 'id.orig_h', 'id.orig_p', 'id.resp_h', 'id.resp_p'], "Zeek's first columns");
  t.equal(types[fields.indexOf('ts')], 'time', 'ts is a time');
  t.match(lines[lines.length - 1], /^#close\t\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d$/, 'the #close line');
  // zeek-cut's way: the columns by the #fields names (awk, as the original zeek-cut script)
  const cut = spawnSync('awk', ['-F', '\t', '/^#fields/ { for (i = 2; i <= NF; i++) col[$i] = i - 1; next } /^#/ { next } { print $col["conn_state"] "\t" $col["id.resp_p"] "\t" $col["duration"] }'], {
    input: r.stdout,
    encoding: 'utf8',
  });
  t.same(cut.stdout.trim().split('\n'), ['S1\t40001\t0.004000', 'REJ\t80\t0.001000', 'SF\t53\t0.050000'], 'conn_state, port and duration by name');
  t.ok(lines.some((l) => !l.startsWith('#') && l.split('\t').length === fields.length), 'rows have every column');
});

t.test('--csv: a header and a row per flow; the table; --by; -f', async (t) => {
  const file = sample();
  const csv = run(['--csv', file]).stdout.split('\n').filter((l) => l);
  t.equal(csv.length, 4, 'header and three rows');
  t.match(csv[0], /^ts,uid,id\.orig_h,id\.orig_p,id\.resp_h,id\.resp_p,proto,service,duration/, 'the header: Zeek names');
  const table = run([file]).stdout.split('\n').filter((l) => l);
  t.match(table[0], /^TIME\s+PID\s+COMM\s+PROTO\s+FLOW\s+STATE\s+UP\s+DOWN\s+PKTS\s+DURATION\s+SERVER$/, 'the table header');
  t.equal(table.length, 4, 'and a line per flow');
  t.match(table[3], /\budp\s+10\.0\.0\.1:40000 > 10\.0\.0\.3:53\s+SF/, 'the UDP flow line (no DNS in it: no service)');
  const by = JSON.parse(run(['--by', 'proto', '--json', file]).stdout.split('\n')[0]);
  t.same(by, { proto: 'tcp', flows: 2, pkts_up: 4, pkts_down: 3, bytes_up: 100, bytes_down: 3000, first: 1700000000, last: 1700000000.101 }, '--by proto: the sums (orig/resp without a program side)');
  const filtered = run(['--json', '-f', 'udp', file]).stdout.split('\n').filter((l) => l);
  t.equal(filtered.length, 1, "-f 'udp': only the UDP flow");
  const bad = run(['-f', 'udp port (((', file]);
  t.equal(bad.status, 2, 'a bad expression: exit 2');
  t.match(bad.stderr, /udp port \(\(\(/, 'naming it');
  const both = run(['--json', '--csv', file]);
  t.equal(both.status, 2, 'two formats: exit 2');
  t.match(both.stderr, /pick one output format/, 'said');
  const missing = run([path.join(dir, 'none.pcap')]);
  t.equal(missing.status, 2, 'a missing file: exit 2');
  t.match(missing.stderr, /none\.pcap.*no such file/, 'named');
});

t.test('--features: nfstream-named statistics and the first packets', async (t) => {
  const rec = JSON.parse(run(['--json', '--features', '--splt', '3', sample()]).stdout.split('\n')[0]);
  t.same(
    [rec.bidirectional_min_ps, rec.bidirectional_max_ps, rec.src2dst_syn_packets, rec.dst2src_syn_packets, rec.src2dst_psh_packets],
    [40, 3040, 1, 1, 1],
    'sizes are IP lengths; SYN and PSH counted per direction',
  );
  t.same(rec.splt_direction, [0, 1, 0], 'the first 3 directions');
  t.same(rec.splt_ps, [40, 40, 40], 'their sizes');
  t.same(rec.splt_piat_ms, [0, 1, 1], 'their gaps (ms)');
  t.equal(rec.bidirectional_mean_piat_ms, 1, 'mean inter-arrival 1 ms');
  const csvHead = run(['--csv', '--features', sample()]).stdout.split('\n')[0];
  t.match(csvHead, /,bidirectional_min_ps,bidirectional_mean_ps,.*,splt_piat_ms$/, 'the CSV has the feature columns');
});
