// One capture file read once for everything derived from it: its flows (the flow table of
// `tracedump flows`), its objects (tshark's HTTP and TLS joined to the flows, the program's DNS
// messages) and every packet of a flow as it is read (for time series). `objects` and `stats`
// both read files through here.
import type { Flow } from '../flows/flow';
import type { FlowPacket } from '../flows/flow-packet';
import type { FlowRecord } from '../flows/flow-record';
import { TracedumpError } from '../errors';
import { printError } from '../output/fd-writer';
import { ReadError } from '../read/reader';
import { quoteName } from '../text/quote';
import { DnsObjects } from './dns-objects';
import { FlowWalk } from './flow-walk';
import { HttpObjects } from './http-objects';
import type { ObjectRecord } from './object-record';
import { TlsObjects } from './tls-objects';
import { tsharkPackets } from './tshark';

export interface ScanOptions {
  idleSec: number;
  activeSec: number;
  /** Make the objects (needs tshark for HTTP and TLS; DNS comes without). */
  objects: boolean;
}

export interface ScanHooks {
  /** An object, with its flow (still open). */
  object?(r: ObjectRecord, flow: Flow): void;
  flow?(r: FlowRecord, flow: Flow): void;
  packet?(flow: Flow, p: FlowPacket, fromOrig: boolean): void;
  /** A section of the file began (pcapng), with its comments (tracedump's names the command). */
  section?(comments: string[]): void;
  /** Whether to stop early (the output was closed). */
  stopped?(): boolean;
}

/** A file a scan could not read (damaged: 1; not a capture, or tshark failed: 2), said on stderr. */
const SCAN_DAMAGED = 1;
export const SCAN_FAILED = 2;

/** Says why `file` could not be read (or read whole) and returns its exit status; rethrows anything else. */
export function scanFailure(file: string, err: unknown): number {
  if (err instanceof ReadError) {
    printError(`${quoteName(file)}: ${err.message}`);
    return err.kind === 'notCapture' ? SCAN_FAILED : SCAN_DAMAGED;
  }
  if (err instanceof TracedumpError) {
    printError(err.message);
    return SCAN_FAILED;
  }
  throw err;
}

/** Reads `file` (throws ReadError for a damaged or foreign file, TracedumpError when tshark fails). */
export async function scanCapture(file: string, o: ScanOptions, hooks: ScanHooks): Promise<void> {
  const emit = (r: ObjectRecord, flow: Flow) => hooks.object?.(r, flow);
  const http = new HttpObjects(emit);
  const dns = new DnsObjects(emit);
  const tls = new TlsObjects(emit, http.decoded);
  const walk = new FlowWalk(file, o.idleSec, o.activeSec, {
    packet: (flow, p, fromOrig) => {
      if (o.objects) {
        dns.packet(flow, p);
        http.packet(flow, fromOrig, p.payloadLen, p.us);
      }
      hooks.packet?.(flow, p, fromOrig);
    },
    ended: (flow) => {
      if (o.objects) {
        http.ended(flow);
        dns.ended(flow);
        tls.ended(flow);
      }
      hooks.flow?.(flow.record(), flow);
    },
    section: (comments) => hooks.section?.(comments),
  });
  try {
    if (o.objects) {
      for await (const packet of tsharkPackets(file)) {
        const at = walk.advanceTo(packet.frame);
        if (!at) continue;
        http.frame(packet.layers, packet.frame, at);
        tls.frame(packet.layers, at);
        if (hooks.stopped?.()) break;
      }
    }
    if (!hooks.stopped?.()) walk.finish();
  } catch (err) {
    // a file damaged part way: what was read before the damage still counts
    if (err instanceof ReadError) walk.endFlows();
    throw err;
  } finally {
    walk.close();
  }
}
