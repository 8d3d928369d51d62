// The observations behind the per-application model, gathered from capture files: per
// application (and per group with --by) the flows' bytes up and down and durations, the
// objects' sizes (all, and per content type), objects per flow, the gaps between objects; the
// bytes up and down per time window; the destinations with their flows and bytes.
import fs from 'node:fs';
import path from 'node:path';
import type { Flow } from '../flows/flow';
import { formatAddress } from '../packet/address';
import type { FlowRecord } from '../flows/flow-record';
import type { ObjectRecord } from '../objects/object-record';
import { scanCapture } from '../objects/scan';
import { Sample } from './distribution';
import type { Destination, Destinations } from './destinations';

export type GroupKey = 'domain' | 'org' | 'type' | 'proto';
export const GROUP_KEYS: GroupKey[] = ['domain', 'org', 'type', 'proto'];

/** What names an application: the run's label or command (default), or each process's name. */
export type AppKey = 'command' | 'comm';

/** The metrics, in the order tables and models list them. */
export const METRICS = ['flow_bytes_up', 'flow_bytes_down', 'flow_duration', 'objects_per_flow', 'object_size', 'object_gap'] as const;

export interface DestinationTotals extends Destination {
  flows: number;
  up: number;
  down: number;
}

export class AppData {
  /** group ('' without --by) -> metric -> values */
  readonly groups = new Map<string, Map<string, Sample>>();
  /** window start (s, a multiple of the window) -> IP bytes up and down */
  readonly windows = new Map<number, { up: number; down: number }>();
  readonly destinations = new Map<string, DestinationTotals>();
  flows = 0;
  objects = 0;
  // request times of HTTP objects, per group (their gaps are taken at the end)
  readonly objectTimes = new Map<string, Sample>();

  constructor(readonly name: string) {}

  sample(group: string, metric: string): Sample {
    let g = this.groups.get(group);
    if (!g) this.groups.set(group, (g = new Map()));
    let s = g.get(metric);
    if (!s) g.set(metric, (s = new Sample()));
    return s;
  }

  /** The gaps between consecutive objects, once every file is read. */
  finishGaps(): void {
    for (const [group, times] of this.objectTimes) {
      const t = times.sorted();
      const gaps = this.sample(group, 'object_gap');
      for (let i = 1; i < t.length; i++) gaps.add(t[i] - t[i - 1]);
    }
    this.objectTimes.clear();
  }
}

export interface CollectOptions {
  by: GroupKey | undefined;
  app: AppKey;
  /** --window: seconds, or none. */
  windowSec: number | undefined;
  objects: boolean;
  idleSec: number;
  activeSec: number;
  destinations: Destinations;
  /** Keep up to this many flow and object records (for a report's table). */
  keepRecords?: number;
}

/** Records kept for a report, and how many there were in all. */
export interface KeptRecords {
  flows: FlowRecord[];
  objects: ObjectRecord[];
  flowCount: number;
  objectCount: number;
}

/** The capture files of the inputs: files as given, directories searched (in name order). */
export function captureFiles(inputs: string[]): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && /\.(pcap|pcapng|cap)$/.test(e.name)) out.push(p);
    }
  };
  for (const input of inputs) {
    if (fs.statSync(input, { throwIfNoEntry: false })?.isDirectory()) walk(input);
    else out.push(input);
  }
  return out;
}

/** A run's label, from the meta.json beside its capture (campaigns write one). */
function runLabel(file: string): string | undefined {
  try {
    const meta = JSON.parse(fs.readFileSync(path.join(path.dirname(file), 'meta.json'), 'utf8')) as { label?: unknown };
    return typeof meta.label === 'string' && meta.label ? meta.label : undefined;
  } catch {
    return undefined;
  }
}

/** The program a tracedump capture ran, from its section comment ("tracedump -- curl -s ..."). */
export function commandName(comments: string[]): string | undefined {
  for (const c of comments) {
    const m = /^tracedump -- (?:'((?:[^']|'\\'')*)'|(\S+))/.exec(c);
    if (m) return path.basename(m[1] ?? m[2]);
  }
  return undefined;
}

export class Collector {
  readonly apps = new Map<string, AppData>();
  readonly kept: KeptRecords = { flows: [], objects: [], flowCount: 0, objectCount: 0 };

  constructor(private readonly o: CollectOptions) {}

  private app(name: string): AppData {
    let a = this.apps.get(name);
    if (!a) this.apps.set(name, (a = new AppData(name)));
    return a;
  }

  /** Reads one capture file into the model. */
  async file(file: string): Promise<void> {
    const label = runLabel(file);
    let command: string | undefined;
    const appOf = (flow: Flow | undefined, comm: unknown): AppData => {
      if (this.o.app === 'command') {
        if (label) return this.app(label);
        if (command) return this.app(command);
      }
      // a capture without process fields (not tracedump's): the file's name
      return this.app(typeof comm === 'string' ? comm : (flow?.process?.comm ?? stem));
    };
    const stem = path.basename(file).replace(/\.(pcapng|pcap|cap)$/, '');
    // objects per flow, by uid, until the flow ends
    const perFlow = new Map<string, number>();
    const w = this.o.windowSec;
    await scanCapture(
      file,
      { idleSec: this.o.idleSec, activeSec: this.o.activeSec, objects: this.o.objects },
      {
        section: (comments) => {
          command = commandName(comments);
        },
        object: (r, flow) => {
          const a = appOf(flow, r.comm);
          const d = this.destination(flow, r.host as string | undefined);
          this.keep(this.kept.objects, r, a, d);
          this.kept.objectCount++;
          this.object(a, r, d, perFlow);
        },
        flow: (r, flow) => {
          const a = appOf(flow, r.comm);
          const d = this.destination(flow);
          this.keep(this.kept.flows, r, a, d);
          this.kept.flowCount++;
          this.flow(a, r, d, perFlow);
        },
        packet: w
          ? (flow, p, fromOrig) => {
              const a = appOf(flow, undefined);
              const start = Math.floor(p.us / 1e6 / w) * w;
              let win = a.windows.get(start);
              if (!win) a.windows.set(start, (win = { up: 0, down: 0 }));
              if (flow.fromApp(fromOrig)) win.up += p.ipLen;
              else win.down += p.ipLen;
            }
          : undefined,
      },
    );
  }

  private keep(into: FlowRecord[], r: FlowRecord, a: AppData, d: Destination): void {
    if (into.length >= (this.o.keepRecords ?? 0)) return;
    into.push({ app: a.name, ...r, domain: d.domain, ...(d.org ? { org: d.org } : {}) });
  }

  /** Every file read: the gaps between objects. */
  finish(): void {
    for (const a of this.apps.values()) a.finishGaps();
  }

  /** The flow's server (an object's Host where the flow names none), once per record. */
  private destination(flow: Flow, host?: string): Destination {
    const peer = flow.appRole === 1 ? flow.origAddr : flow.respAddr;
    return this.o.destinations.of(flow.serverName()?.name ?? host, flow.serverDns()?.chain, formatAddress(peer));
  }

  private group(d: Destination, proto: string, type: string | undefined): string {
    switch (this.o.by) {
      case undefined:
        return '';
      case 'domain':
        return d.domain;
      case 'org':
        return d.org ?? '(unknown)';
      case 'type':
        return type ?? '-';
      case 'proto':
        return proto;
    }
  }

  private flow(a: AppData, r: FlowRecord, d: Destination, perFlow: Map<string, number>): void {
    a.flows++;
    const proto = typeof r.service === 'string' ? `${r.proto}/${r.service}` : String(r.proto);
    const g = this.group(d, proto, undefined);
    const up = r.app_dir === undefined ? r.orig_bytes : r.up_bytes;
    const down = r.app_dir === undefined ? r.resp_bytes : r.down_bytes;
    a.sample(g, 'flow_bytes_up').add(typeof up === 'number' ? up : 0);
    a.sample(g, 'flow_bytes_down').add(typeof down === 'number' ? down : 0);
    a.sample(g, 'flow_duration').add(typeof r.duration === 'number' ? r.duration : 0);
    const objects = perFlow.get(r.uid as string);
    if (objects !== undefined) {
      a.sample(g, 'objects_per_flow').add(objects);
      perFlow.delete(r.uid as string);
    }
    const key = `${d.domain}\u0000${d.org ?? ''}`;
    let t = a.destinations.get(key);
    if (!t) a.destinations.set(key, (t = { ...d, flows: 0, up: 0, down: 0 }));
    t.flows++;
    // from the program's side (the originator's when the file does not say)
    const appAnswered = r.app_dir === 'resp';
    t.up += Number(appAnswered ? r.resp_ip_bytes : r.orig_ip_bytes);
    t.down += Number(appAnswered ? r.orig_ip_bytes : r.resp_ip_bytes);
  }

  private object(a: AppData, r: ObjectRecord, d: Destination, perFlow: Map<string, number>): void {
    if (r.kind !== 'http') return;
    a.objects++;
    const type = typeof r.resp_content_type === 'string' ? r.resp_content_type.split(';')[0].trim().toLowerCase() : undefined;
    const g = this.group(d, `http/${r.version}`, type);
    if (typeof r.resp_body_bytes === 'number') {
      a.sample(g, 'object_size').add(r.resp_body_bytes);
      if (type) a.sample(g, `object_size[${type}]`).add(r.resp_body_bytes);
    }
    const uid = r.uid as string;
    perFlow.set(uid, (perFlow.get(uid) ?? 0) + 1);
    let times = a.objectTimes.get(g);
    if (!times) a.objectTimes.set(g, (times = new Sample()));
    times.add(r.ts as number);
  }
}
