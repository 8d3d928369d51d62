// The machine a run was made on, as a run's meta.json records it: what a reader of a dataset
// needs to judge and repeat it (hardware, system, network set-up, time zone).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';

export interface HostInterface {
  name: string;
  mtu: number | null;
  mac: string | null;
  addresses: string[];
}

export interface HostInfo {
  hostname: string;
  os: string;
  kernel: string;
  cpu: { model: string; count: number };
  memory_bytes: number;
  interfaces: HostInterface[];
  default_routes: string[];
  dns_resolvers: string[];
  time_zone: string;
}

const read = (file: string): string | undefined => {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
};

function osRelease(): string {
  const text = read('/etc/os-release') ?? '';
  return /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(text)?.[1] ?? `${os.type()} ${os.release()}`;
}

function interfaces(): HostInterface[] {
  const out: HostInterface[] = [];
  for (const [name, addrs] of Object.entries(os.networkInterfaces())) {
    const mtu = Number(read(`/sys/class/net/${name}/mtu`)?.trim());
    const mac = addrs?.find((a) => a.mac && a.mac !== '00:00:00:00:00:00')?.mac ?? null;
    out.push({ name, mtu: Number.isFinite(mtu) ? mtu : null, mac, addresses: (addrs ?? []).map((a) => a.cidr ?? a.address) });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** Default routes, as `ip route` would say them ("default via 10.0.0.1 dev eth0"). */
function defaultRoutes(): string[] {
  const routes: string[] = [];
  for (const line of (read('/proc/net/route') ?? '').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 3 || f[1] !== '00000000') continue;
    const g = Number.parseInt(f[2], 16);
    routes.push(`default via ${[g & 255, (g >>> 8) & 255, (g >>> 16) & 255, g >>> 24].join('.')} dev ${f[0]}`);
  }
  for (const line of (read('/proc/net/ipv6_route') ?? '').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[0] !== '0'.repeat(32) || f[1] !== '00' || f[4] === '0'.repeat(32)) continue;
    const via = f[4].match(/.{4}/g)?.join(':').replace(/(^|:)0{1,3}/g, '$1') ?? f[4];
    routes.push(`default via ${via} dev ${f[9]}`);
  }
  return routes;
}

function resolvers(): string[] {
  return (read('/etc/resolv.conf') ?? '')
    .split('\n')
    .map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1])
    .filter((x): x is string => !!x);
}

export function hostInfo(): HostInfo {
  const cpus = os.cpus();
  return {
    hostname: os.hostname(),
    os: osRelease(),
    kernel: `${os.type()} ${os.release()} ${os.version()}`,
    cpu: { model: cpus[0]?.model?.trim() ?? 'unknown', count: cpus.length },
    memory_bytes: os.totalmem(),
    interfaces: interfaces(),
    default_routes: defaultRoutes(),
    dns_resolvers: resolvers(),
    time_zone: Intl.DateTimeFormat().resolvedOptions().timeZone,
  };
}

/** The Debian package a file belongs to, and its version (dpkg's word), or nulls. */
export function packageOf(file: string): { package: string | null; version: string | null } {
  try {
    const owner = execFileSync('dpkg', ['-S', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
    const pkg = /^([^:,\s]+)(?::[^:\s]+)?(?:,[^:]*)?: /.exec(owner.split('\n')[0])?.[1];
    if (!pkg) return { package: null, version: null };
    const version = execFileSync('dpkg-query', ['-W', '-f=${Version}', pkg], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 }).trim();
    return { package: pkg, version: version || null };
  } catch {
    return { package: null, version: null }; // not dpkg's, or no dpkg
  }
}
