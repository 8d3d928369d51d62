// Port rules match only the local end of a packet: a traced listener on *:443 must not claim
// another program's connection to some remote port 443 (direction from the capture).
import t from 'tap';
import { EndpointTable } from '../src/tracker/endpoints';
import { dissect } from '../src/packet/dissect';
import { bindRule, socketEvent } from './helpers/unit-events';
import { ip4, tcp } from './helpers/unit-packets';

const who = { pid: 10, tid: 10, comm: 'server' };

t.test('a wildcard listener claims only packets whose local end is its port', (t) => {
  const table = new EndpointTable();
  table.apply(socketEvent(who, 1, [bindRule(6, { address: '0.0.0.0', port: 443 })]));
  const toUs = dissect(ip4('192.0.2.7', '198.18.0.1', 6, tcp(50000, 443)))!;
  const fromUs = dissect(ip4('198.18.0.1', '192.0.2.7', 6, tcp(443, 50000, 0x12)))!;
  const otherOut = dissect(ip4('198.18.0.1', '192.0.2.9', 6, tcp(40000, 443)))!;
  const otherIn = dissect(ip4('192.0.2.9', '198.18.0.1', 6, tcp(443, 40000, 0x12)))!;
  t.equal((table.judge(toUs, 1, 'dst') as { pid: number })?.pid, 10, 'a client connecting to our port');
  t.equal((table.judge(fromUs, 1, 'src') as { pid: number })?.pid, 10, 'our answer');
  t.equal(table.judge(otherOut, 1, 'src'), undefined, "another program's connection to a remote :443");
  t.equal(table.judge(otherIn, 1, 'dst'), undefined, 'and the answer it gets');
  t.equal((table.judge(otherIn, 1, 'both') as { pid: number })?.pid, 10, 'without a direction (loopback) both ends count');
  t.end();
});
