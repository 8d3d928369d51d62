// tracedump as a Wireshark extcap (extcap(4)): Wireshark runs it with --extcap-interfaces,
// --extcap-dlts, --extcap-config, --extcap-capture-filter, then --capture --fifo PATH with the
// dialog's settings; the capture itself is an ordinary tracedump capture written to the fifo.
// `tracedump extcap install|uninstall` puts the entry into Wireshark's extcap folder.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EXIT_TRACEDUMP_FAILURE, TracedumpError, errorText } from '../errors';
import { printError, writeAll } from '../output/fd-writer';
import {
  type ProcessChoice,
  captureArguments,
  configText,
  dltsText,
  interfacesText,
  parseExtcapArgs,
  reloadText,
} from '../extcap/protocol';
import { describeProcess } from '../trace/attached';
import { compileFilter } from '../capture/pcap-filter';

/** The running processes an attach can pick (not kernel threads, not tracedump itself). */
function runningProcesses(): ProcessChoice[] {
  const out: ProcessChoice[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid || pid === process.ppid) continue;
    let cmdline = '';
    try {
      cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1');
    } catch {
      continue; // gone
    }
    if (cmdline === '') continue; // a kernel thread
    out.push({ pid, display: describeProcess(pid).line.trim().replace(/\s+/g, ' ') });
  }
  return out.sort((a, b) => a.pid - b.pid);
}

/**
 * Answers Wireshark's call. `capture` runs tracedump with the arguments the request stands for
 * (the capture program's own main). Exit statuses as extcap expects: 0 once answered (an
 * invalid capture filter is said on stdout, which is how Wireshark tells it from a valid one).
 */
export async function extcap(argv: string[], capture: (args: string[]) => Promise<number>, helpUrl: string): Promise<number> {
  try {
    const r = parseExtcapArgs(argv);
    switch (r.kind) {
      case 'interfaces':
        writeAll(1, interfacesText(helpUrl));
        return 0;
      case 'dlts':
        writeAll(1, dltsText());
        return 0;
      case 'config':
        writeAll(1, configText(runningProcesses()));
        return 0;
      case 'reload':
        if (r.option === '--pid' || r.option === 'pid') writeAll(1, reloadText(runningProcesses()));
        return 0;
      case 'filter':
        try {
          compileFilter(r.filter, 262144, 'capture filter');
        } catch (err) {
          writeAll(1, `${(err as Error).message}\n`);
        }
        return 0;
      case 'capture': {
        const args = captureArguments(r);
        if (r.settings.cwd) {
          try {
            process.chdir(r.settings.cwd);
          } catch (err) {
            throw new TracedumpError(`cannot change to the working directory ${JSON.stringify(r.settings.cwd)}: ${(err as Error).message}`, {
              code: (err as NodeJS.ErrnoException).code,
              hint: "give an existing directory in the dialog's \"Working directory\", or leave it empty",
            });
          }
        }
        return await capture(args);
      }
    }
  } catch (err) {
    if (err instanceof TracedumpError) {
      printError(errorText(err));
      return err.exitStatus;
    }
    throw err;
  }
}

/** `tracedump extcap install|uninstall [--dir DIR]`: its exit status. */
export function extcapCommand(args: string[], launcher: string): number {
  const { install, uninstall } = require('../extcap/install') as typeof import('../extcap/install');
  const usage =
    'usage: tracedump extcap install|uninstall [--system | --dir DIR]\n' +
    "  install: puts tracedump into your personal Wireshark extcap folder, so that Wireshark and tshark\n" +
    '  list a "tracedump" interface (tshark -D); --system: into the system\'s folder (as root);\n' +
    '  --dir: into DIR\n';
  const [verb, ...rest] = args;
  const place: { dir?: string; system?: boolean } = {};
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === '--dir' && rest[i + 1] !== undefined) place.dir = rest[++i];
    else if (rest[i].startsWith('--dir=')) place.dir = rest[i].slice(6);
    else if (rest[i] === '--system') place.system = true;
    else if (rest[i] === '-h' || rest[i] === '--help') {
      writeAll(1, usage);
      return 0;
    } else {
      printError(`extcap: unknown argument ${JSON.stringify(rest[i])}\n${usage}`);
      return EXIT_TRACEDUMP_FAILURE;
    }
  }
  try {
    if (verb === 'install') writeAll(1, install(path.resolve(launcher), place));
    else if (verb === 'uninstall') writeAll(1, uninstall(place));
    else if (verb === undefined || verb === '-h' || verb === '--help' || verb === 'help') {
      writeAll(1, usage);
      return verb === undefined ? EXIT_TRACEDUMP_FAILURE : 0;
    } else {
      printError(`extcap: unknown command ${JSON.stringify(verb)}\n${usage}`);
      return EXIT_TRACEDUMP_FAILURE;
    }
    return 0;
  } catch (err) {
    if (err instanceof TracedumpError) {
      printError(errorText(err));
      return err.exitStatus;
    }
    throw err;
  }
}
