// Who the launched command runs as: under sudo, the user who ran sudo (as tcpdump -Z drops to a
// user); -u USER picks another; -u root keeps root. Capture stays privileged either way.
import * as fs from 'node:fs';
import { TracedumpError } from '../errors';
import type { Environment } from '../environment';
import { type UserAccount, native } from '../native';

export interface RunAs {
  account: UserAccount;
  /** The command's environment: HOME, USER, LOGNAME, SHELL of the account; sudo's own gone. */
  env: Environment;
}

/**
 * The account to run as, or undefined to keep tracedump's own identity.
 * userOption: the -u value (a name or a numeric uid).
 */
export function chooseRunAs(userOption: string | undefined, env: Environment): RunAs | undefined {
  const euid = process.geteuid?.() ?? 0;
  let account: UserAccount | null;
  if (userOption !== undefined) {
    account = native().lookupUser(/^\d+$/.test(userOption) ? Number(userOption) : userOption);
    if (!account) throw new TracedumpError(`-u ${userOption}: no such user`, { code: 'EUSAGE' });
    if (account.uid === euid) return undefined; // already that user (e.g. -u root as root)
    if (euid !== 0)
      throw new TracedumpError(`-u ${userOption}: running the command as another user needs root (CAP_SETUID and CAP_SETGID)`, {
        code: 'EPERM',
        hint: 'run tracedump with sudo',
      });
  } else {
    // sudo tracedump ...: the command runs as whoever ran sudo, as it would from their shell
    const sudoUid = env.get('SUDO_UID');
    if (euid !== 0 || !sudoUid || !/^\d+$/.test(sudoUid) || Number(sudoUid) === 0) return undefined;
    account = native().lookupUser(Number(sudoUid));
    if (!account) return undefined;
  }
  return { account, env: userEnvironment(env, account) };
}

function userEnvironment(env: Environment, a: UserAccount): Environment {
  const out = env.clone().set('HOME', a.home).set('USER', a.name).set('LOGNAME', a.name).set('SHELL', a.shell);
  for (const k of ['SUDO_USER', 'SUDO_UID', 'SUDO_GID', 'SUDO_COMMAND', 'SUDO_HOME', 'MAIL']) out.delete(k);
  // A desktop session's runtime directory and bus: what GUI apps (Wayland, D-Bus) look for.
  const runtime = `/run/user/${a.uid}`;
  if (!out.get('XDG_RUNTIME_DIR') && isDirOwnedBy(runtime, a.uid)) out.set('XDG_RUNTIME_DIR', runtime);
  if (!out.get('DBUS_SESSION_BUS_ADDRESS') && out.get('XDG_RUNTIME_DIR') === runtime && fs.existsSync(`${runtime}/bus`))
    out.set('DBUS_SESSION_BUS_ADDRESS', `unix:path=${runtime}/bus`);
  // X11 falls back to ~/.Xauthority, which HOME now names; an XAUTHORITY sudo kept stays.
  return out;
}

function isDirOwnedBy(dir: string, uid: number): boolean {
  try {
    const st = fs.statSync(dir);
    return st.isDirectory() && st.uid === uid;
  } catch {
    return false;
  }
}
