// Reading Wireshark's extcap calls and the capture arguments they stand for (the dialog's
// settings as tracedump's own options).
import t from 'tap';
import { captureArguments, configText, isExtcapCall, parseExtcapArgs } from '../src/extcap/protocol';

t.test('which calls are extcap calls', async (t) => {
  t.ok(isExtcapCall(['--extcap-interfaces']));
  t.ok(isExtcapCall(['--capture', '--extcap-interface', 'tracedump', '--fifo', '/tmp/f']));
  t.notOk(isExtcapCall(['-w', 'x.pcap', '--', 'tool', '--extcap-interfaces']), "a traced command's own arguments are not");
  t.notOk(isExtcapCall(['-w', 'x.pcap', 'curl', 'x']));
});

t.test('the calls Wireshark makes', async (t) => {
  t.same(parseExtcapArgs(['--extcap-interfaces', '--extcap-version=4.0']), { kind: 'interfaces' });
  t.same(parseExtcapArgs(['--extcap-interface', 'tracedump', '--extcap-dlts']), { kind: 'dlts' });
  t.same(parseExtcapArgs(['--extcap-interface=tracedump', '--extcap-config']), { kind: 'config' }, '--name=value too');
  t.same(parseExtcapArgs(['--extcap-interface', 'tracedump', '--extcap-config', '--extcap-reload-option', '--pid']), { kind: 'reload', option: '--pid' });
  t.same(parseExtcapArgs(['--extcap-interface', 'tracedump', '--extcap-capture-filter', 'tcp']), { kind: 'filter', filter: 'tcp' });
  const c = parseExtcapArgs([
    '--capture', '--extcap-interface', 'tracedump', '--fifo', '/tmp/wireshark_extcap_1',
    '--extcap-capture-filter', 'port 443', '--command', 'curl -s https://example.org/', '--snaplen', '0', '--no-tls-keys',
    '--extcap-control-in', '/tmp/in', '--extcap-control-out', '/tmp/out',
  ]);
  t.same(c, {
    kind: 'capture',
    fifo: '/tmp/wireshark_extcap_1',
    filter: 'port 443',
    settings: { command: 'curl -s https://example.org/', user: undefined, cwd: undefined, pid: undefined, pname: undefined, snaplen: '0', noTlsKeys: true },
  });
  if (c.kind === 'capture')
    t.same(captureArguments(c), ['-q', '-U', '--format', 'pcapng', '-w', '/tmp/wireshark_extcap_1', '-f', 'port 443', '-s', '0', '--no-tls-keys', '--', 'sh', '-c', 'curl -s https://example.org/'], 'the capture: pcapng to the fifo, flushed per batch, the command through sh -c');
  t.throws(() => parseExtcapArgs(['--extcap-interface', 'eth0', '--extcap-dlts']), /no extcap interface "eth0"/, 'another interface');
  t.throws(() => parseExtcapArgs(['--capture', '--extcap-interface', 'tracedump']), /--fifo/);
  t.throws(() => parseExtcapArgs(['--extcap-interface', 'tracedump', 'stray']), /unexpected argument/);
  t.throws(() => parseExtcapArgs(['--extcap-interface', 'tracedump', '--command']), /needs a value/);
});

t.test('launch or attach, never both', async (t) => {
  const capture = (settings: Record<string, string | boolean>) =>
    captureArguments({ kind: 'capture', fifo: '/f', settings: { noTlsKeys: false, ...settings } } as Parameters<typeof captureArguments>[0]);
  t.same(capture({ pid: '1234' }), ['-q', '-U', '--format', 'pcapng', '-w', '/f', '-p', '1234']);
  t.same(capture({ pname: 'firefox-esr', command: ' ' }), ['-q', '-U', '--format', 'pcapng', '-w', '/f', '--pname', 'firefox-esr'], 'an empty command field is no command');
  t.same(capture({ command: 'wget -q http://x/', user: 'alice' }), ['-q', '-U', '--format', 'pcapng', '-w', '/f', '-u', 'alice', '--', 'sh', '-c', 'wget -q http://x/']);
  t.throws(() => capture({ command: 'curl x', pid: '1' }), /not both/);
  t.throws(() => capture({}), /give a command to run, or a running process/);
  t.throws(() => capture({ pid: '1', user: 'alice' }), /attached processes keep their own user/);
});

t.test('the dialog: braces and newlines in a process line cannot break a field', async (t) => {
  const text = configText([{ pid: 7, display: '7 evil {display=x}\nvalue {arg=0}' }]);
  const line = text.split('\n').find((l) => l.startsWith('value {arg=3}{value=7}'))!;
  t.equal(line, 'value {arg=3}{value=7}{display=7 evil (display=x) value (arg=0)}');
});
