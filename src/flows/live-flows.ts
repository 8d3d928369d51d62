// `-w FILE --flows FLOWS`: the flow records of a capture while it runs, a JSON line each as a
// flow ends and the rest at the end. The packets are the ones written to the capture file, in
// its order, with the process fields the file gets: `tracedump flows FILE` afterwards makes the
// same records. Timeouts run on the wall clock (a flow whose packets stopped still ends).
import { writeAll } from '../output/fd-writer';
import type { PacketOwner } from '../output/format';
import type { SllPacket } from '../output/pcap';
import { PACKET_OUTGOING } from '../output/pcapng';
import { EPB_INBOUND, EPB_OUTBOUND } from '../output/pcapng-spec';
import { LINKTYPE_RAW } from '../packet/link';
import { FlowPacketReader, type PacketProcess } from './flow-packet';
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
    const us = p.sec * 1e6 + Math.floor(p.nsec / 1000);
    const flags = p.pkttype === PACKET_OUTGOING ? EPB_OUTBOUND : EPB_INBOUND;
    this.owner = owner;
    const fp = this.packets.read(LINKTYPE_RAW, p.data, us, flags, this.processOfOwner);
    if (fp) this.table.add(fp);
    else this.table.otherPackets++;
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
