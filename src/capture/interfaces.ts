// The network interfaces of tracedump's namespace, for -D (listed as tcpdump -D lists them)
// and -i (names, kernel indexes, or `any`).
import * as fs from 'node:fs';
import { TracedumpError } from '../errors';
import { native } from '../native';

export interface InterfaceInfo {
  index: number;
  name: string;
  up: boolean;
  running: boolean;
  loopback: boolean;
  /** Carrier, for interfaces that have one: true connected, false not, undefined unknown. */
  connected?: boolean;
}

const IFF_UP = 0x1;
const IFF_LOOPBACK = 0x8;
const IFF_RUNNING = 0x40;

function sysNet(name: string, file: string): string | undefined {
  try {
    return fs.readFileSync(`/sys/class/net/${name}/${file}`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Every interface, by kernel index. */
export function listInterfaces(): InterfaceInfo[] {
  const out: InterfaceInfo[] = [];
  let names: string[] = [];
  try {
    names = fs.readdirSync('/sys/class/net');
  } catch {
    // no sysfs: nothing to list
  }
  for (const name of names) {
    const index = Number(sysNet(name, 'ifindex'));
    if (!Number.isInteger(index) || index <= 0) continue;
    const flags = Number.parseInt(sysNet(name, 'flags') ?? '0', 16) || 0;
    const loopback = (flags & IFF_LOOPBACK) !== 0;
    const operstate = sysNet(name, 'operstate');
    const carrier = sysNet(name, 'carrier');
    out.push({
      index,
      name,
      up: (flags & IFF_UP) !== 0,
      // sysfs flags lack IFF_RUNNING (the kernel adds it from the carrier when asked by ioctl)
      running: (flags & IFF_RUNNING) !== 0 || ((flags & IFF_UP) !== 0 && carrier === '1'),
      loopback,
      connected: loopback || carrier === undefined ? undefined : carrier === '1' && operstate !== 'down',
    });
  }
  return out.sort((a, b) => a.index - b.index);
}

/** tcpdump -D's lines: `1.lo [Up, Running, Loopback]`, and `any` last. */
export function interfaceLines(list: InterfaceInfo[]): string[] {
  const lines = list.map((i) => {
    const flags: string[] = [];
    if (i.up) flags.push('Up');
    if (i.running) flags.push('Running');
    if (i.loopback) flags.push('Loopback');
    else if (i.connected !== undefined) flags.push(i.connected ? 'Connected' : 'Disconnected');
    return `${i.index}.${i.name} [${flags.join(', ')}]`;
  });
  lines.push('any (every interface: the default) [Up, Running]');
  return lines;
}

/** -i: names or kernel indexes, comma-separated; undefined for `any` (every interface). */
export function interfaceIndexes(list: string): number[] | undefined {
  const out: number[] = [];
  for (const raw of list.split(',')) {
    const name = raw.trim();
    if (name === 'any') return undefined;
    let index = /^\d+$/.test(name) ? Number(name) : native().interfaceIndex(name);
    if (index && /^\d+$/.test(name) && native().interfaceName(index) === null) index = 0;
    if (!index) throw new TracedumpError(`-i ${name}: no such interface`, { code: 'ENODEV', hint: 'tracedump -D lists the interfaces of this machine' });
    if (!out.includes(index)) out.push(index);
  }
  return out;
}
