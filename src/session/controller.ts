// The controller loop of one run: the tracer's events applied to the endpoint table, captured
// batches judged by the pipeline, sweeps, the classic filter's refresh, writing out what is due,
// and the gaps said as they are seen. session.ts orders the run around it.
import type { LiveCapture } from '../capture/live-capture';
import { CapturePipeline, DEFAULT_PIPELINE } from '../capture/pipeline';
import { type NativePathMode, NativeRecordWriter } from '../capture/native-path';
import type { TraceEvent, WarningEvent } from '../native';
import { native } from '../native';
import { printError, writeAll } from '../output/fd-writer';
import type { CaptureOutput } from '../output/rotation';
import { GapReport } from '../report/gaps';
import type { StatusLine } from '../report/status-line';
import type { StopReason } from '../report/summary';
import type { StopStatsRecorder } from '../stop-stats';
import type { PendingHandshakes } from '../tls/handshakes';
import type { LiveFlows } from '../flows/live-flows';
import type { Traced } from '../trace/traced';
import { DEFAULT_GRACE, EndpointTable, type SharedPort } from '../tracker/endpoints';
import { ProgramTable } from '../tracker/programs';
import { loopbackSendTailMs } from '../tracker/send-windows';
import { holdersOf } from '../tracker/socket-holders';
import { Sweeper, finishingFlows } from '../tracker/sweeper';
import { IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE } from '../packet/protocols';
import { readProcFile } from '../proc-file';

// Classic filter mode: the least time between two rebuilds of the exact program (below the
// session's tick, so the tick after a coalesced change always rebuilds).
const CLASSIC_REFRESH_MS = 80;
const FLUSH_MS = 1000;
// With TLS keys, packets wait this long before they are written: the key a program logs just
// after a packet arrived (TLS 1.3 handshake keys, after the ServerHello) still goes ahead of it;
// and longer (tls/handshakes.ts) while a TLS handshake seen in the traffic has no key yet.
const KEY_HOLD_MS = 250;

export interface ControllerOptions {
  /** The capture file (none: --events only). */
  file: CaptureOutput | undefined;
  /** -c: stop after this many packets are written. */
  count: number | undefined;
  /** -U: write out after every batch. */
  flushEveryBatch: boolean;
  /** TLS handshakes waiting for their keys: the file waits with them (pcapng with keys). */
  handshakes: PendingHandshakes | undefined;
  /** --flows: the flow records of the packets written. */
  flows?: LiveFlows;
  /** --events: their format, and the fd they go to. */
  format: ((e: TraceEvent) => string | undefined) | undefined;
  eventsFd: number;
  status: StatusLine | undefined;
  stopStats: StopStatsRecorder | undefined;
  /** The program started (its exec, or the attach): the output files take their places. */
  onStarted: () => void;
  /** The native path for packets already decided (capture/native-path.ts). */
  nativePath: NativePathMode;
  /** A stop the capture asks for (-c reached, the file cannot be written). */
  requestStop: (why: StopReason) => void;
  /** Whether a stop was asked for (a launched command's end then came after it). */
  stopRequested: () => boolean;
}

export class Controller {
  readonly table = new EndpointTable(DEFAULT_GRACE, true, loopbackSendTailMs((name) => readProcFile(`sys/${name}`)));
  readonly programs = new ProgramTable();
  readonly gaps = new GapReport();
  readonly pipeline: CapturePipeline;
  /** The native path, when it runs. */
  readonly nativePath: NativeRecordWriter | undefined;
  /** Processes of the command still alive: after --kill-after they all get SIGKILL. */
  readonly alive = new Set<number>();
  processesSeen = 0;
  /** The launched command ended after a stop tracedump asked for (-c, --duration...). */
  endedByStop = false;

  private live: LiveCapture | undefined;
  private sweeper: Sweeper | undefined;
  private traced: Traced | undefined;
  private rootPid = -1;
  private started = false;
  // The sweeper takes the events between a dump and its use: applied only, nothing judged then
  // (a packet judged there would see a socket the dump found gone as still alive).
  private applyOnly = false;
  private classicBuilt = -1;
  private classicTriedAt = -Infinity;
  private lastFlush = Date.now();

  constructor(private readonly o: ControllerOptions) {
    const { file, count, handshakes } = o;
    const mode = o.nativePath;
    this.nativePath =
      file && mode !== 'off'
        ? new NativeRecordWriter(this.table, file, {
            mode,
            remaining: () => (count === undefined ? Infinity : count - this.pipeline.counters.written - 1),
            tlsWatch: !!handshakes,
            pipeline: () => this.pipeline,
            onMismatch: (message) => printError(message),
            // (--flows, --top: the records it wrote are accounted for as the pipeline's are)
            onWritten: o.flows && ((w) => o.flows!.knownRecords(w)),
          })
        : undefined;
    this.pipeline = new CapturePipeline(
      this.table,
      (rec, owner, d) => {
        if (!file) return false;
        if (count !== undefined && this.pipeline.counters.written >= count) return false;
        handshakes?.notePacket(rec, d);
        if (!file.write(rec, owner)) return false; // past a -G -W limit
        o.flows?.packet(rec, owner);
        if (count !== undefined && this.pipeline.counters.written + 1 >= count) o.requestStop({ kind: 'count', packets: count });
        return true;
      },
      DEFAULT_PIPELINE,
      Date.now,
      this.nativePath,
    );
  }

  /** The live capture, once it runs: its rules are swept. */
  attachLive(live: LiveCapture): void {
    this.live = live;
    this.sweeper = new Sweeper(
      this.table,
      live.rules,
      printError,
      (protocols) => native().liveSockets(protocols),
      () => this.applyEvents(),
      (shared) => this.onShared(shared),
    );
  }

  /** What is traced, once it is; rootPid: the launched command (-1 when attached). */
  attachTraced(traced: Traced, rootPid: number): void {
    this.traced = traced;
    this.rootPid = rootPid;
  }

  /** A batch of captured packets. */
  onBatch(batch: Buffer): void {
    // Judge against the newest table: the tracer's queued events first. A batch's packets
    // whose events are still queued would otherwise all wait, and each later drain would
    // walk them again (a controller behind a burst falls further behind).
    this.traced?.pollEvents();
    this.pipeline.addBatch(batch, () => {
      if (this.table.sweepWanted) this.settle(Date.now());
    });
    if (this.o.flushEveryBatch) this.writeOut(Date.now());
  }

  /** A batch of the tracer's events. */
  onEvents(batch: TraceEvent[]): void {
    // the tracer's queue was emptied for this batch just now
    const current = Date.now();
    for (const e of batch) {
      if (!this.started && (e.kind === 'exec' || e.kind === 'attach')) this.markStarted();
      this.table.apply(e);
      this.programs.apply(e);
      if ((e.kind === 'spawn' && !e.thread) || e.kind === 'attach') {
        this.alive.add(e.kind === 'spawn' ? e.child : e.pid);
        this.processesSeen++;
      }
      if (e.kind === 'exec' && this.processesSeen === 0) this.processesSeen = 1; // the launched command itself
      if (e.kind === 'exit' && e.tid === e.pid && e.pid === this.rootPid && this.o.stopRequested()) this.endedByStop = true;
      // After a detach, the program's new sockets are no longer seen: nothing later is
      // written, so the file ends cleanly instead of with some of its packets and not others.
      if (e.kind === 'done' && e.detachedAt !== undefined) this.pipeline.endAt(e.detachedAt);
      if (e.kind === 'exit' && e.tid === e.pid) {
        this.alive.delete(e.pid);
        this.sweeper?.processExited();
      }
    }
    // After 'done' no event can come: a packet nobody claims now is nobody's, and no call is
    // in flight whose destination the kernel filter must keep passing.
    const done = batch.some((e) => e.kind === 'done');
    if (done) this.live?.rules.expirePending(true);
    this.pipeline.eventsCurrent(done ? Infinity : current);
    if (this.live && !this.applyOnly) this.settle(Date.now());
    const { format } = this.o;
    for (const e of batch) {
      if (e.kind === 'warning' && !format) printError(`pid ${e.pid}: ${e.message}`);
      const message = e.kind === 'socket' ? this.gaps.note(e) : undefined;
      if (message && !format) printError(message);
    }
    this.writeEvents(batch);
  }

  /** The timer's work: events complete up to now, judging, sweeping, writing what is due. */
  tick(): void {
    const now = Date.now();
    // Packets waiting for an event are given up only once the events are known complete:
    // take what the tracer has queued (the events callback may not have run yet).
    this.traced?.pollEvents();
    this.pipeline.eventsCurrent(now);
    this.settle(now);
    this.pipeline.expireFragments(now);
    this.live?.rules.expirePending();
    const { file, handshakes } = this.o;
    if (file && (handshakes || now - this.lastFlush >= FLUSH_MS)) {
      this.lastFlush = now;
      this.writeOut(now);
    }
    if (file?.error) this.o.requestStop({ kind: 'write-failed', message: file.error.message });
  }

  /**
   * Once every process of the program is gone: whether it can still exchange a packet (one of
   * its sockets is held by another process, or a TCP connection of its own is finishing in a
   * state other than TIME_WAIT). A sock_diag dump each call, of the protocols the program has
   * sockets of (as the sweeper's: a TCP dump walks the kernel's whole connection hash).
   */
  programStillExchanging(): boolean {
    const protocols = [IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE].filter((p) => this.table.holds(p));
    if (protocols.length === 0) return false;
    const snap = native().liveSockets(protocols);
    const inodes = new Set<number>();
    for (let i = 0; i < snap.sockets.length; i += 3) inodes.add(snap.sockets[i]);
    return this.table.stillExchanging(inodes, finishingFlows(snap.finishing, true));
  }

  /** The capture is over (the ring handed over): every socket judged alive or gone, every packet decided. */
  finish(): void {
    this.sweeper?.final(Date.now());
    this.pipeline.drain(true);
  }

  /** Says a warning as the tracer's are said: on stderr, or as an event with --events. */
  tell(e: WarningEvent): void {
    if (!this.o.format) return printError(`pid ${e.pid}: ${e.message}`);
    this.writeEvents([e]);
  }

  /** --events: the lines of these events, in one write. */
  private writeEvents(events: TraceEvent[]): void {
    const { format, eventsFd, status } = this.o;
    if (!format) return;
    let out = '';
    for (const e of events) {
      const line = format(e);
      if (line !== undefined) out += line + '\n';
    }
    if (!out) return;
    if (eventsFd === 2) status?.clear();
    writeAll(eventsFd, out);
  }

  /** The program started: the output files take their places (nothing was written there before). */
  markStarted(): void {
    if (this.started) return;
    this.started = true;
    this.o.onStarted();
  }

  private onShared(shared: SharedPort): void {
    // its send calls get exit stops: a datagram from the port outside them is the other's
    this.traced?.stopAtSendExits(shared.owner.inode);
    const message = this.gaps.noteShared(shared, holdersOf(shared.others));
    this.tell({ kind: 'warning', time: Date.now(), pid: shared.owner.pid, tid: shared.owner.tid, message });
  }

  private applyEvents(): void {
    this.applyOnly = true;
    try {
      this.traced?.pollEvents();
    } finally {
      this.applyOnly = false;
    }
  }

  // Judge what can be judged; a sweep first when one is due (it may decide waiting packets).
  private settle(now: number): void {
    const { sweeper, pipeline, table } = this;
    sweeper?.poke(now);
    pipeline.drain(false);
    if (table.sweepWanted && sweeper?.poke(now)) pipeline.drain(false);
    this.refreshClassic(now);
  }

  // Classic mode: a fresh exact program once the table has moved on. The stop path keeps the
  // wide program (a superset) in place meanwhile, so the exact one is only an optimisation:
  // it is rebuilt at most every CLASSIC_REFRESH_MS (changes in between are coalesced; the tick
  // comes back for them), and not while the native rule set is ahead of the events applied
  // (the offer would be refused as stale).
  private refreshClassic(now: number): void {
    const { live, sweeper, table } = this;
    if (live?.filterMode !== 'classic' || !sweeper || (!sweeper.released && this.classicBuilt === table.generation)) return;
    if (now - this.classicTriedAt < CLASSIC_REFRESH_MS || live.rules.generation() > table.generation) return;
    this.classicTriedAt = now;
    const ports = table.localPorts();
    const stats = this.o.stopStats;
    const started = stats && process.hrtime.bigint();
    const attached = live.refreshClassic(ports, table.generation);
    if (started) stats.classicRefresh(started, ports);
    if (attached) {
      this.classicBuilt = table.generation;
      sweeper.released = false;
    }
  }

  // What is due in the file: everything, or (with TLS keys) what is old enough.
  private writeOut(now: number): void {
    const { file, handshakes } = this.o;
    if (!file) return;
    if (handshakes) file.flushSettled(() => Math.min(now - KEY_HOLD_MS, handshakes.holdFrom(now)));
    else file.flush();
  }
}

