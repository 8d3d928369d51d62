// When the sweeper asks the kernel for a socket dump: only for protocols the endpoint table holds
// sockets of (a dump tells the table nothing else). The dump itself is the real sock_diag one;
// the test only records which protocols were asked for.
import t from 'tap';
import { native } from '../src/native';
import { EndpointTable } from '../src/tracker/endpoints';
import { SWEEP, Sweeper } from '../src/tracker/sweeper';
import { bindRule, ep, flowRule, socketEvent } from './helpers/unit-events';

const TCP = 6;
const UDP = 17;
const GRACE = { tcpFlowMs: 60_000, closedMarginMs: 2_000 };
const app = { pid: 100, tid: 101, comm: 'app' };

t.test('no dump for a protocol the table holds no socket of', async (t) => {
  const addon = native();
  const real = addon.liveSockets;
  const asked: number[][] = [];
  addon.liveSockets = (protocols?: number[]) => {
    asked.push([...(protocols ?? [])]);
    return real(protocols);
  };
  t.teardown(() => {
    addon.liveSockets = real;
  });
  const table = new EndpointTable(GRACE);
  const rules = new addon.RuleSet(64);
  const sweeper = new Sweeper(table, rules, (m) => t.fail(m));
  let now = Date.now();
  sweeper.poke(now);
  sweeper.final(now);
  t.same(asked, [], 'an empty table: no dump at all');

  table.apply(socketEvent(app, 1, [flowRule(TCP, ep('127.0.0.1', 40000), ep('127.0.0.1', 80))], now));
  t.ok(table.holds(TCP) && !table.holds(UDP));
  now += SWEEP.tcpEveryMs;
  sweeper.poke(now);
  t.same(asked, [[TCP]], 'TCP sockets only: a TCP dump, no UDP one');
  now += SWEEP.udpEveryMs;
  sweeper.poke(now);
  t.same(asked, [[TCP]], 'and no UDP dump on its own cadence');

  table.apply(socketEvent(app, 2, [bindRule(UDP, ep('0.0.0.0', 5353))], now));
  now += SWEEP.udpEveryMs;
  sweeper.poke(now);
  t.same(asked.at(-1), [UDP], 'a UDP socket: UDP dumps again (UDP-Lite left out)');

  // both gone (not in the dumps: inodes 1 and 2 are nobody's here) and their grace over: forgotten
  table.sweep(new Set(), now);
  table.sweep(new Set(), now + GRACE.tcpFlowMs);
  t.ok(!table.holds(TCP) && !table.holds(UDP), 'forgotten sockets are not held');
  const before = asked.length;
  sweeper.final(now + GRACE.tcpFlowMs);
  t.equal(asked.length, before, 'and cost no dump');
});
