// The native path (native/fast_path.h): the records of packets whose owner the endpoint table
// has already decided, written by native code straight into the capture file's buffer, with
// none of the pipeline's per-packet work. It has no rule of its own: it learns from the
// packets the pipeline writes (a TCP packet, not a SYN, that a flow rule decided makes its
// direction known over the span EndpointTable.knownFlowSpan gives) and forgets a direction
// when the table says its flow changed (everything, when a process's program may have). The
// pipeline asks it only when no packet waits ahead.
//
// TRACEDUMP_NATIVE_PATH=off: every packet takes the pipeline's path. =check: the pipeline
// judges and encodes every record this path wrote once more, and the records that differ are
// counted and said (the tests run that way: the two paths can never disagree unseen).
import { TracedumpError } from '../errors';
import { IPPROTO_TCP, TCP_SYN, type Dissected } from '../packet/dissect';
import type { CaptureOutput } from '../output/rotation';
import { type NativeKnownPath, native } from '../native';
import { type EndpointTable, type Owner, type PacketKeys, flowKeyEnds, reversedFlowKey } from '../tracker/endpoints';
import type { CapturePipeline, KnownPacketWriter, PipelineCounters } from './pipeline';
import { ARPHRD_LOOPBACK, PACKET_OUTGOING, type PacketRecord, captureMs, hasRecord, recordAt, recordEnd } from './records';

const familyOf = (bytes: string): number => (bytes.length === 4 ? 4 : 6);

export type NativePathMode = 'on' | 'off' | 'check';

export function nativePathMode(value = process.env.TRACEDUMP_NATIVE_PATH): NativePathMode {
  if (value === undefined || value === '' || value === 'on') return 'on';
  if (value === 'off' || value === 'check') return value;
  throw new TracedumpError(`TRACEDUMP_NATIVE_PATH=${value} is not a mode of the native path`, {
    hint: 'use on (the default), off, or check',
  });
}

const MAX_INTERFACES = 64;
const STOP_FULL = 2;
const STOP_UNITS = 4;
/** Records a run may write into a file that holds records back one by one (their ends and times), or tell of. */
const UNITS = 4096;
/** check mode: the differences said on stderr (all are counted). */
const MISMATCHES_SAID = 5;

export interface NativePathOptions {
  mode: 'on' | 'check';
  /** Records it may write now (-c less what is written, less the last one: the pipeline's sink asks for the stop). */
  remaining: () => number;
  /** A TLS handshake record takes the pipeline's path (the file waits for its keys: tls/handshakes.ts). */
  tlsWatch: boolean;
  /** check mode: the pipeline whose verdicts the records must match. */
  pipeline: () => CapturePipeline;
  /** check mode: a record differs. */
  onMismatch: (message: string) => void;
  /**
   * Told of the records a run wrote, in the file's order (live flows account for them): once
   * per run, the listener stepping through them (its loop is one function the JIT compiles,
   * not this path's with the listener's inlined).
   */
  onWritten?: (w: WrittenRecords) => void;
}

/** A verdict the path remembers (a direction over a span): its owner, and a note its listener may keep. */
export interface KnownSlot {
  readonly owner: Owner;
  note: unknown;
}

/** Numbers per record in a run's marks (native/fast_path.h). */
const MARK_SIZE = 10;
const NO_FIELDS = 0xffffffff;

/**
 * The records a run wrote, as onWritten is told of them: next() moves to the next one and
 * fills these fields (one object for all). The TCP fields come from the native side's walk of
 * the packet (compact: the record need not be read); without them (hasFields false) read record().
 */
export class WrittenRecords {
  batch: Buffer = Buffer.alloc(0);
  private count = 0;
  private i = 0;
  /** Where the record starts in the batch. */
  at = 0;
  slot!: KnownSlot;
  /** The packet type written (a loopback copy the program sent: PACKET_OUTGOING). */
  pkttype = 0;
  sec = 0;
  nsec = 0;
  hasFields = false;
  seq = 0;
  ack = 0;
  flags = 0;
  window = 0;
  /** The IP length its header says (IPv6 without one: the captured length), and the TCP payload's length from it. */
  ipLen = 0;
  payloadLen = 0;
  /** check mode: the listener checks the fields against its own reading of record(), and says a difference here. */
  check: ((message: string) => void) | undefined;

  constructor(
    private readonly marks: Uint32Array,
    private readonly slots: Map<number, KnownSlot>,
  ) {}

  /** Starts over with the `count` records of a run over batch. */
  reset(batch: Buffer, count: number): void {
    this.batch = batch;
    this.count = count;
    this.i = 0;
  }

  /** Moves to the next record: false when there is none. */
  next(): boolean {
    if (this.i === this.count) return false;
    const marks = this.marks;
    const m = this.i++ * MARK_SIZE;
    this.at = marks[m];
    this.slot = this.slots.get(marks[m + 1])!;
    this.pkttype = marks[m + 2];
    this.sec = marks[m + 3];
    this.nsec = marks[m + 4];
    this.seq = marks[m + 5];
    this.ack = marks[m + 6];
    this.flags = marks[m + 7] & 0xff;
    this.window = marks[m + 7] >>> 8;
    this.ipLen = marks[m + 8];
    this.payloadLen = marks[m + 9];
    this.hasFields = this.ipLen !== NO_FIELDS;
    return true;
  }

  /** The record itself (its data a view into the batch, valid during the call). */
  record(): PacketRecord {
    const rec = recordAt(this.batch, this.at)!;
    rec.pkttype = this.pkttype;
    return rec;
  }
}

export class NativeRecordWriter implements KnownPacketWriter {
  private path: NativeKnownPath | undefined;
  private readonly limits = new Float64Array(6);
  private readonly result = new Float64Array(9);
  private readonly units = new Float64Array(2 * UNITS);
  private readonly perIfid = new Uint32Array(MAX_INTERFACES);
  /** onWritten: MARK_SIZE numbers per record written (native/fast_path.h). */
  private readonly marks: Uint32Array | undefined;
  private readonly writtenRecords: WrittenRecords | undefined;
  private programVersion = -1;
  private generation = -1;
  /** Directions remembered (their keys.ab), with the span of capture times their verdict holds for and its slot. */
  private readonly learned = new Map<string, [number, number, number]>();
  /** onWritten: the slots remembered. */
  private readonly slots = new Map<number, KnownSlot>();
  private nextSlot = 0;
  /** Interfaces given to the native side for the current file. */
  private readonly interfaces = new Set<number>();
  private checkBuf = Buffer.alloc(0);
  /** Packets this path wrote. */
  written = 0;
  /** check mode: records whose owner or bytes differ from the pipeline's. */
  mismatches = 0;

  constructor(
    private readonly table: EndpointTable,
    private readonly output: CaptureOutput,
    private readonly o: NativePathOptions,
  ) {
    table.watchFlows();
    if (o.onWritten) {
      this.marks = new Uint32Array(MARK_SIZE * UNITS);
      this.writtenRecords = new WrittenRecords(this.marks, this.slots);
      if (o.mode === 'check') this.writtenRecords.check = (message) => this.mismatch(message);
    }
  }

  run(batch: Buffer, at: number, endMs: number, counters: PipelineCounters): number {
    this.sync();
    const path = this.path;
    if (!path || this.learned.size === 0) return at;
    const target = this.output.knownTarget();
    if (!target) return at;
    const { limits, result, perIfid } = this;
    const units = target.file.holdsBack ? this.units : undefined;
    let need = 0; // bytes the next record needs: room is made as write() would make it
    for (;;) {
      const remaining = this.o.remaining();
      if (remaining <= 0) return at;
      const room = target.file.reserve(need);
      if (!room) return at;
      // -C: the pipeline's write() moves to a new file once committed + buffered bytes pass the limit
      const committed = target.file.pendingBytes - room.at;
      if (committed + room.at > target.sizeLimit) return at;
      limits[0] = endMs;
      limits[1] = remaining;
      limits[2] = target.sizeLimit - committed;
      limits[3] = target.periodSec;
      limits[4] = target.period;
      limits[5] = this.o.tlsWatch ? 1 : 0;
      perIfid.fill(0);
      path.run(batch, at, room.buf, room.at, limits, result, perIfid, units, this.marks);
      const records = result[2];
      counters.seen += result[4];
      counters.duplicates += result[5];
      if (records > 0) {
        if (this.o.mode === 'check') this.check(batch, at, result[0], room.buf, room.at, result[1]);
        target.file.commitRecords(result[1], records, result[6], units);
        for (let i = 0; i < MAX_INTERFACES; i++) if (perIfid[i]) target.file.known.countRecords(i, perIfid[i]);
        counters.written += records;
        counters.writtenBytes += result[3];
        this.written += records;
        if (this.writtenRecords) {
          this.writtenRecords.reset(batch, records);
          this.o.onWritten!(this.writtenRecords);
        }
      }
      at = result[0];
      const stop = result[7];
      if (stop === STOP_UNITS) need = 0;
      else if (stop === STOP_FULL && (records > 0 || need === 0)) need = result[8];
      else return at; // (full again once room was made for it: the pipeline writes it)
    }
  }

  learn(rec: PacketRecord, d: Dissected | undefined, keys: PacketKeys | undefined, owner: Owner): void {
    if (!d || !keys || d.proto !== IPPROTO_TCP || d.fragment || d.icmpError || d.tcpFlags & TCP_SYN || owner.shared !== undefined) return;
    this.sync();
    const target = this.output.knownTarget();
    if (!target) return;
    const format = target.file.known;
    const path = (this.path ??= new (native().NativePath)(format.name));
    if (!this.interfaces.has(rec.ifindex)) {
      const ifid = format.interfaceId(rec.ifindex);
      if (ifid === undefined || ifid >= MAX_INTERFACES) return;
      path.setInterface(rec.ifindex, ifid);
      this.interfaces.add(rec.ifindex);
    }
    const tsMs = captureMs(rec);
    // (a packet of a known direction outside its span: another socket's time on the 4-tuple)
    const known = this.learned.get(keys.ab);
    if (known && tsMs >= known[0] && tsMs < known[1]) return;
    const span = this.table.knownFlowSpan(keys, tsMs, owner);
    if (!span) return;
    // (the pipeline's directionOf, for a TCP packet)
    const sent = d.sport !== 0 && this.table.sentFrom(owner.inode, d.proto, d.sport);
    const slot = this.nextSlot++;
    path.remember(d.family, d.src, d.sport, d.dst, d.dport, span[0], span[1], format.ownerOptions(owner), sent, slot);
    if (known) this.slots.delete(known[2]);
    if (this.marks) this.slots.set(slot, { owner, note: undefined });
    this.learned.set(keys.ab, [span[0], span[1], slot]);
  }

  // Forgets what the table or the file no longer vouches for.
  private sync(): void {
    const changes = this.table.takeFlowChanges();
    if (changes.all || this.table.programVersion !== this.programVersion) {
      this.programVersion = this.table.programVersion;
      if (this.learned.size) {
        this.path?.forgetAll();
        this.learned.clear();
        this.slots.clear();
      }
    } else if (this.learned.size)
      for (const k of changes.keys) {
        // both directions of the flow
        const [a, b] = flowKeyEnds(k);
        if (this.unlearn(k)) this.path!.forget(familyOf(a.bytes), a.bytes, a.port, b.bytes, b.port);
        if (this.unlearn(reversedFlowKey(k))) this.path!.forget(familyOf(b.bytes), b.bytes, b.port, a.bytes, a.port);
      }
    if (this.output.generation !== this.generation) {
      this.generation = this.output.generation;
      this.path?.forgetInterfaces();
      this.interfaces.clear();
    }
  }

  private unlearn(key: string): boolean {
    const known = this.learned.get(key);
    if (!known) return false;
    this.learned.delete(key);
    this.slots.delete(known[2]);
    return true;
  }

  // check mode: the records of batch[from, to) as the pipeline would write them, against the
  // bytes written in out[outFrom, outTo).
  private check(batch: Buffer, from: number, to: number, out: Buffer, outFrom: number, outTo: number): void {
    const pipeline = this.o.pipeline();
    const format = this.output.knownTarget()!.file.known;
    let o = outFrom;
    for (let at = from; hasRecord(batch, at) && at < to; at = recordEnd(batch, at)) {
      const rec = recordAt(batch, at);
      if (!rec || (rec.pkttype === PACKET_OUTGOING && rec.hatype === ARPHRD_LOOPBACK)) continue;
      const owner = pipeline.ownerNow(rec);
      if (!owner) {
        this.mismatch(`a packet captured at ${rec.sec}.${String(rec.nsec).padStart(9, '0')} is nobody's by the table`);
        return;
      }
      const need = rec.caplen + 4096;
      if (this.checkBuf.length < need) this.checkBuf = Buffer.alloc(need * 2);
      const end = format.encode(this.checkBuf, 0, rec, owner);
      if (o + end > outTo || this.checkBuf.compare(out, o, o + end, 0, end) !== 0) {
        this.mismatch(`the record of a packet captured at ${rec.sec}.${String(rec.nsec).padStart(9, '0')} (pid ${owner.pid}) differs`);
        return;
      }
      o += end;
    }
    if (o !== outTo) this.mismatch(`${outTo - o} bytes more than the records of its packets`);
  }

  private mismatch(message: string): void {
    this.mismatches++;
    if (this.mismatches <= MISMATCHES_SAID) this.o.onMismatch(`native path: ${message}`);
  }
}
