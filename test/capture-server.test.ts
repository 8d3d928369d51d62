// Capture fidelity, the program as a server, against an oracle tcpdump:
//  4. the traced program binds, listens and accepts; two untraced clients talk to it: all of
//     its connections are the program's (they are its sockets) and must all be in the file;
//     an unrelated untraced server/client pair on another port at the same time must not.
import path from 'node:path';
import t from 'tap';
import {
  FLOWS,
  PY,
  checkCapture,
  freePort,
  portFilter,
  readRecords,
  runFlows,
  runTracedump,
  startOracle,
  startServer,
  workDir,
  noLeftovers,
} from './helpers/capture';

t.test('traced TCP server, untraced clients; an unrelated pair on another port', async (t) => {
  const dir = workDir(t);
  const otherRec = path.join(dir, 'other.jsonl');
  const unrelated = await startServer(t, ['serve-tcp', '127.0.0.1', 0]);
  const port = freePort('127.0.0.1', 'tcp');
  const oracle = await startOracle(t, { file: path.join(dir, 'oracle.pcap'), filter: portFilter([port, unrelated.port]) });
  const out = path.join(dir, 'out.pcap');
  const rec = path.join(dir, 'traced.jsonl');
  const perClient = 25;
  let clients: Promise<{ code: number | null; err: string }[]> | null = null;
  const run = await runTracedump(t, ['-w', out], [PY, FLOWS, 'serve-tcp', '127.0.0.1', String(port), String(2 * perClient)], {
    record: rec,
    onStdout: (all) => {
      if (clients || !/^ready \d+$/m.test(all)) return;
      clients = Promise.all([
        runFlows(t, ['tcp-get', '127.0.0.1', port, perClient], { record: otherRec, gapMs: 3 }),
        runFlows(t, ['tcp-get', '127.0.0.1', port, perClient], { record: otherRec, gapMs: 3 }),
        runFlows(t, ['tcp-get', '127.0.0.1', unrelated.port, 3 * perClient], { record: otherRec, gapMs: 2 }),
      ]);
    },
  });
  const done = await (clients as Promise<{ code: number | null; err: string }[]> | null ?? Promise.resolve([]));
  const stats = await oracle.stop();
  t.equal(run.status, 0, `the traced server served its clients and exited 0 (${run.stderr.slice(-300)})`);
  t.same(
    done.map((x) => x.code),
    [0, 0, 0],
    `the untraced clients ran and succeeded (${done.map((x) => x.err).join(' ')})`,
  );
  const traced = readRecords(rec, 'traced');
  const others = readRecords(otherRec, 'other');
  t.equal(traced.filter((r) => r.role === 'accepted').length, 2 * perClient, 'the server recorded its accepted sockets');
  t.equal(traced.filter((r) => r.role === 'listen').length, 1, 'the server recorded its listening socket');
  const r = checkCapture(t, {
    tdFile: out,
    oracleFile: oracle.file,
    oracleStats: stats,
    run,
    traced,
    others,
    tcpConnections: 2 * perClient,
  });
  t.ok(
    r.td.packets.every((p) => p.sport === port || p.dport === port),
    'every packet in the file is to or from the traced server port',
  );
  const unrelatedSeen = r.other.filter((p) => p.sport === unrelated.port || p.dport === unrelated.port).length;
  t.ok(unrelatedSeen >= 3 * perClient * 8, `the oracle saw the unrelated pair (${unrelatedSeen} packets)`);
});

t.test('traced UDP echo server, untraced clients; an unrelated UDP pair on another port', async (t) => {
  const dir = workDir(t);
  const otherRec = path.join(dir, 'other.jsonl');
  const unrelated = await startServer(t, ['serve-udp', '127.0.0.1', 0]);
  const port = freePort('127.0.0.1', 'udp');
  const oracle = await startOracle(t, { file: path.join(dir, 'oracle.pcap'), filter: portFilter([port, unrelated.port]) });
  const out = path.join(dir, 'out.pcap');
  const rec = path.join(dir, 'traced.jsonl');
  const perClient = 60;
  let clients: Promise<{ code: number | null; err: string }[]> | null = null;
  const run = await runTracedump(
    t,
    ['-w', out],
    [PY, FLOWS, 'serve-udp', '127.0.0.1', String(port), 'echo', String(2 * perClient)],
    {
      record: rec,
      onStdout: (all) => {
        if (clients || !/^ready \d+$/m.test(all)) return;
        clients = Promise.all([
          runFlows(t, ['udp-query', '127.0.0.1', port, perClient, 'fresh'], { record: otherRec, gapMs: 2 }),
          runFlows(t, ['udp-query', '127.0.0.1', port, perClient, 'long'], { record: otherRec }),
          runFlows(t, ['udp-query', '127.0.0.1', unrelated.port, 2 * perClient, 'fresh'], { record: otherRec, gapMs: 1 }),
        ]);
      },
    },
  );
  const done = await (clients as Promise<{ code: number | null; err: string }[]> | null ?? Promise.resolve([]));
  const stats = await oracle.stop();
  t.equal(run.status, 0, `the traced server answered its clients and exited 0 (${run.stderr.slice(-300)})`);
  t.same(
    done.map((x) => x.code),
    [0, 0, 0],
    `the untraced clients ran and succeeded (${done.map((x) => x.err).join(' ')})`,
  );
  const traced = readRecords(rec, 'traced');
  const others = readRecords(otherRec, 'other');
  t.equal(traced.length, 1, 'the server recorded its socket');
  const r = checkCapture(t, {
    tdFile: out,
    oracleFile: oracle.file,
    oracleStats: stats,
    run,
    traced,
    others,
  });
  t.equal(r.td.packets.length, 4 * perClient, 'every query and answer of the traced server is in the file');
  t.ok(
    r.td.packets.every((p) => p.sport === port || p.dport === port),
    'every packet in the file is to or from the traced server port',
  );
});

noLeftovers(t);
