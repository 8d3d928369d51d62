// Wiring and order of one tracedump run: output open -> capture ready -> command released ->
// command done -> linger -> drain -> close -> summary. Returns the exit status.
import { type EventFormat, formatter } from '../events/format';
import { onMessage, printError, writeAll } from '../output/fd-writer';
import { OutputTarget } from '../output/output-target';
import { type CommandSpec, TracedCommand } from '../trace/launched';
import { AttachedProcesses } from '../trace/attached';
import { EXIT_TRACEDUMP_FAILURE, signalName } from '../errors';
import { type Traced, attached, launched } from '../trace/traced';
import { type ExitEvent, type TraceEvent, type WarningEvent, native } from '../native';
import { CaptureOutput, type RotationOptions } from '../output/rotation';
import { type FormatName, makeFormat } from '../output/formats';
import { ProgramTable } from '../tracker/programs';
import { type FilterChoice, LiveCapture } from '../capture/live-capture';
import { DEFAULT_GRACE, EndpointTable, type SharedPort } from '../tracker/endpoints';
import { loopbackSendTailMs } from '../tracker/send-windows';
import { readProcFile } from '../proc-file';
import { Sweeper } from '../tracker/sweeper';
import { CapturePipeline } from '../capture/pipeline';
import { GapReport } from '../report/gaps';
import { holdersOf } from '../tracker/socket-holders';
import { type RunFigures, gapParts, type StopReason, progressText, summaryJson, summaryLine } from '../report/summary';
import { StatusLine } from '../report/status-line';
import { onStatsSignal } from '../report/stats-signal';
import { type LongTimeout, setLongTimeout } from '../long-timeout';
import { version } from '../version';
import type { TlsKeyLog } from '../tls/key-log';
import { PendingHandshakes } from '../tls/handshakes';
import { StopStatsRecorder } from '../stop-stats';

export interface CaptureSettings {
  /** Path of the capture file, or '-' for stdout. */
  output: string;
  format: FormatName;
  /** What is traced, in words, for the file's own comment (pcapng). */
  description: string;
  snaplen: number;
  /** Stop after this many packets are written. */
  count?: number;
  /** Stop after this many seconds. */
  durationSec?: number;
  /** Keep capturing this long after the last traced process exited (FIN/ACK tails). */
  lingerMs: number;
  ringBytes: number;
  /** Flush the file after every batch of packets (-U). */
  flushEveryBatch: boolean;
  /** Signal the command gets when -c or --duration is reached; SIGKILL follows after killAfterMs. */
  killAfterMs: number;
  /** Kernel filter: eBPF rule maps, the classic fallback, or eBPF when the kernel allows it. */
  filter: FilterChoice;
  /** -i: interface indexes to capture on (all when absent). */
  interfaces?: number[];
  /** -f: compiled pcap-filter program, ANDed with the program's own filter. */
  userFilter?: Buffer;
  /** -C / -G / -W */
  rotation?: RotationOptions;
}

export interface SessionOptions {
  /** Launch this command... */
  command?: CommandSpec;
  /** ...or attach to these running processes. */
  attach?: number[];
  /** Owner of the capture file (the user the command runs as). */
  fileOwner?: { uid: number; gid: number };
  /** Print tracer events in this format on stderr, or into eventsOutput (-o). */
  events?: EventFormat;
  eventsOutput?: OutputTarget;
  capture?: CaptureSettings;
  /** Where the one-line summary goes (stderr); undefined: no summary. */
  summaryFd?: number;
  /** A status line on this fd (a terminal), refreshed every second. */
  statusFd?: number;
  /** Write the end-of-run figures to this file as JSON (--summary-json). */
  summaryJson?: string;
  /** The launched command's words, as text (for the JSON summary). */
  commandWords?: string[];
  /** The program's TLS key log: read while capturing, its keys put in the file (pcapng). */
  tlsKeys?: TlsKeyLog;
}

const TICK_MS = 100;
/** How often the traced fd tables are searched for sockets no traced call showed (native/tracer.cc). */
const LATE_SOCKET_SWEEP_MS = 500;
// Classic filter mode: the least time between two rebuilds of the exact program (below TICK_MS,
// so the tick after a coalesced change always rebuilds).
const CLASSIC_REFRESH_MS = 80;
const FLUSH_MS = 1000;
// With TLS keys, packets wait this long before they are written: the key a program logs just
// after a packet arrived (TLS 1.3 handshake keys, after the ServerHello) still goes ahead of it;
// and longer (tls/handshakes.ts) while a TLS handshake seen in the traffic has no key yet.
const KEY_HOLD_MS = 250;

export async function runSession(options: SessionOptions): Promise<number> {
  // Instrumentation for the benchmark (TRACEDUMP_STATS_FILE): stop-path timings, written at the end.
  const stopStats = StopStatsRecorder.fromEnv();
  const format = options.events ? formatter(options.events) : undefined;
  const eventsFd = options.eventsOutput?.fd ?? 2;
  const cap = options.capture;
  const keys = options.tlsKeys;
  const holdForKeys = !!keys && cap?.format === 'pcapng';
  // TLS handshakes in the file still waiting for their keys: the file waits with them.
  const handshakes = holdForKeys ? new PendingHandshakes() : undefined;
  const takeKeys = () => {
    const keyLog = keys?.read();
    if (keyLog) handshakes?.noteKeys(keyLog);
    return keyLog;
  };

  const programs = new ProgramTable();
  const interfaceNames = new Map<number, string | undefined>();
  const interfaceName = (ifindex: number) => {
    if (!interfaceNames.has(ifindex)) interfaceNames.set(ifindex, native().interfaceName(ifindex) ?? undefined);
    return interfaceNames.get(ifindex);
  };
  const startedMs = Date.now();
  const status = options.statusFd !== undefined ? new StatusLine(options.statusFd) : undefined;
  const startedNs = BigInt(startedMs) * 1_000_000n;
  // What a file says of the capture at its end (pcapng statistics).
  const totals = () => ({
    start: startedNs,
    end: BigInt(Date.now()) * 1_000_000n,
    kernelDrops: live?.stats().drops ?? 0,
    gaps: gapParts(figures()).join('; '),
  });
  let stopRequested: StopReason | undefined;
  // The launched command's end came after a stop tracedump asked for (-c, --duration...).
  let endedByStop = false;
  let traced: Traced | undefined;
  // Processes of the command still alive (from the tracer's events): after --kill-after they
  // all get SIGKILL, so a command whose children ignore or outlive SIGTERM still ends.
  const alive = new Set<number>();
  let processesSeen = 0;
  let endLinger: (() => void) | undefined;
  const requestStop = (why: StopReason) => {
    endLinger?.(); // a stop asked for while lingering ends the linger
    if (stopRequested || !traced) return;
    stopRequested = why;
    traced.stop(cap?.killAfterMs ?? 5000, alive);
  };
  // Output first: an unwritable path fails before the command starts.
  const file =
    cap &&
    new CaptureOutput({
      path: cap.output,
      newFormat: () => makeFormat(cap.format, { snaplen: cap.snaplen, description: cap.description, interfaceName, exeOf: (pid) => programs.exeOf(pid) }),
      file: { owner: options.fileOwner, secret: holdForKeys, holdBack: holdForKeys, secrets: keys && takeKeys },
      rotation: cap.rotation,
      totals,
      onLimit: () => requestStop({ kind: 'file-limit', files: cap.rotation?.fileCount ?? 0 }),
    });
  const table = new EndpointTable(DEFAULT_GRACE, true, loopbackSendTailMs((name) => readProcFile(`sys/${name}`)));

  const pipeline = new CapturePipeline(table, (rec, owner, d) => {
    if (!file) return false;
    if (cap?.count !== undefined && pipeline.counters.written >= cap.count) return false;
    handshakes?.notePacket(rec, d);
    if (!file.write(rec, owner)) return false; // past a -G -W limit
    if (cap?.count !== undefined && pipeline.counters.written + 1 >= cap.count) requestStop({ kind: 'count', packets: cap.count });
    return true;
  });

  let live: LiveCapture | undefined;
  if (cap && file) {
    try {
      live = new LiveCapture({
        snaplen: cap.snaplen,
        ringBytes: cap.ringBytes,
        maxRules: 1 << 17,
        filter: cap.filter,
        interfaces: cap.interfaces,
        userFilter: cap.userFilter,
        onBatch: (batch) => {
          // Judge against the newest table: the tracer's queued events first. A batch's packets
          // whose events are still queued would otherwise all wait, and each later drain would
          // walk them again (a controller behind a burst falls further behind).
          traced?.pollEvents();
          pipeline.addBatch(batch, () => {
            if (table.sweepWanted) settle(Date.now());
          });
          if (cap.flushEveryBatch) writeOut(Date.now());
        },
      });
      if (live.fallbackReason) printError(`using the classic BPF filter: ${live.fallbackReason}`);
      live.start();
    } catch (err) {
      file.close();
      throw err;
    }
  }

  // Said as the tracer's warnings are: on stderr, or as a warning event with --events.
  const tell = (e: WarningEvent) => {
    if (!format) return printError(`pid ${e.pid}: ${e.message}`);
    const line = format(e);
    if (line === undefined) return;
    if (eventsFd === 2) status?.clear();
    writeAll(eventsFd, line + '\n');
  };
  const gaps = new GapReport();
  const onShared = (shared: SharedPort) => {
    // its send calls get exit stops: a datagram from the port outside them is the other's
    traced?.stopAtSendExits(shared.owner.inode);
    const message = gaps.noteShared(shared, holdersOf(shared.others));
    tell({ kind: 'warning', time: Date.now(), pid: shared.owner.pid, tid: shared.owner.tid, message });
  };
  // The sweeper takes the events between a dump and its use: applied only, nothing judged then
  // (a packet judged there would see a socket the dump found gone as still alive).
  let applyOnly = false;
  const applyEvents = () => {
    applyOnly = true;
    try {
      traced?.pollEvents();
    } finally {
      applyOnly = false;
    }
  };
  const sweeper = live ? new Sweeper(table, live.rules, printError, (protocols) => native().liveSockets(protocols), applyEvents, onShared) : undefined;
  let classicBuilt = -1;
  let classicTriedAt = -Infinity;
  // Classic mode: a fresh exact program once the table has moved on. The stop path keeps the
  // wide program (a superset) in place meanwhile, so the exact one is only an optimisation:
  // it is rebuilt at most every CLASSIC_REFRESH_MS (changes in between are coalesced; the tick
  // comes back for them), and not while the native rule set is ahead of the events applied
  // (the offer would be refused as stale).
  const refreshClassic = (now: number) => {
    if (live?.filterMode !== 'classic' || !sweeper || (!sweeper.released && classicBuilt === table.generation)) return;
    if (now - classicTriedAt < CLASSIC_REFRESH_MS || live.rules.generation() > table.generation) return;
    classicTriedAt = now;
    const ports = table.localPorts();
    const started = stopStats && process.hrtime.bigint();
    const attached = live.refreshClassic(ports, table.generation);
    if (started) stopStats.classicRefresh(started, ports);
    if (attached) {
      classicBuilt = table.generation;
      sweeper.released = false;
    }
  };
  // Judge what can be judged; a sweep first when one is due (it may decide waiting packets).
  const settle = (now: number) => {
    sweeper?.poke(now);
    pipeline.drain(false);
    if (table.sweepWanted && sweeper?.poke(now)) pipeline.drain(false);
    refreshClassic(now);
  };

  let lastFlush = Date.now();
  // What is due in the file: everything, or (with TLS keys) what is old enough.
  const writeOut = (now: number) =>
    handshakes ? file!.flushSettled(() => Math.min(now - KEY_HOLD_MS, handshakes.holdFrom(now))) : file!.flush();

  // The program started (its exec, or the attach): the output files take their places. Before
  // this nothing was written where the user's files are, so a run that never starts leaves them.
  let started = false;
  const markStarted = () => {
    if (started) return;
    started = true;
    file?.commit();
    options.eventsOutput?.commit();
  };

  const onEvents = (batch: TraceEvent[]) => {
    // the tracer's queue was emptied for this batch just now
    const current = Date.now();
    for (const e of batch) {
      if (!started && (e.kind === 'exec' || e.kind === 'attach')) markStarted();
      table.apply(e);
      programs.apply(e);
      if ((e.kind === 'spawn' && !e.thread) || e.kind === 'attach') {
        alive.add(e.kind === 'spawn' ? e.child : e.pid);
        processesSeen++;
      }
      if (e.kind === 'exec' && processesSeen === 0) processesSeen = 1; // the launched command itself
      if (e.kind === 'exit' && e.tid === e.pid && e.pid === rootPid && stopRequested) endedByStop = true;
      // After a detach, the program's new sockets are no longer seen: nothing later is
      // written, so the file ends cleanly instead of with some of its packets and not others.
      if (e.kind === 'done' && e.detachedAt !== undefined) pipeline.endAt(e.detachedAt);
      if (e.kind === 'exit' && e.tid === e.pid) {
        alive.delete(e.pid);
        sweeper?.processExited();
      }
    }
    // After 'done' no event can come: a packet nobody claims now is nobody's, and no call is
    // in flight whose destination the kernel filter must keep passing.
    const done = batch.some((e) => e.kind === 'done');
    if (done) live?.rules.expirePending(true);
    pipeline.eventsCurrent(done ? Infinity : current);
    if (live && !applyOnly) settle(Date.now());
    for (const e of batch) {
      if (e.kind === 'warning' && !format) printError(`pid ${e.pid}: ${e.message}`);
      const message = e.kind === 'socket' ? gaps.note(e) : undefined;
      if (message && !format) printError(message);
    }
    if (!format) return;
    if (eventsFd === 2) status?.clear();
    let out = '';
    for (const e of batch) {
      const line = format(e);
      if (line !== undefined) out += line + '\n';
    }
    if (out) writeAll(eventsFd, out);
  };

  const timers: NodeJS.Timeout[] = [];
  const tick = () => {
    const now = Date.now();
    // Packets waiting for an event are given up only once the events are known complete:
    // take what the tracer has queued (the events callback may not have run yet).
    traced?.pollEvents();
    pipeline.eventsCurrent(now);
    settle(now);
    pipeline.expireFragments(now);
    live?.rules.expirePending();
    if (file && (holdForKeys || now - lastFlush >= FLUSH_MS)) {
      lastFlush = now;
      writeOut(now);
    }
    if (file?.error) requestStop({ kind: 'write-failed', message: file.error.message });
  };

  // A live capture polls the tracer's events before judging each batch and on every tick, so
  // socket events need not wake the loop one by one (a cross-CPU wake-up each, paid by the
  // tracer thread between two stops).
  const polled = live !== undefined;
  let rootPid = -1;
  try {
    if (options.attach) {
      traced = attached(new AttachedProcesses(options.attach, onEvents, live?.rules, polled));
      markStarted(); // every process is seized: the capture is under way
    } else if (options.command) {
      const command = new TracedCommand(options.command, onEvents, live?.rules, polled);
      rootPid = command.pid;
      traced = launched(command);
    } else throw new Error('runSession: neither a command nor processes to attach to');
  } catch (err) {
    live?.close();
    file?.close();
    options.eventsOutput?.abandon();
    throw err;
  }

  // The figures so far (status line, SIGUSR1) and at the end (summary).
  const figures = (): RunFigures => ({
    output: cap?.output,
    written: pipeline.counters.written,
    writtenBytes: pipeline.counters.writtenBytes,
    files: file?.fileFigures() ?? [],
    lostAfterFailure: file?.error ? pipeline.counters.written - file.packetsWritten : 0,
    sockets: table.socketsSeen,
    processes: processesSeen,
    kernelDrops: live?.stats().drops ?? 0,
    filter: live?.filterMode,
    refusedRules: live?.rules.failed() ?? 0,
    undecided: pipeline.counters.undecided,
    gaps: gaps.figures,
    tlsKeys: keys && { lines: keys.lines, inFile: holdForKeys },
    elapsedMs: Date.now() - startedMs,
  });
  if (status) {
    onMessage(() => status.clear());
    timers.push(setInterval(() => status.show(`tracedump: ${progressText(figures())}`), 1000));
  }
  onStatsSignal(() => printError(progressText(figures())));

  const longTimers: LongTimeout[] = [];
  if (live) timers.push(setInterval(tick, TICK_MS));
  else if (keys) timers.push(setInterval(() => keys.read(), TICK_MS)); // --keylog without a capture
  if (cap?.durationSec !== undefined) longTimers.push(setLongTimeout(() => requestStop({ kind: 'duration', seconds: cap.durationSec! }), cap.durationSec * 1000));
  // Sockets that came without a traced call (SCM_RIGHTS, io_uring) are searched for this often.
  const lateSockets = traced;
  timers.push(setInterval(() => lateSockets.findLateSockets(), LATE_SOCKET_SWEEP_MS));
  const stopSignals = handleSignals(traced, requestStop, () => file?.flush());

  try {
    const outcome = await traced.done;
    if (outcome.failure) {
      // the program never ran: nothing was captured, and no file of the user's was touched
      status?.clear();
      printError(outcome.failure.message);
      return outcome.status;
    }
    if (live && file && cap) {
      // Detached: the program's traffic goes on, ours stops now. Exited: its last packets
      // (FIN/ACK, TIME_WAIT answers) are still on their way.
      if (!outcome.detached && stopRequested?.kind !== 'count') await linger(cap.lingerMs, (end) => (endLinger = end));
      live.close(); // hands over the last packets synchronously
      sweeper?.final(Date.now());
      pipeline.drain(true);
      file.close(totals());
    }
    if (!file) keys?.read();
    status?.clear();
    const stop: StopReason = stopRequested ?? (outcome.detached ? { kind: 'interrupted' } : options.attach ? { kind: 'all-exited' } : exitReason(outcome.exit));
    // A planned stop (-c, --duration, -W) is a success, unless the command failed on its own.
    let exitStatus = outcome.status;
    if (stopRequested && ['count', 'duration', 'file-limit'].includes(stopRequested.kind) && endedByStop && endedAsAsked(outcome.exit)) exitStatus = 0;
    if (file?.error) exitStatus = EXIT_TRACEDUMP_FAILURE;
    const f = figures();
    if (options.summaryFd !== undefined && cap) writeAll(options.summaryFd, summaryLine(f, stop) + '\n');
    if (file?.error) printError(file.error.message);
    if (options.summaryJson !== undefined) {
      const doc = summaryJson(f, stop, { version, command: options.commandWords, attached: options.attach, startedMs, endedMs: Date.now(), exitStatus });
      const out = OutputTarget.open(options.summaryJson, { mode: 0o644, owner: options.fileOwner });
      try {
        writeAll(out.fd, doc);
        out.commit();
      } finally {
        out.close();
      }
    }
    return exitStatus;
  } finally {
    for (const t of timers) clearInterval(t);
    for (const t of longTimers) t.clear();
    onStatsSignal(undefined);
    onMessage(undefined);
    status?.clear();
    traced.clearTimers();
    stopSignals();
    live?.close();
    file?.close();
    options.eventsOutput?.close(); // a run that never started: no events file either
    if (stopStats) {
      try {
        stopStats.write();
      } catch (err) {
        printError(`cannot write ${stopStats.file}: ${(err as Error).message}`);
      }
    }
  }
}

/** Waits ms (any length), or until the function handed to `onEnd` is called (a stop asked for). */
function linger(ms: number, onEnd: (end: () => void) => void): Promise<void> {
  return new Promise((resolve) => {
    const t = setLongTimeout(resolve, ms);
    onEnd(() => {
      t.clear();
      resolve();
    });
  });
}

/** Why a launched command's run ended, from its own exit. */
function exitReason(exit: ExitEvent | undefined): StopReason {
  return { kind: 'exited', code: exit?.code ?? null, signal: exit && exit.signal !== null ? signalName(exit.signal) : null };
}

/** The command ended as a stop asks it to: killed by SIGTERM or SIGKILL, or exited with 0, 143 or 137. */
function endedAsAsked(exit: ExitEvent | undefined): boolean {
  if (!exit) return true;
  if (exit.signal !== null) return exit.signal === 15 || exit.signal === 9;
  return exit.code === 0 || exit.code === 128 + 15 || exit.code === 128 + 9;
}

// Ctrl-C: the first is the tracees' business (a launched command got it from the terminal; an
// attached program is detached); a second ends tracedump at once with a whole file (EXITKILL
// ends a launched command with it; the kernel detaches an attached one).
// SIGTERM and SIGHUP (timeout, a batch runner, a closed terminal) stop as -c/--duration do.
function handleSignals(traced: Traced, requestStop: (why: StopReason) => void, beforeExit: () => void): () => void {
  let interrupts = 0;
  const onInt = () => {
    if (++interrupts >= 2) {
      beforeExit(); // whole records only: the file stays readable
      printError('interrupted twice: stopping now');
      native().exitNow(130); // EXITKILL ends a launched command; the kernel detaches attached ones
    }
    traced.interrupted();
  };
  const onTerm = () => requestStop({ kind: 'signal', signal: 'SIGTERM' });
  const onHup = () => requestStop({ kind: 'signal', signal: 'SIGHUP' });
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  process.on('SIGHUP', onHup);
  return () => {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    process.off('SIGHUP', onHup);
  };
}
