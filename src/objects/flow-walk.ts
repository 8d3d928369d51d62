// The flows of a capture file read alongside tshark's output, frame by frame: tshark says what
// a frame carries (an HTTP message, TLS records), this says whose flow and process it belongs
// to and which way it went, with the same flow table as `tracedump flows` (so an object's uid
// is its flow record's). Memory is the flows open at the frame reached, not the file.
import type { Flow } from '../flows/flow';
import { type FlowPacket, FlowPacketReader, NO_PROCESS } from '../flows/flow-packet';
import { FlowTable } from '../flows/flow-table';
import { processInfo } from '../read/print';
import { type CaptureRecord, CaptureReader } from '../read/reader';

/** A frame as the walk saw it. */
export interface WalkedFrame {
  flow: Flow;
  /** Sent by the flow's originator (as the flow's roles are after this frame). */
  fromOrig: boolean;
  us: number;
}

export interface FlowWalkHooks {
  /** Every packet of a flow, as it is read (DNS messages, first response bytes). */
  packet(flow: Flow, p: FlowPacket, fromOrig: boolean): void;
  /** A flow ended (by its state, a timeout, or the end of the input). */
  ended(flow: Flow): void;
  /** A section began (pcapng), with its comments: before any packet of it. */
  section?(comments: string[]): void;
}

export class FlowWalk {
  private readonly reader: CaptureReader;
  private readonly packets = new FlowPacketReader();
  private readonly table: FlowTable;
  private frame = 0;
  private current: CaptureRecord | undefined;
  private readonly processOfCurrent = () => (this.current ? processInfo(this.current) : NO_PROCESS);
  private last: WalkedFrame | undefined;

  constructor(
    file: string,
    idleSec: number,
    activeSec: number,
    private readonly hooks: FlowWalkHooks,
  ) {
    this.reader = CaptureReader.open(file, undefined, { reuseRecords: true });
    this.table = new FlowTable({ idleUs: idleSec * 1e6, activeUs: activeSec * 1e6, features: false, splt: 0 }, ({ flow }) => hooks.ended(flow));
  }

  /** Reads up to frame `n` (1-based) and says whose flow it was (undefined: no flow, e.g. not IP). */
  advanceTo(n: number): WalkedFrame | undefined {
    while (this.frame < n) {
      const rec = this.reader.next();
      if (!rec) return undefined;
      this.frame++;
      this.last = this.add(rec);
    }
    return this.frame === n ? this.last : undefined;
  }

  /** Reads the rest of the file and ends every flow. */
  finish(): void {
    for (let rec = this.reader.next(); rec; rec = this.reader.next()) {
      this.frame++;
      this.add(rec);
    }
    this.endFlows();
  }

  /** Ends every open flow now (the end of the input, or the damage that ended it). */
  endFlows(): void {
    this.table.flush();
  }

  close(): void {
    this.reader.close();
  }

  private sections = 0;

  private add(rec: CaptureRecord): WalkedFrame | undefined {
    if (this.reader.sections !== this.sections) {
      this.sections = this.reader.sections;
      this.hooks.section?.(this.reader.sectionComments);
    }
    this.current = rec;
    const p = this.packets.readRecord(rec, this.processOfCurrent);
    if (!p) return undefined;
    const flow = this.table.add(p);
    const fromOrig = flow.fromOrig(p);
    this.hooks.packet(flow, p, fromOrig);
    return { flow, fromOrig, us: p.us };
  }
}
