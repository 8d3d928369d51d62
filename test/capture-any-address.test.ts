// connect()/sendto() to the any-address (0.0.0.0, ::): the kernel sends such packets to the
// machine itself (loopback, ::1), so the rule must name that address; every packet of the
// three flows, handshake included, is in the file, exactly as tcpdump sees them.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PY, captureScenario, noLeftovers, startBg } from './helpers/capture';
import { packetKey, readPcap } from './helpers/pcap';

const SERVER = `
import socket, sys, threading, time
def tcp(fam, addr):
    s = socket.socket(fam, socket.SOCK_STREAM); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, 0)); s.listen(); ports.append(s.getsockname()[1])
    while True:
        c, _ = s.accept(); c.recv(100); c.sendall(b'ok'); c.close()
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 0)); ports.append(s.getsockname()[1])
    while True:
        d, a = s.recvfrom(100); s.sendto(b'ok', a)
ports = []
for i, (target, args) in enumerate(((tcp, (socket.AF_INET, '127.0.0.1')), (tcp, (socket.AF_INET6, '::1')), (udp, ()))):
    threading.Thread(target=target, args=args, daemon=True).start()
    while len(ports) <= i: time.sleep(0.01)  # in this order: tcp4, tcp6, udp
print(' '.join(map(str, ports)), flush=True)
time.sleep(120)
`;

const CLIENT = `
import socket, sys
p4, p6, pu = map(int, sys.argv[1:4])
for fam, addr, port in ((socket.AF_INET, '0.0.0.0', p4), (socket.AF_INET6, '::', p6)):
    s = socket.socket(fam, socket.SOCK_STREAM); s.connect((addr, port)); s.sendall(b'hi')
    assert s.recv(10) == b'ok'; s.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.sendto(b'hi', ('0.0.0.0', pu))
assert u.recvfrom(10)[0] == b'ok'
print('done')
`;

t.test('connect and sendto to 0.0.0.0 and ::: every packet, from the SYN', async (t) => {
  const sc = await captureScenario(t, {
    startServers: async (dir) => {
      fs.writeFileSync(path.join(dir, 'server.py'), SERVER);
      fs.writeFileSync(path.join(dir, 'client.py'), CLIENT);
      const server = startBg(t, [PY, path.join(dir, 'server.py')]);
      return (await server.waitFor(/^(\d+) (\d+) (\d+)$/m)).slice(1, 4).map(Number);
    },
    command: (ports, dir) => [PY, path.join(dir, 'client.py'), ...ports.map(String)],
    timeoutMs: 60_000,
  });
  const { run, ports } = sc;
  t.equal(run.status, 0, `tracedump and the client exit 0 (${run.stderr.slice(-300)})`);
  t.match(run.stdout, /done/);
  const got = readPcap(sc.out).packets;
  const want = readPcap(sc.oracle.file).packets.filter((p) => !(p.ifindex === 1 && p.pkttype === 4)); // loopback's outgoing copy
  const syns = got.filter((p) => p.proto === 'tcp' && p.tcpFlags === 0x02);
  t.same(syns.map((p) => `${p.dst} ${p.dport}`).sort(), [`127.0.0.1 ${ports[0]}`, `::1 ${ports[1]}`].sort(), 'both SYNs, to where the kernel sent them');
  t.same(got.map((p) => packetKey(p)).sort(), want.map((p) => packetKey(p)).sort(), 'exactly the packets tcpdump saw');
  t.ok(got.some((p) => p.proto === 'udp' && p.dst === '127.0.0.1' && p.dport === ports[2]), 'the datagram sent to 0.0.0.0');
});

noLeftovers(t);
