// `-w FILE --flows FLOWS`: the flow records of a capture while it runs, a JSON line each as a
// flow ends and the rest at the end. The packets are the ones written to the capture file, in
// its order, with the process fields the file gets: `tracedump flows FILE` afterwards makes the
// same records. Timeouts run on the wall clock (a flow whose packets stopped still ends).
import { writeAll } from '../output/fd-writer';
import type { PacketOwner } from '../output/format';
import type { SllPacket } from '../output/pcap';
import { PACKET_OUTGOING } from '../output/pcapng';
import { EPB_INBOUND, EPB_OUTBOUND } from '../output/pcapng-spec';
import { type Direction, LINKTYPE_RAW } from '../packet/link';
import { IPPROTO_TCP } from '../packet/protocols';
import type { Flow } from './flow';
import { FlowPacket, FlowPacketReader, type PacketProcess, captureUs } from './flow-packet';
import { FlowTable } from './flow-table';
import { type TopRow, addCounts, flowRow } from './top';

/**
 * The wall clock ends a flow this long after its time is up by packet time: a packet in flight
 * in the ring (timestamped before the deadline) still joins it, as it does in the file.
 */
const WALL_MARGIN_US = 2e6;

export interface LiveFlowsOptions {
  /** Where the records go (--flows); none for --top alone. */
  fd?: number;
  idleSec: number;
  activeSec: number;
  exeOf(pid: number): string | undefined;
}

/**
 * Records another writer put in the file (the native path: capture/native-path.ts), stepped
 * through with next(): the fields of the current one, read by that writer as flow-packet.ts reads
 * a packet (hasFields false: read record() instead).
 */
export interface WrittenRecords {
  next(): boolean;
  /** The verdict it was written under: its owner, and a note this reader keeps with it. */
  readonly slot: { readonly owner: PacketOwner; note: unknown };
  readonly pkttype: number;
  readonly sec: number;
  readonly nsec: number;
  readonly hasFields: boolean;
  readonly seq: number;
  readonly ack: number;
  readonly flags: number;
  readonly window: number;
  readonly ipLen: number;
  readonly payloadLen: number;
  /** check mode: the fields are compared with this reader's own reading; a difference is said here. */
  readonly check: ((message: string) => void) | undefined;
  record(): SllPacket;
}

// A packet written with this packet type: the pcapng flags the file gives it, and so the
// direction the flow reader reads from them.
const flagsOf = (pkttype: number): number => (pkttype === PACKET_OUTGOING ? EPB_OUTBOUND : EPB_INBOUND);
const directionOf = (pkttype: number): Direction => (pkttype === PACKET_OUTGOING ? 'out' : 'in');

/** What a native path's direction last joined (the slot's note). */
interface KnownDirection {
  flow: Flow;
  first: boolean;
}

export class LiveFlows {
  private readonly table: FlowTable;
  private readonly packets = new FlowPacketReader();
  private owner: PacketOwner | undefined;
  private readonly processOfOwner = (): PacketProcess => {
    const o = this.owner as PacketOwner;
    return { pid: o.pid, tid: o.tid, comm: o.comm, exe: this.o.exeOf(o.pid) ?? null };
  };
  private lines: string[] = [];
  /** Records written (for the summary). */
  written = 0;
  error: Error | undefined;

  constructor(private readonly o: LiveFlowsOptions) {
    this.table = new FlowTable({ idleUs: o.idleSec * 1e6, activeUs: o.activeSec * 1e6, features: false, splt: 0 }, ({ flow, record }) => {
      if (o.fd !== undefined) this.lines.push(`${JSON.stringify(record)}\n`);
      this.written++;
      if (this.keepEnded) this.noteEnded(flowRow(flow));
    });
  }

  /** --top: per process, what its ended flows carried. */
  private keepEnded = false;
  readonly ended = new Map<number, TopRow>();

  /** Rows for --top from now on: the open flows, and per process its ended ones. */
  rows(): TopRow[] {
    this.keepEnded = true;
    return [...this.table.openFlows()].map(flowRow);
  }

  /** Packets written that are no flow (not TCP, UDP or ICMP). */
  get otherPackets(): number {
    return this.table.otherPackets;
  }

  private noteEnded(r: TopRow): void {
    const pid = r.pid ?? -1;
    const s = this.ended.get(pid);
    if (s) addCounts(s, r);
    else this.ended.set(pid, { ...r, id: `ended ${pid}` });
  }

  /** A packet just written to the capture file. */
  packet(p: SllPacket, owner: PacketOwner): void {
    this.add(p, owner);
  }

  private add(p: SllPacket, owner: PacketOwner): FlowPacket | undefined {
    this.owner = owner;
    const fp = this.packets.read(LINKTYPE_RAW, p.data, captureUs(p.sec, p.nsec), flagsOf(p.pkttype), this.processOfOwner);
    if (fp) this.lastFlow = this.table.add(fp);
    else this.table.otherPackets++;
    return fp;
  }

  private lastFlow: Flow | undefined;
  /** Native records added to their flows from the native side's fields (the rest were read). */
  fromNativeFields = 0;
  /** A packet of a known flow, from the native path's fields (filled again for each). */
  private readonly known = new FlowPacket();
  /** check mode: reads the native records again (apart from `packets`, whose state it must not touch). */
  private checkReader: FlowPacketReader | undefined;

  /**
   * The records a run of the native path wrote (capture/native-path.ts): each added to its
   * flow from the fields the native side read, without reading the packet, when the flow its
   * direction joined last is still open and takes it as it is (FlowTable.addKnown); else read
   * as packet() reads it. Each direction's note is that flow, and which end of its key sends.
   */
  knownRecords(w: WrittenRecords): void {
    while (w.next()) this.knownRecord(w);
  }

  private knownRecord(w: WrittenRecords): void {
    if (w.check) this.checkFields(w);
    const note = w.slot.note as KnownDirection | undefined;
    if (note && w.hasFields) {
      const p = this.known;
      p.us = captureUs(w.sec, w.nsec);
      p.proto = IPPROTO_TCP;
      p.first = note.first;
      p.tcpFlags = w.flags;
      p.seq = w.seq;
      p.ack = w.ack;
      p.window = w.window;
      p.ipLen = w.ipLen;
      p.payloadLen = w.payloadLen;
      p.direction = directionOf(w.pkttype);
      this.owner = w.slot.owner;
      p.process = this.processOfOwner;
      if (this.table.addKnown(note.flow, p)) {
        this.fromNativeFields++;
        return;
      }
    }
    const fp = this.add(w.record(), w.slot.owner);
    w.slot.note = fp && fp.proto === IPPROTO_TCP ? { flow: this.lastFlow!, first: fp.first } : undefined;
  }

  // check mode: the native side's fields against this reading of the record.
  private checkFields(w: WrittenRecords): void {
    const rec = w.record();
    const fp = (this.checkReader ??= new FlowPacketReader()).read(LINKTYPE_RAW, rec.data, captureUs(rec.sec, rec.nsec), flagsOf(rec.pkttype));
    const at = `a packet captured at ${w.sec}.${String(w.nsec).padStart(9, '0')}`;
    if (!fp !== !w.hasFields) return w.check!(`${at}: the native side ${w.hasFields ? 'gave' : 'gave no'} flow fields, the flow reader ${fp ? 'reads' : 'does not read'} it`);
    if (!fp) return;
    const ours = [fp.us, fp.tcpFlags, fp.seq, fp.ack, fp.window, fp.ipLen, fp.payloadLen, fp.direction];
    const native = [captureUs(w.sec, w.nsec), w.flags, w.seq, w.ack, w.window, w.ipLen, w.payloadLen, directionOf(w.pkttype)];
    if (ours.some((v, i) => v !== native[i])) w.check!(`${at}: the native side's flow fields ${native.join(' ')}, the flow reader's ${ours.join(' ')}`);
  }

  /** Ends the flows whose time is up (call every second or so), and writes what ended. */
  tick(nowMs = Date.now()): void {
    this.table.expire(nowMs * 1000 - WALL_MARGIN_US);
    this.flush();
  }

  /** The capture is over: every flow still open ends now. */
  end(): void {
    this.table.flush();
    this.flush();
  }

  private flush(): void {
    if (this.lines.length === 0 || this.error || this.o.fd === undefined) return;
    const text = this.lines.join('');
    this.lines = [];
    try {
      writeAll(this.o.fd, text);
    } catch (err) {
      this.error = err as Error;
    }
  }
}
