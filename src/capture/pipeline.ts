// From captured batches to written packets: each packet is judged by the endpoint table;
// packets that cannot be judged yet (a call in flight, an event not delivered yet) wait, and
// the output stays in capture order unless a packet waits longer than maxHoldMs.
import { type Dissected, dissect } from '../packet/dissect';
import { ARPHRD_LOOPBACK, PACKET_OUTGOING, type PacketRecord, captureMs, copyRecord, hasRecord, recordAt, recordEnd } from './records';
import { type EndpointTable, type LocalSide, type Owner, PacketKeyCache, type PacketKeys, type Verdict } from '../tracker/endpoints';

export interface PipelineOptions {
  /**
   * How long a packet nobody claims waits for a late tracer event: it is given up once the
   * events are known to be complete up to this long after the packet arrived (see
   * eventsCurrent), not after this much wall time: a controller busy with a burst of packets
   * applies no events meanwhile, and must not give up on packets for that.
   */
  eventLagMs: number;
  /** After this long a waiting packet no longer holds back the packets behind it. */
  maxHoldMs: number;
}

export const DEFAULT_PIPELINE: PipelineOptions = { eventLagMs: 300, maxHoldMs: 2_000 };

export interface PipelineCounters {
  /** Packets the kernel filter passed. */
  seen: number;
  written: number;
  writtenBytes: number;
  /** Passed by the kernel filter but not the program's (pending destinations, grace). */
  rejected: number;
  /** Loopback copies dropped (each packet is written once). */
  duplicates: number;
  /**
   * Left out undecided at the end: a call in flight or a socket's liveness would have told
   * whose they were (counted apart from `rejected`: these may have been the program's).
   */
  undecided: number;
}

/**
 * Writes a packet of the program (d: its dissection, when it has one); returns false when it
 * was not written (e.g. -c reached).
 */
export type PacketSink = (p: PacketRecord, owner: Owner, d: Dissected | undefined) => boolean | void;

/**
 * The native path (capture/native-path.ts): writes the packets whose owner the table has
 * already decided, without this pipeline's per-packet work. It learns those owners from the
 * packets written here, and is asked only when no packet waits ahead (the file stays in
 * capture order).
 */
export interface KnownPacketWriter {
  /** Writes the records of the batch from `at` on that it can; returns where it stopped. */
  run(batch: Buffer, at: number, endMs: number, counters: PipelineCounters): number;
  /** A packet was written here for `owner`: the rest of its direction may be known now. */
  learn(rec: PacketRecord, d: Dissected | undefined, keys: PacketKeys | undefined, owner: Owner): void;
}

// Every field is set when a packet is queued (one object shape: the hot loops stay optimised).
interface Waiting {
  rec: PacketRecord;
  d: Dissected | undefined;
  tsMs: number;
  arrivedMs: number;
  decided: boolean;
  /** The last verdict while undecided, and the version it was judged at (see judgedVersion). */
  verdict: Verdict;
  judgedAt: number;
  /** Its keys into the endpoint table, made at its first judging. */
  keys: PacketKeys | undefined;
  emitted: boolean;
  owner: Owner | undefined; // decided: the program's packet (else rejected)
}

const FRAGMENT_MEMORY_MS = 30_000;

export class CapturePipeline {
  readonly counters: PipelineCounters = { seen: 0, written: 0, writtenBytes: 0, rejected: 0, duplicates: 0, undecided: 0 };
  private queue: Waiting[] = [];
  private late: Waiting[] = [];
  // first fragments kept: "family/proto/src/dst/id" -> owner and when
  private readonly fragments = new Map<string, { owner: Owner; at: number }>();
  private fragmentsAdded = 0;
  private readonly keyCache = new PacketKeyCache();
  // Every tracer event emitted before this time (ms) has been applied to the table; unset:
  // take the clock's word (no tracer behind the table, as in tests).
  private eventsAt: number | undefined;
  // Packets captured after this (realtime ms) are nobody's: tracing ended there (a detach).
  private endMs = Infinity;

  constructor(
    private readonly table: EndpointTable,
    private readonly sink: PacketSink,
    private readonly options: PipelineOptions = DEFAULT_PIPELINE,
    private readonly now: () => number = Date.now,
    private readonly known?: KnownPacketWriter,
  ) {}

  /** Tracing ended at `ms` (a detach): later packets are not judged, nor written. */
  endAt(ms: number): void {
    this.endMs = ms;
  }

  /** Every tracer event emitted before `ms` has been applied to the table. */
  eventsCurrent(ms: number): void {
    this.eventsAt = Math.max(this.eventsAt ?? ms, ms);
  }

  get waiting(): number {
    return this.queue.length + this.late.length;
  }

  /**
   * Judges and writes a batch. The batch is only valid during this call (its memory is
   * reused): packets still waiting afterwards keep copies. `whileValid` runs before those
   * copies are made (a sweep there decides UDP packets waiting for one, which then need none).
   */
  addBatch(batch: Buffer, whileValid?: () => void): void {
    const first = this.queue.length;
    const arrivedMs = this.now();
    const known = this.known;
    let at = 0;
    while (hasRecord(batch, at)) {
      if (known && this.queue.length === 0) {
        at = known.run(batch, at, this.endMs, this.counters);
        if (!hasRecord(batch, at)) break;
      }
      const rec = recordAt(batch, at);
      at = recordEnd(batch, at);
      if (!rec) continue;
      this.counters.seen++;
      // the kernel filter drops these already; this guards the classic fallback too
      if (rec.pkttype === PACKET_OUTGOING && rec.hatype === ARPHRD_LOOPBACK) {
        this.counters.duplicates++;
        continue;
      }
      const tsMs = captureMs(rec);
      if (tsMs > this.endMs) {
        this.counters.rejected++;
        continue;
      }
      const d = dissect(rec.data);
      let verdict: Verdict;
      let judgedAt = -1;
      let keys: PacketKeys | undefined;
      if (this.queue.length === 0) {
        // Nothing waits ahead of it: a packet the table decides now is written now (the
        // common case; no queue entry). Else it waits with this verdict, as drain would.
        keys = d && this.keyCache.keysOf(d);
        verdict = this.judge(rec, d, tsMs, keys);
        judgedAt = this.judgedVersion();
        if (typeof verdict === 'object') {
          this.write(rec, verdict, d, keys);
          continue;
        }
      }
      this.queue.push({
        rec,
        d,
        tsMs,
        arrivedMs,
        decided: false,
        verdict,
        judgedAt,
        keys,
        emitted: false,
        owner: undefined,
      });
    }
    const added = this.queue.slice(first);
    this.drain(false);
    whileValid?.();
    // still queued (or moved to late): own the bytes before the batch memory is reused
    for (const w of added) if (!w.emitted) w.rec = copyRecord(w.rec);
  }

  /**
   * The owner this pipeline gives a packet now, when the table decides it at once, with the
   * direction it is written with (the native path's check: capture/native-path.ts).
   */
  ownerNow(rec: PacketRecord): Owner | undefined {
    const d = dissect(rec.data);
    const tsMs = captureMs(rec);
    const v = d && tsMs <= this.endMs ? this.judge(rec, d, tsMs, this.keyCache.keysOf(d)) : undefined;
    if (typeof v !== 'object') return undefined;
    rec.pkttype = this.directionOf(rec, v, d);
    return v;
  }

  /** Re-judges waiting packets (after new events, or on a timer). final: nothing will change any more. */
  drain(final: boolean): void {
    const now = this.now();
    // Decide whatever can be decided anywhere in the queue; a first fragment found behind an
    // undecided packet settles the later fragments ahead of it (fragments arrive reordered).
    for (let pass = 0; pass < 2; pass++) {
      this.firstFragmentSeen = false;
      for (const w of this.queue) if (!w.decided) this.decide(w, now, final && pass === 1);
      if (!this.firstFragmentSeen && !final) break;
    }
    // Write in capture order; an undecided packet holds the rest back for up to maxHoldMs.
    let i = 0;
    for (; i < this.queue.length; i++) {
      const w = this.queue[i];
      if (w.decided) {
        this.emit(w);
        continue;
      }
      if (now - w.arrivedMs < this.options.maxHoldMs) break;
      this.late.push(w); // written out of order once decided
    }
    this.queue = i === this.queue.length ? [] : this.queue.slice(i);
    if (this.late.length)
      this.late = this.late.filter((w) => {
        if (!this.decide(w, now, final)) return true;
        this.emit(w);
        return false;
      });
  }

  private firstFragmentSeen = false;

  // Decides a packet if it can; returns whether it is decided.
  private decide(w: Waiting, now: number, final: boolean): boolean {
    if (w.decided) return true;
    if (w.tsMs > this.endMs) return (w.decided = true);
    // Waiting packets are looked at on every drain: judged again only when a verdict may
    // have changed, so that a long queue (a controller behind a burst) costs no more each time.
    if (w.judgedAt !== this.judgedVersion()) {
      w.verdict = this.judge(w.rec, w.d, w.tsMs, (w.keys ??= w.d && this.keyCache.keysOf(w.d)));
      w.judgedAt = this.judgedVersion();
    }
    const verdict = w.verdict;
    if (verdict === 'pending' || verdict === 'recheck') {
      if (!final) return false;
      this.counters.undecided++;
    }
    if (verdict === undefined && !final && (this.eventsAt ?? now) - w.arrivedMs < this.options.eventLagMs) return false;
    w.decided = true;
    if (typeof verdict === 'object') w.owner = verdict;
    return true;
  }

  private emit(w: Waiting): void {
    w.emitted = true;
    if (w.owner) this.write(w.rec, w.owner, w.d, w.keys);
    else this.counters.rejected++;
  }

  private write(rec: PacketRecord, owner: Owner, d: Dissected | undefined, keys: PacketKeys | undefined): void {
    rec.pkttype = this.directionOf(rec, owner, d);
    if (this.sink(rec, owner, d) === false) return;
    this.counters.written++;
    this.counters.writtenBytes += rec.len;
    this.known?.learn(rec, d, keys, owner);
  }

  // Of a loopback packet the kernel keeps the received copy: from the program's side it went
  // out when its socket sent it (an ICMP error: when it quotes a packet from elsewhere).
  private directionOf(rec: PacketRecord, owner: Owner, d: Dissected | undefined): number {
    if (rec.hatype === ARPHRD_LOOPBACK && d && d.sport !== 0 && this.table.sentFrom(owner.inode, d.proto, d.sport) !== d.icmpError)
      return PACKET_OUTGOING;
    return rec.pkttype;
  }

  private judgedVersion(): number {
    return this.table.version + this.fragmentsAdded;
  }

  private judge(rec: PacketRecord, d: Dissected | undefined, tsMs: number, keys: PacketKeys | undefined): Verdict {
    if (!d) return undefined;
    if (d.fragment && !d.fragment.first) {
      const f = this.fragments.get(fragmentKey(d));
      return f && tsMs - f.at < FRAGMENT_MEMORY_MS ? f.owner : undefined;
    }
    const v = this.table.judge(d, tsMs, localSide(rec, d), keys);
    if (d.fragment && typeof v === 'object') {
      this.fragments.set(fragmentKey(d), { owner: v, at: tsMs });
      this.fragmentsAdded++;
      this.firstFragmentSeen = true;
    }
    return v;
  }

  /** Forgets fragment ids older than the fragment memory. */
  expireFragments(nowMs: number): void {
    for (const [k, f] of this.fragments) if (nowMs - f.at > FRAGMENT_MEMORY_MS) this.fragments.delete(k);
  }
}

// A packet sent from here has its local end in the source, one received in the destination;
// an ICMP error quotes the packet it answers, so the other way round; loopback is both.
function localSide(rec: PacketRecord, d: Dissected): LocalSide {
  if (rec.hatype === ARPHRD_LOOPBACK) return 'both';
  const sent = rec.pkttype === PACKET_OUTGOING;
  return sent !== d.icmpError ? 'src' : 'dst';
}

function fragmentKey(d: Dissected): string {
  return `${d.family}/${d.proto}/${d.src}/${d.dst}/${d.fragment!.id}`;
}
