// The README's quick start on a machine that has none of libpcap (headers or library), tcpdump
// or tshark: in a private mount namespace they are masked by bind mounts, the sources are
// copied to a fresh directory, and `npm ci && npm run demo` must build, capture and list the
// packets. The same machine packs tracedump and installs the tarball globally (npm pack,
// npm install -g), and -f says which package it lacks, before anything runs.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { ROOT } from './helpers/tracedump';

const MASKED = [
  '/usr/include/pcap.h',
  '/usr/include/pcap-bpf.h',
  '/usr/include/pcap-namedb.h',
  '/usr/bin/tcpdump',
  '/usr/sbin/tcpdump',
  '/usr/bin/tshark',
  '/usr/bin/capinfos',
];

if (process.getuid?.() !== 0) {
  // bind mounts in a mount namespace need root; CI runs as root, where this never skips
  if (process.env.CI) t.fail('needs root');
  else t.comment('skipped: needs root (unshare -m and bind mounts)');
} else {
  t.test('npm ci && npm run demo, npm pack and npm install -g, with libpcap, tcpdump and tshark masked', { timeout: 600_000 }, (t) => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tracedump-fresh-'));
    t.teardown(() => fs.rmSync(work, { recursive: true, force: true }));
    // the sources as a clean clone has them (tracked and new files; no node_modules, build, dist)
    const files = spawnSync('git', ['ls-files', '-co', '--exclude-standard', '-z'], { cwd: ROOT, encoding: 'utf8' }).stdout.split('\0').filter(Boolean);
    t.ok(files.includes('package.json') && files.includes('bin/tracedump'), `${files.length} source files`);
    const src = path.join(work, 'src');
    for (const f of files) {
      const from = path.join(ROOT, f);
      if (!fs.existsSync(from)) continue; // deleted in the work tree
      fs.mkdirSync(path.dirname(path.join(src, f)), { recursive: true });
      fs.copyFileSync(from, path.join(src, f));
      fs.chmodSync(path.join(src, f), fs.statSync(from).mode);
    }
    const libs = fs.readdirSync('/usr/lib/x86_64-linux-gnu').filter((n) => n.startsWith('libpcap.so')).map((n) => `/usr/lib/x86_64-linux-gnu/${n}`);
    const empty = path.join(work, 'empty');
    fs.mkdirSync(empty);
    const prefix = path.join(work, 'prefix');
    const script = [
      'set -e',
      `[ -d /usr/include/pcap ] && mount --bind ${empty} /usr/include/pcap`,
      `for f in ${[...MASKED, ...libs].join(' ')}; do [ -e "$f" ] && mount --bind /dev/null "$f"; done`,
      // what is left of them: the proof that they are masked
      'echo "pcap.h: $(cat /usr/include/pcap/pcap.h 2>/dev/null | wc -c) bytes"',
      'tshark -v >/dev/null 2>&1 && echo "tshark runs" || echo "no tshark"',
      'tcpdump --version >/dev/null 2>&1 && echo "tcpdump runs" || echo "no tcpdump"',
      `cd ${src}`,
      'npm ci --prefer-offline --no-audit --no-fund > npm-ci.log 2>&1 || { cat npm-ci.log; exit 1; }',
      'echo "== demo"',
      'npm run demo 2>&1',
      'echo "== -f without libpcap"',
      './bin/tracedump -w keep.pcapng -f tcp -- touch ran-f 2>&1 || echo "exit $?"',
      '[ -e ran-f ] && echo "the command ran" || true',
      './bin/tracedump read demo.pcapng tcp 2>&1 || echo "exit $?"',
      'echo "== pack"',
      'npm pack --silent 2>/dev/null | tail -n 1',
      'tar tzf tracedump-*.tgz > tarball.txt',
      `npm install -g --prefix ${prefix} --prefer-offline --no-audit --no-fund ./tracedump-*.tgz > npm-g.log 2>&1 || { cat npm-g.log; exit 1; }`,
      'echo "== installed"',
      `cd ${work} && ${prefix}/bin/tracedump --version`,
      `${prefix}/bin/tracedump -q -w ${work}/installed.pcapng -- node -e "require('net').connect(9, '127.0.0.1').on('error', () => {})" && echo "capture ok"`,
      `${prefix}/bin/tracedump read ${work}/installed.pcapng | head -n 1`,
      `ls ${prefix}/share/man/man1/`,
    ].join('\n');
    const env = { ...process.env };
    delete env.NODE_OPTIONS; // tap's loader is for the tests, not for npm
    const r = spawnSync('unshare', ['-m', 'bash', '-c', script], { encoding: 'utf8', env, timeout: 540_000, maxBuffer: 64 << 20 });
    const out = r.stdout + r.stderr;
    t.equal(r.status, 0, `the script ran through:\n${out.slice(-3000)}`);
    t.match(out, /pcap\.h: 0 bytes/, "libpcap's headers were masked");
    t.match(out, /^no tshark$/m, 'tshark was masked');
    t.match(out, /^no tcpdump$/m, 'tcpdump was masked');
    const demo = out.slice(out.indexOf('== demo'), out.indexOf('== -f'));
    t.match(demo, /GET \/one -> 200/, 'the demo program ran');
    t.match(demo, /^ +\d+ \d\d:\d\d:\d\d\.\d{9} +\d+ node +out tcp +127\.0\.0\.1:\d+ > 127\.0\.0\.1:\d+ len 0 \[S\]$/m, 'tracedump read listed its packets with the process');
    t.match(demo, /^tracedump: \d+ packets \([^)]*\) written to demo\.pcapng, \d+ sockets, 1 process, 0 dropped/m, 'the summary');
    const noPcap = out.slice(out.indexOf('== -f'), out.indexOf('== pack'));
    t.match(noPcap, /-f: filter expressions need libpcap: libpcap is not installed/, '-f names what is missing');
    t.match(noPcap, /apt-get install libpcap0\.8/, '... and the package');
    t.match(noPcap, /^exit 125$/m);
    t.notMatch(noPcap, /the command ran/, 'before the command started');
    t.match(noPcap, /read: filter expressions need libpcap[\s\S]*^exit 2$/m, 'read with an expression too');
    const tarball = fs.readFileSync(path.join(src, 'tarball.txt'), 'utf8').split('\n');
    for (const f of ['package/bin/tracedump', 'package/dist/cli.js', 'package/native/addon.cc', 'package/binding.gyp', 'package/man/tracedump.1', 'package/completion/tracedump.bash'])
      t.ok(tarball.includes(f), `the tarball has ${f}`);
    t.same(tarball.filter((f) => /bench|\.map$|^package\/test\//.test(f)), [], 'no benchmark, source maps or tests in the tarball');
    const installed = out.slice(out.indexOf('== installed'));
    const version = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version as string;
    t.match(installed, new RegExp(`^${version.replace(/\./g, '\\.')}$`, 'm'), 'the installed tracedump runs');
    t.match(installed, /^capture ok$/m, 'and captures');
    t.match(installed, /^ +1 .* node +out tcp +127\.0\.0\.1:\d+ > 127\.0\.0\.1:9 len 0 \[S\]$/m, 'and reads');
    t.match(installed, /^tracedump\.1$/m, 'the man page is installed');
    t.end();
  });
}
