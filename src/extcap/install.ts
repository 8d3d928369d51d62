// `tracedump extcap install`: a link named tracedump, in Wireshark's extcap folder, to this
// tracedump's launcher. Wireshark runs what is in that folder as the user who runs Wireshark;
// a tracedump that another user could change would then run their code as that user (root,
// when Wireshark runs as root), so the install refuses one. The folder is the one the
// installed Wireshark reads (`tshark -G folders`): the personal one by default ("Personal
// Extcap path" from 4.1 on; 4.0 names none but reads "extcap" in the personal configuration
// folder), the system's with --system.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TracedumpError } from '../errors';
import { EXTCAP_INTERFACE } from './protocol';

/** The extcap folders of the installed Wireshark, from `tshark -G folders`. */
export function extcapFolders(): { personal?: string; system?: string } {
  const r = spawnSync('tshark', ['-G', 'folders'], { encoding: 'utf8' });
  if (r.error || r.status !== 0)
    throw new TracedumpError('cannot ask Wireshark for its extcap folder: tshark -G folders failed' + (r.error ? ` (${r.error.message})` : ''), {
      code: 'ENOTSHARK',
      hint: 'install Wireshark (Debian, Ubuntu: apt-get install tshark), or name the folder with --dir',
    });
  const out: { personal?: string; system?: string } = {};
  let config: string | undefined;
  for (const line of r.stdout.split('\n')) {
    const m = /^(Personal Extcap path|Extcap path|Personal configuration):\s*(.+)$/.exec(line.trim());
    if (!m) continue;
    if (m[1] === 'Personal configuration') config = m[2].trim();
    else out[m[1] === 'Extcap path' ? 'system' : 'personal'] = m[2].trim();
  }
  if (!out.personal && config) out.personal = path.join(config, 'extcap');
  if (!out.system && !out.personal) throw new TracedumpError('tshark -G folders names no extcap folder', { code: 'ENOTSHARK', hint: 'name the folder with --dir' });
  return out;
}

/**
 * Refuses a launcher another user could change: every directory from / to the package, and
 * the package's own parts, owned by root or by us, and writable by nobody else (a sticky
 * directory such as /tmp excepted: others cannot replace what is ours in it).
 */
function checkOwnership(launcher: string): void {
  const real = fs.realpathSync(launcher);
  const root = path.dirname(path.dirname(real)); // .../bin/tracedump -> the package
  const me = process.getuid?.() ?? 0;
  const check = (p: string, sticky: boolean) => {
    const st = fs.statSync(p);
    const owner = st.uid === 0 || st.uid === me;
    const othersWrite = (st.mode & 0o022) !== 0 && !(sticky && st.mode & 0o1000);
    if (!owner || othersWrite)
      throw new TracedumpError(`tracedump at ${real} can be changed by another user: ${p} is ${!owner ? `owned by uid ${st.uid}` : 'writable by its group or others'}`, {
        code: 'EUNSAFE',
        hint: 'Wireshark would run that code as its own user: install tracedump where only root (or you) can write, e.g. npm install -g as root',
      });
  };
  const parts = root.split(path.sep).filter(Boolean);
  for (let i = 0; i <= parts.length; i++) check(path.sep + parts.slice(0, i).join(path.sep), true);
  for (const part of ['bin', 'bin/tracedump', 'dist', 'dist/cli.js', 'build', 'node_modules']) {
    const p = path.join(root, part);
    if (fs.existsSync(p)) check(p, false);
  }
}

/** Where to install: `dir`, or the system's extcap folder, or the personal one. */
export interface InstallPlace {
  dir?: string;
  system?: boolean;
}

function targetFolder(place: InstallPlace): string {
  if (place.dir) return path.resolve(place.dir);
  const f = extcapFolders();
  const folder = place.system ? f.system : (f.personal ?? f.system);
  if (!folder) throw new TracedumpError(`tshark -G folders names no ${place.system ? 'system' : 'personal'} extcap folder`, { code: 'ENOTSHARK', hint: 'name the folder with --dir' });
  return folder;
}

const PRIVILEGES = [
  'The capture runs as the user who runs Wireshark, and tracedump needs root (it traces the',
  'program and opens a packet socket with an eBPF filter). Run Wireshark or tshark as root for',
  'these captures (sudo tshark -i tracedump ...), or start the capture from a shell with',
  'sudo tracedump -w FILE -- COMMAND and open FILE.',
];

/** Installs the link; returns what to tell the user. */
export function install(launcher: string, place: InstallPlace): string {
  checkOwnership(launcher);
  const folder = targetFolder(place);
  try {
    fs.mkdirSync(folder, { recursive: true, mode: 0o755 });
  } catch (err) {
    throw new TracedumpError(`cannot create the extcap folder ${folder}: ${(err as Error).message}`, {
      code: (err as NodeJS.ErrnoException).code,
      hint: 'the system folder needs root (sudo tracedump extcap install), or give --dir',
    });
  }
  const entry = path.join(folder, EXTCAP_INTERFACE);
  const real = fs.realpathSync(launcher);
  let existing: fs.Stats | undefined;
  try {
    existing = fs.lstatSync(entry);
  } catch {
    // nothing there yet
  }
  if (existing && !existing.isSymbolicLink())
    throw new TracedumpError(`${entry} exists and is not a link tracedump made`, { code: 'EEXIST', hint: 'remove it first if it is an old tracedump entry' });
  // a new link under a temporary name, renamed over the old one: the folder never lacks it
  const temp = `${entry}.${process.pid}.tmp`;
  try {
    fs.rmSync(temp, { force: true });
    fs.symlinkSync(real, temp);
    fs.renameSync(temp, entry);
  } catch (err) {
    fs.rmSync(temp, { force: true });
    throw new TracedumpError(`cannot install ${entry}: ${(err as Error).message}`, {
      code: (err as NodeJS.ErrnoException).code,
      hint: 'the system folder needs root (sudo tracedump extcap install), or give --dir',
    });
  }
  return [
    `installed ${entry} -> ${real}`,
    `Wireshark and tshark now list the interface "${EXTCAP_INTERFACE}" (tshark -D). Its dialog launches a`,
    'command or attaches to running processes; from tshark:',
    `  tshark -i ${EXTCAP_INTERFACE} -o 'extcap.${EXTCAP_INTERFACE}.command:curl -s https://example.org/' -w out.pcapng`,
    '',
    ...PRIVILEGES,
    '',
  ].join('\n');
}

/** Removes the link if it is there; returns what to tell the user. */
export function uninstall(place: InstallPlace): string {
  const entry = path.join(targetFolder(place), EXTCAP_INTERFACE);
  let st: fs.Stats;
  try {
    st = fs.lstatSync(entry);
  } catch {
    return `nothing to remove: no ${entry}\n`;
  }
  if (!st.isSymbolicLink()) throw new TracedumpError(`${entry} is not a link tracedump made: left as it is`, { code: 'EEXIST' });
  fs.unlinkSync(entry);
  return `removed ${entry}\n`;
}
