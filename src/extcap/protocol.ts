// Wireshark's extcap protocol (extcap(4)), as Wireshark 4.0 speaks it: the lines tracedump
// prints when Wireshark asks for its interfaces, link types and configuration, and the reading
// of the arguments Wireshark calls it with. Pure: no process, no file.
import { TracedumpError } from '../errors';
import { version } from '../version';

/** The one interface tracedump offers. */
export const EXTCAP_INTERFACE = 'tracedump';

/** LINKTYPE_LINUX_SLL2: what the capture's interfaces are (the process comes in options). */
const DLT_LINUX_SLL2 = 276;

// A value inside {...}: Wireshark's parser ends it at the first '}', and a line at '\n'.
function field(v: string): string {
  return v.replace(/[{}]/g, (c) => (c === '{' ? '(' : ')')).replace(/[\r\n\t]+/g, ' ');
}

/** --extcap-interfaces */
export function interfacesText(helpUrl: string): string {
  return [
    `extcap {version=${version}}{help=${field(helpUrl)}}`,
    `interface {value=${EXTCAP_INTERFACE}}{display=Packets of one program}`,
    '',
  ].join('\n');
}

/** --extcap-dlts */
export function dltsText(): string {
  return `dlt {number=${DLT_LINUX_SLL2}}{name=LINUX_SLL2}{display=Linux cooked-mode capture v2, with the process of each packet}\n`;
}

/** A running process offered for attaching. */
export interface ProcessChoice {
  pid: number;
  /** pid, name and command line, as the selector shows it. */
  display: string;
}

/** The configuration arguments, in the dialog's order; `call` is the option Wireshark passes. */
export const CONFIG_ARGS = {
  command: 0,
  user: 1,
  cwd: 2,
  pid: 3,
  pname: 4,
  snaplen: 5,
  noTlsKeys: 6,
} as const;

/**
 * What the dialog accepts as a user (Wireshark marks the field until it matches): a name as
 * useradd(8) allows one, or a number.
 */
export const USER_PATTERN = '^([a-z_][a-z0-9_.-]*[$]?|[0-9]+)$';

/** --extcap-config: the dialog (launch a command, or attach; capture settings). */
export function configText(processes: ProcessChoice[]): string {
  const n = CONFIG_ARGS;
  const lines = [
    `arg {number=${n.command}}{call=--command}{display=Command}{type=string}{group=Launch a command}` +
      '{tooltip=The command line to run and capture, as a shell would read it (sh -c): every process and thread it starts is followed}',
    `arg {number=${n.user}}{call=--user}{display=Run as user}{type=string}{validation=${USER_PATTERN}}{group=Launch a command}` +
      '{tooltip=Run the command as this user (default: root, or the user who ran sudo)}',
    `arg {number=${n.cwd}}{call=--cwd}{display=Working directory}{type=string}{group=Launch a command}` +
      "{tooltip=The command's working directory (default: Wireshark's)}",
    `arg {number=${n.pid}}{call=--pid}{display=Running process}{type=selector}{reload=true}{placeholder=Reload the list}{group=Or attach}` +
      '{tooltip=Attach to this running process (and its threads and children) instead of launching a command; it keeps running when capture stops}',
    ...processValues(processes),
    `arg {number=${n.pname}}{call=--pname}{display=Processes named}{type=string}{group=Or attach}` +
      '{tooltip=Attach to every running process with this name}',
    `arg {number=${n.snaplen}}{call=--snaplen}{display=Snapshot length}{type=unsigned}{range=0,262144}{default=262144}{group=Capture}` +
      '{tooltip=Bytes to keep of each packet: 64 to 262144, or 0 for the largest}',
    `arg {number=${n.noTlsKeys}}{call=--no-tls-keys}{display=Do not ask for TLS keys}{type=boolflag}{default=false}{group=Capture}` +
      '{tooltip=By default a launched program is asked for its TLS keys, which go into the capture so that Wireshark decrypts its HTTPS}',
    '',
  ];
  return lines.join('\n');
}

/** The choices of the process selector: none first (a selector always has a value: it is chosen until one picks a process), then the processes. */
function processValues(processes: ProcessChoice[]): string[] {
  const arg = CONFIG_ARGS.pid;
  return [
    `value {arg=${arg}}{value=}{display=none: launch the command}{default=true}`,
    ...processes.map((p) => `value {arg=${arg}}{value=${p.pid}}{display=${field(p.display)}}`),
  ];
}

/** --extcap-reload-option pid: the processes again. */
export function reloadText(processes: ProcessChoice[]): string {
  return processValues(processes).map((l) => `${l}\n`).join('');
}

/** What Wireshark asked for. */
export type ExtcapRequest =
  | { kind: 'interfaces' }
  | { kind: 'dlts' }
  | { kind: 'config' }
  | { kind: 'reload'; option: string }
  | { kind: 'filter'; filter: string }
  | { kind: 'capture'; fifo: string; filter?: string; settings: CaptureSettings };

export interface CaptureSettings {
  command?: string;
  user?: string;
  cwd?: string;
  pid?: string;
  pname?: string;
  snaplen?: string;
  noTlsKeys: boolean;
}

/** Whether these arguments are Wireshark's extcap calls (tracedump is then its extcap). */
export function isExtcapCall(argv: string[]): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).some((a) => a.startsWith('--extcap-'));
}

const VALUED = new Set([
  '--extcap-interface',
  '--extcap-version',
  '--extcap-capture-filter',
  '--extcap-reload-option',
  '--extcap-control-in',
  '--extcap-control-out',
  '--fifo',
  '--command',
  '--user',
  '--cwd',
  '--pid',
  '--pname',
  '--snaplen',
  '--log-level',
  '--log-file',
]);

/** An error in Wireshark's call (or the dialog's settings): its message names the argument. */
function usage(message: string): TracedumpError {
  return new TracedumpError(`extcap: ${message}`, { code: 'EUSAGE' });
}

/**
 * Reads Wireshark's call (`--name value` or `--name=value`). Options it passes that tracedump
 * does not use (--extcap-version, control pipes) are accepted and ignored, as extcap asks.
 */
export function parseExtcapArgs(argv: string[]): ExtcapRequest {
  const values = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = a.indexOf('=');
    const name = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    if (VALUED.has(name)) {
      const value = eq > 0 && name !== a ? a.slice(eq + 1) : argv[++i];
      if (value === undefined) throw usage(`${name} needs a value`);
      values.set(name, value);
    } else if (a.startsWith('--')) {
      flags.add(a);
    } else {
      throw usage(`unexpected argument ${JSON.stringify(a)}`);
    }
  }
  if (flags.has('--extcap-interfaces')) return { kind: 'interfaces' };
  const iface = values.get('--extcap-interface');
  if (iface !== undefined && iface !== EXTCAP_INTERFACE) throw usage(`no extcap interface ${JSON.stringify(iface)} (tracedump has one: ${EXTCAP_INTERFACE})`);
  if (flags.has('--extcap-dlts')) return { kind: 'dlts' };
  if (values.has('--extcap-reload-option')) return { kind: 'reload', option: values.get('--extcap-reload-option')! };
  if (flags.has('--extcap-config')) return { kind: 'config' };
  const filter = values.get('--extcap-capture-filter');
  if (flags.has('--capture')) {
    const fifo = values.get('--fifo');
    if (!fifo) throw usage('--capture needs --fifo PATH');
    return {
      kind: 'capture',
      fifo,
      filter: filter?.trim() ? filter : undefined,
      settings: {
        command: values.get('--command'),
        user: values.get('--user'),
        cwd: values.get('--cwd'),
        pid: values.get('--pid'),
        pname: values.get('--pname'),
        snaplen: values.get('--snaplen'),
        noTlsKeys: flags.has('--no-tls-keys'),
      },
    };
  }
  if (filter !== undefined) return { kind: 'filter', filter };
  throw usage('nothing asked: --extcap-interfaces, --extcap-dlts, --extcap-config or --capture');
}

/**
 * The tracedump command line a capture request stands for: pcapng to the fifo, flushed after
 * every batch, and the command (through sh -c) or the processes to attach to.
 */
export function captureArguments(r: Extract<ExtcapRequest, { kind: 'capture' }>): string[] {
  const s = r.settings;
  const args = ['-q', '-U', '--format', 'pcapng', '-w', r.fifo];
  if (r.filter) args.push('-f', r.filter);
  if (s.snaplen !== undefined && s.snaplen !== '') args.push('-s', s.snaplen);
  if (s.noTlsKeys) args.push('--no-tls-keys');
  const command = s.command?.trim();
  const attach = (s.pid ?? '').trim() !== '' || (s.pname ?? '').trim() !== '';
  if (command && attach) throw usage('give a command or a process to attach to, not both');
  if (!command && !attach) throw usage('give a command to run, or a running process to attach to');
  if (attach) {
    if (s.user) throw usage('"Run as user" applies to a launched command; attached processes keep their own user');
    if (s.pid?.trim()) args.push('-p', s.pid.trim());
    else args.push('--pname', s.pname!.trim());
    return args;
  }
  if (s.user) args.push('-u', s.user);
  args.push('--', 'sh', '-c', command!);
  return args;
}
