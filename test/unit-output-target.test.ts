// An output file takes its path only once the program has started (OutputTarget, CaptureFile):
// before commit() the path holds what it held, abandon() leaves it so and removes what the run
// made, commit() puts a whole file there at once; through a symbolic link the file behind it is
// kept until commit() and truncated only then; a guardian removes an uncommitted file if
// tracedump dies.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { OutputTarget } from '../src/output/output-target';
import { CaptureFile } from '../src/output/capture-file';
import { pcapFormat } from '../src/output/pcap-format';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tracedump-unit-target-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

const OWNER = { pid: 1, tid: 1, comm: 'x', inode: 1 };
const ETH_P_IP = 0x0800;
const packet = () => ({ sec: 1, nsec: 0, len: 20, ifindex: 1, protocol: ETH_P_IP, hatype: 1, pkttype: 0, data: Buffer.alloc(20, 0x45) });
const listing = (d: string) => fs.readdirSync(d).sort();

t.test('a regular file: untouched until commit, then replaced by a whole file', async (t) => {
  const d = fs.mkdtempSync(path.join(tmp, 'regular-'));
  const file = path.join(d, 'x.pcap');
  fs.writeFileSync(file, 'old');
  const f = CaptureFile.open(file, pcapFormat(100));
  f.write(packet(), OWNER);
  f.flush();
  t.equal(fs.readFileSync(file, 'utf8'), 'old', 'before commit the path holds the old file');
  t.equal(listing(d).length, 2, 'the new file is written beside it');
  f.commit();
  t.same(listing(d), ['x.pcap'], 'renamed into place');
  t.equal(fs.readFileSync(file).readUInt32LE(0), 0xa1b23c4d, 'a pcap now, header first');
  f.write(packet(), OWNER);
  f.close();
  t.equal(fs.statSync(file).size, 24 + 2 * (16 + 20 + 20), 'both records');
});

t.test('abandon: the old file stays, nothing new is left; a new path is not created', async (t) => {
  const d = fs.mkdtempSync(path.join(tmp, 'abandon-'));
  const file = path.join(d, 'x.pcap');
  fs.writeFileSync(file, 'old');
  const f = CaptureFile.open(file, pcapFormat(100));
  f.write(packet(), OWNER);
  f.abandon();
  t.same(listing(d), ['x.pcap']);
  t.equal(fs.readFileSync(file, 'utf8'), 'old');
  const fresh = path.join(d, 'fresh.pcap');
  CaptureFile.open(fresh, pcapFormat(100)).close(); // closed without commit: the program never ran
  t.same(listing(d), ['x.pcap'], 'close() without commit() abandons');
});

t.test('a symbolic link: the file behind it keeps its content until commit, then is written in place', async (t) => {
  const d = fs.mkdtempSync(path.join(tmp, 'link-'));
  const real = path.join(d, 'real.pcap');
  const link = path.join(d, 'link.pcap');
  fs.writeFileSync(real, 'old content of the real file');
  fs.symlinkSync(real, link);
  const f = CaptureFile.open(link, pcapFormat(100));
  f.write(packet(), OWNER);
  f.flush();
  t.equal(fs.readFileSync(real, 'utf8'), 'old content of the real file', 'nothing written before commit');
  f.commit();
  f.close();
  t.ok(fs.lstatSync(link).isSymbolicLink(), 'the link is still a link');
  t.equal(fs.statSync(real).size, 24 + 16 + 20 + 20, 'the real file holds the capture, truncated first');
  t.equal(spawnSync('capinfos', ['-c', real], { encoding: 'utf8' }).status, 0, 'capinfos reads it');
});

t.test('OutputTarget: a directory is refused; commit twice is harmless', async (t) => {
  t.throws(() => OutputTarget.open(tmp, { mode: 0o644 }), { code: 'EISDIR' });
  const file = path.join(tmp, 'events.txt');
  const o = OutputTarget.open(file, { mode: 0o644 });
  fs.writeSync(o.fd, 'line\n');
  t.notOk(fs.existsSync(file));
  o.commit();
  o.commit();
  o.close();
  o.close();
  t.equal(fs.readFileSync(file, 'utf8'), 'line\n');
});

t.test('tracedump killed before the program started: the guardian removes the new file', async (t) => {
  const d = fs.mkdtempSync(path.join(tmp, 'guard-'));
  const file = path.join(d, 'x.pcap');
  fs.writeFileSync(file, 'old');
  const code = `
    const { CaptureFile } = require(${JSON.stringify(path.resolve(__dirname, '../dist/output/capture-file.js'))});
    const { pcapFormat } = require(${JSON.stringify(path.resolve(__dirname, '../dist/output/pcap-format.js'))});
    const f = CaptureFile.open(process.argv[1], pcapFormat(100));
    if (process.argv[2] === 'commit') f.commit();
    process.kill(process.pid, 'SIGKILL');`;
  spawnSync(process.execPath, ['-e', code, file, 'no'], { encoding: 'utf8' });
  for (let i = 0; i < 100 && listing(d).length > 1; i++) await new Promise((r) => setTimeout(r, 20));
  t.same(listing(d), ['x.pcap'], 'the temporary file is gone');
  t.equal(fs.readFileSync(file, 'utf8'), 'old', 'the old file is as it was');
  spawnSync(process.execPath, ['-e', code, file, 'commit'], { encoding: 'utf8' });
  await new Promise((r) => setTimeout(r, 200));
  t.same(listing(d), ['x.pcap'], 'committed: the guardian leaves the file');
  t.equal(fs.readFileSync(file).readUInt32LE(0), 0xa1b23c4d, 'the new capture, with its header');
});
