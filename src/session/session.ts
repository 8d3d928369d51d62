// Wiring and order of one tracedump run: output open -> capture ready -> command released ->
// command done -> linger -> drain -> close -> summary. Returns the exit status.
import { type EventFormat, formatter } from '../events/format';
import { onMessage, printError, writeAll } from '../output/fd-writer';
import { OutputTarget } from '../output/output-target';
import { type CommandSpec, TracedCommand } from '../trace/launched';
import { AttachedProcesses } from '../trace/attached';
import { EXIT_TRACEDUMP_FAILURE, signalName } from '../errors';
import { type Traced, attached, launched } from '../trace/traced';
import { type CaptureState, type ExitEvent, type TraceEvent, native } from '../native';
import { CaptureOutput, type RotationOptions } from '../output/rotation';
import { type FormatName, makeFormat } from '../output/formats';
import { type FilterChoice, LiveCapture } from '../capture/live-capture';
import { type RunFigures, gapParts, plural, type StopReason, progressText, summaryJson, summaryLine } from '../report/summary';
import { StatusLine } from '../report/status-line';
import { onStatsSignal } from '../report/stats-signal';
import { type LongTimeout, setLongTimeout } from '../long-timeout';
import { version } from '../version';
import type { TlsKeyLog } from '../tls/key-log';
import { PendingHandshakes } from '../tls/handshakes';
import { quoteName } from '../text/quote';
import { StopStatsRecorder } from '../stop-stats';
import type { CaptureTotals } from '../output/format';
import { Controller } from './controller';
import { nativePathMode } from '../capture/native-path';
import { handleSignals } from './signals';

export interface CaptureSettings {
  /** Path of the capture file, or '-' for stdout. */
  output: string;
  format: FormatName;
  /** What is traced, in words, for the file's own comment (pcapng). */
  description: string;
  /** --capture-comment: more comments for the file's section header (pcapng). */
  comments: string[];
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
  /** --flows: the flow records of the capture, as JSON lines (with a capture only). */
  flows?: { output: OutputTarget; idleSec: number; activeSec: number };
  /** --top: the live table of flows and processes on this terminal fd; keys read when allowed. */
  top?: { fd: number; readKeys: boolean };
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
  /** Ends tracedump at once (a second Ctrl-C): the entry point's exit, which does not return. */
  exitNow: (status: number) => void;
}

const TICK_MS = 100;
/** How often the traced fd tables are searched for sockets no traced call showed (native/tracer.cc). */
const LATE_SOCKET_SWEEP_MS = 500;

export async function runSession(options: SessionOptions): Promise<number> {
  // Instrumentation for the benchmark (TRACEDUMP_STATS_FILE): stop-path timings, written at the end.
  const stopStats = StopStatsRecorder.fromEnv();
  const format = options.events ? formatter(options.events) : undefined;
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
  const nativePath = nativePathMode();
  const interfaceName = interfaceNames();
  const startedMs = Date.now();
  const status = options.statusFd !== undefined ? new StatusLine(options.statusFd) : undefined;

  let stopRequested: StopReason | undefined;
  let traced: Traced | undefined;
  let endLinger: (() => void) | undefined;
  const requestStop = (why: StopReason) => {
    endLinger?.(); // a stop asked for while lingering ends the linger
    if (stopRequested || !traced) return;
    stopRequested = why;
    // a ring still being made is given up: the program's calls waiting for it go on, to the stop
    if (live && !live.state().live) live.close();
    traced.stop(cap?.killAfterMs ?? 5000, controller.alive);
  };

  // 1. Output first: an unwritable path fails before the command starts.
  const file: CaptureOutput | undefined =
    cap &&
    new CaptureOutput({
      path: cap.output,
      newFormat: () => makeFormat(cap.format, { snaplen: cap.snaplen, description: cap.description, comments: cap.comments, interfaceName, exeOf: (pid): string | undefined => controller.programs.exeOf(pid) }),
      file: { owner: options.fileOwner, secret: holdForKeys, holdBack: holdForKeys, secrets: keys && takeKeys },
      rotation: cap.rotation,
      totals: () => totals(),
      onLimit: () => requestStop({ kind: 'file-limit', files: cap.rotation?.fileCount ?? 0 }),
    });
  const flows =
    options.flows || options.top
      ? new (liveFlowsModule().LiveFlows)({
          fd: options.flows?.output.fd,
          idleSec: options.flows?.idleSec ?? 120,
          activeSec: options.flows?.activeSec ?? 1800,
          exeOf: (pid) => controller.programs.exeOf(pid),
        })
      : undefined;
  const controller: Controller = new Controller({
    file,
    nativePath,
    flows,
    count: cap?.count,
    flushEveryBatch: !!cap?.flushEveryBatch,
    handshakes,
    format,
    eventsFd: options.eventsOutput?.fd ?? 2,
    status,
    stopStats,
    // the files take the places of the user's only once the program started (and the
    // capture is live: a ring that cannot be made fails the run)
    onStarted: () => {
      programStarted = true;
      commitWhenLive();
    },
    requestStop,
    stopRequested: () => stopRequested !== undefined,
  });

  // 2. The capture, before the command can send anything. A launched command that inherits no
  // socket can send nothing before its first socket call: its ring is made in the background
  // while the command starts, and that call waits for it (native/capture_gate.h).
  let live: LiveCapture | undefined;
  const deferRing = !options.attach && !!options.command && !inheritsSockets(options.command);
  let programStarted = false;
  let committed = false;
  // (then the command's calls waiting for a deferred ring go on: a program sees its files in
  // place once its first socket call returns)
  const commitWhenLive = (ended = false) => {
    if (committed || !programStarted || (live && !ended && !live.state().live)) return;
    committed = true;
    file?.commit();
    options.eventsOutput?.commit();
    options.flows?.output.commit();
    live?.openGate();
  };
  if (cap && file) {
    try {
      live = new LiveCapture({
        snaplen: cap.snaplen,
        ringBytes: cap.ringBytes,
        maxRules: 1 << 17,
        filter: cap.filter,
        interfaces: cap.interfaces,
        userFilter: cap.userFilter,
        onBatch: (batch) => controller.onBatch(batch),
        deferRing,
      });
      if (live.fallbackReason) printError(`using the classic BPF filter: ${live.fallbackReason}`);
      live.start();
      controller.attachLive(live);
    } catch (err) {
      file.close();
      throw err;
    }
  }

  // 3. The command released (or the processes seized). A live capture polls the tracer's
  // events before judging each batch and on every tick, so socket events need not wake the
  // loop one by one (a cross-CPU wake-up each, paid by the tracer thread between two stops).
  const polled = live !== undefined;
  const onEvents = (batch: TraceEvent[]) => controller.onEvents(batch);
  try {
    if (options.attach) {
      traced = attached(new AttachedProcesses(options.attach, onEvents, live?.rules, polled));
      controller.attachTraced(traced, -1);
      controller.markStarted(); // every process is seized: the capture is under way
    } else if (options.command) {
      const command = new TracedCommand(options.command, onEvents, live?.rules, polled, deferRing ? live?.native : undefined);
      traced = launched(command);
      controller.attachTraced(traced, command.pid);
    } else throw new Error('runSession: neither a command nor processes to attach to');
  } catch (err) {
    live?.close();
    file?.close();
    options.eventsOutput?.abandon();
    options.flows?.output.abandon();
    throw err;
  }

  // The figures so far (status line, SIGUSR1) and at the end (summary, the file's statistics).
  // (tracedump's CPU once the capture runs: Node's start-up and the ring's making before it)
  const figures = () => runFigures(controller, { cap, file, live, keys, holdForKeys, startedMs, startCpuSeconds: live?.state().liveCpuSeconds || undefined });
  const totals = (): CaptureTotals => ({
    start: BigInt(startedMs) * 1_000_000n,
    end: BigInt(Date.now()) * 1_000_000n,
    kernelDrops: live?.stats().drops ?? 0,
    gaps: gapParts(figures()).join('; '),
  });

  // 4. While it runs: the controller's tick, the searches for late sockets, the status line,
  // SIGUSR1, --duration, signals.
  const timers: NodeJS.Timeout[] = [];
  const longTimers: LongTimeout[] = [];
  if (status) {
    onMessage(() => status.clear());
    timers.push(setInterval(() => status.show(`tracedump: ${progressText(figures())}`), 1000));
  }
  onStatsSignal(() => printError(progressText(figures())));
  if (live) timers.push(setInterval(() => controller.tick(), TICK_MS));
  if (flows) timers.push(setInterval(() => flows.tick(), 1000));
  const top =
    flows && options.top
      ? new (topScreenModule().TopScreen)(options.top.fd, flows, () => {
          const f = figures();
          return { written: f.written, undecided: f.undecided, other: flows.otherPackets, drops: f.kernelDrops };
        }, options.top.readKeys)
      : undefined;
  if (top) {
    top.start();
    timers.push(setInterval(() => top.draw(), 1000));
  }
  // --keylog without a capture: the lines go to the copy only. (With a capture the file takes
  // them as it writes: a read here would take them away from it.)
  if (!live && keys) timers.push(setInterval(() => keys.read(), TICK_MS));
  if (cap?.durationSec !== undefined) longTimers.push(setLongTimeout(() => requestStop({ kind: 'duration', seconds: cap.durationSec! }), cap.durationSec * 1000));
  // Sockets that came without a traced call (SCM_RIGHTS, io_uring) are searched for this often.
  const tracee = traced;
  timers.push(setInterval(() => tracee.findLateSockets(), LATE_SOCKET_SWEEP_MS));
  const stopSignals = handleSignals(traced, requestStop, { flush: () => file?.flush(), exit: options.exitNow });
  // A deferred ring: the files are committed once it is live; one that cannot be made stops
  // the command at once (the tracer kills it at its next socket call anyway).
  const ringFailed = () => {
    const st = live?.state();
    return st && !st.live && st.error ? ringError(st.error, cap?.ringBytes ?? 0) : undefined;
  };
  if (live && deferRing) {
    const watch = setInterval(() => {
      if (live.state().live) {
        clearInterval(watch);
        commitWhenLive();
      } else if (ringFailed()) {
        clearInterval(watch);
        traced.stop(0, controller.alive);
      }
    }, RING_WATCH_MS);
    timers.push(watch);
  }

  try {
    // 5. The end: the command's (or every tracee's), then the linger, the last packets, the summary.
    const outcome = await traced.done;
    if (outcome.failure) {
      // the program never ran: nothing was captured, and no file of the user's was touched
      status?.clear();
      printError(outcome.failure.message);
      return outcome.status;
    }
    const ringFailure = ringFailed();
    if (ringFailure) {
      // the capture never ran: no file of the user's was touched
      status?.clear();
      printError(ringFailure);
      return EXIT_TRACEDUMP_FAILURE;
    }
    // a program that ended before its ring was made sent nothing: its (empty) files now
    commitWhenLive(true);
    if (live && file && cap) {
      // Detached: the program's traffic goes on, ours stops now. Exited: its last packets
      // (FIN/ACK, TIME_WAIT answers) are still on their way.
      if (!outcome.detached && stopRequested?.kind !== 'count')
        await linger(
          cap.lingerMs,
          // a program that never had a socket has no packet on its way either
          controller.table.socketsSeen === 0 ? 0 : LINGER_SETTLE_MS,
          () => !controller.programStillExchanging() && live.stats().waiting === 0,
          (end) => (endLinger = end),
        );
      live.close(); // hands over the last packets synchronously
      controller.finish();
      file.close(totals());
      flows?.end();
    }
    if (!file) keys?.read();
    status?.clear();
    const stop: StopReason = stopRequested ?? (outcome.detached ? { kind: 'interrupted' } : options.attach ? { kind: 'all-exited' } : exitReason(outcome.exit));
    // A planned stop (-c, --duration, -W) is a success, unless the command failed on its own.
    let exitStatus = outcome.status;
    if (stopRequested && ['count', 'duration', 'file-limit'].includes(stopRequested.kind) && controller.endedByStop && endedAsAsked(outcome.exit)) exitStatus = 0;
    if (file?.error) exitStatus = EXIT_TRACEDUMP_FAILURE;
    // check mode (the tests): a record the two paths disagree on fails the run
    if (controller.nativePath?.mismatches) {
      printError(`native path: ${plural(controller.nativePath.mismatches, 'record')} differed from the pipeline's`);
      exitStatus = EXIT_TRACEDUMP_FAILURE;
    }
    top?.close(); // the normal screen back before the summary
    if (flows?.error) {
      printError(`cannot write the flow records to ${quoteName(options.flows!.output.path)}: ${flows.error.message}`);
      exitStatus = EXIT_TRACEDUMP_FAILURE;
    }
    const commandExit = outcome.exit ? { code: outcome.exit.code ?? null, signal: outcome.exit.signal !== null ? signalName(outcome.exit.signal) : null } : null;
    reportEnd(options, figures(), stop, { startedMs, exitStatus, writeError: file?.error, commandExit });
    return exitStatus;
  } finally {
    for (const t of timers) clearInterval(t);
    for (const t of longTimers) t.clear();
    onStatsSignal(undefined);
    onMessage(undefined);
    top?.close();
    status?.clear();
    traced.clearTimers();
    stopSignals();
    live?.close();
    file?.close();
    options.eventsOutput?.close(); // a run that never started: no events file either
    options.flows?.output.close();
    if (stopStats) {
      try {
        stopStats.write();
      } catch (err) {
        printError(`cannot write ${stopStats.file}: ${(err as Error).message}`);
      }
    }
  }
}

function runFigures(
  c: Controller,
  r: { cap?: CaptureSettings; file?: CaptureOutput; live?: LiveCapture; keys?: TlsKeyLog; holdForKeys: boolean; startedMs: number; startCpuSeconds?: number },
): RunFigures {
  const counters = c.pipeline.counters;
  return {
    output: r.cap?.output,
    written: counters.written,
    writtenBytes: counters.writtenBytes,
    files: r.file?.fileFigures() ?? [],
    lostAfterFailure: r.file?.error ? counters.written - r.file.packetsWritten : 0,
    sockets: c.table.socketsSeen,
    processes: c.processesSeen,
    kernelDrops: r.live?.stats().drops ?? 0,
    filterPassed: counters.seen,
    notTheProgram: counters.rejected,
    filter: r.live?.filterMode,
    refusedRules: r.live?.rules.failed() ?? 0,
    undecided: counters.undecided,
    gaps: c.gaps.figures,
    tlsKeys: r.keys && { lines: r.keys.lines, inFile: r.holdForKeys },
    nativePath: c.nativePath && { written: c.nativePath.written, mismatches: c.nativePath.mismatches },
    elapsedMs: Date.now() - r.startedMs,
    cpuSeconds: cpuSeconds(),
    startCpuSeconds: r.startCpuSeconds,
  };
}

/** How often a deferred ring is looked at until it is live (the files are committed then). */
const RING_WATCH_MS = 1;

/**
 * Whether the launched command would get a socket that can send packets among its descriptors
 * (then it could send before any socket call). Unix sockets cannot (a parent's stdio pipes are
 * often socket pairs), nor can a closed descriptor.
 */
function inheritsSockets(command: CommandSpec): boolean {
  const quiet = new Set([-1, AF_UNIX, AF_NETLINK]);
  return [...(command.stdio ?? [0, 1, 2]), ...(command.keepFds ?? [])].some((fd) => !quiet.has(native().socketDomain(fd)));
}

const AF_UNIX = 1;
const AF_NETLINK = 16;

function ringError(e: NonNullable<CaptureState['error']>, ringBytes: number): string {
  const hint = e.code === 'ENOMEM' ? `; a smaller ring (-B ${Math.max(2048, Math.floor(ringBytes / 4096))}) may fit` : '';
  return `cannot make the capture's ring of ${Math.round(ringBytes / 2 ** 20)} MiB: ${e.syscall}: ${e.message} (${e.code})${hint}`;
}

function cpuSeconds(): number {
  const u = process.cpuUsage();
  return Math.round((u.user + u.system) / 1000) / 1000;
}

/** The summary line (stderr), a write failure's message, the --summary-json document. */
function reportEnd(
  options: SessionOptions,
  f: RunFigures,
  stop: StopReason,
  run: { startedMs: number; exitStatus: number; writeError?: Error; commandExit: { code: number | null; signal: string | null } | null },
): void {
  if (options.summaryFd !== undefined && options.capture) writeAll(options.summaryFd, summaryLine(f, stop) + '\n');
  if (run.writeError) printError(run.writeError.message);
  if (options.summaryJson === undefined) return;
  const doc = summaryJson(f, stop, { version, command: options.commandWords, attached: options.attach, startedMs: run.startedMs, endedMs: Date.now(), exitStatus: run.exitStatus, commandExit: run.commandExit });
  writeSummaryJson(options, doc);
}

/** Interface names by index, asked once each. */
function interfaceNames(): (ifindex: number) => string | undefined {
  const names = new Map<number, string | undefined>();
  return (ifindex) => {
    if (!names.has(ifindex)) names.set(ifindex, native().interfaceName(ifindex) ?? undefined);
    return names.get(ifindex);
  };
}

/** --summary-json: the document, replacing the file only now. */
function writeSummaryJson(options: SessionOptions, doc: string): void {
  const out = OutputTarget.open(options.summaryJson!, { mode: 0o644, owner: options.fileOwner });
  try {
    writeAll(out.fd, doc);
    out.commit();
  } finally {
    out.close();
  }
}

/** How often the linger asks whether the program can still exchange a packet. */
const LINGER_POLL_MS = 10;
/**
 * Once it cannot, how long the capture still takes packets: those the kernel already sent may
 * still be on their way to the tap (a queued transmit; on loopback, the received copy passes
 * through a softirq, late under load).
 */
const LINGER_SETTLE_MS = 20;

/**
 * After the program's last process: waits until it can exchange no packet any more (quiet():
 * no connection still finishing, no socket held by another process, no packet in the ring not
 * yet handed over; true at once and still true settleMs later), for ms at most (any length),
 * or until the function handed to `onEnd` is called (a stop asked for).
 */
function linger(ms: number, settleMs: number, quiet: () => boolean, onEnd: (end: () => void) => void): Promise<void> {
  return new Promise((resolve) => {
    let quietSince: number | undefined;
    let done = false;
    const finish = () => {
      done = true;
      clearInterval(poll);
      t.clear();
      resolve();
    };
    const check = () => {
      if (!quiet()) quietSince = undefined;
      else if (Date.now() - (quietSince ??= Date.now()) >= settleMs) finish();
    };
    const poll = setInterval(check, LINGER_POLL_MS);
    const t = setLongTimeout(finish, ms);
    onEnd(finish);
    if (!done) check();
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

// The flow code is loaded only by the runs that use it (--flows, --top): the others start as fast as before.
function liveFlowsModule(): typeof import('../flows/live-flows') {
  return require('../flows/live-flows');
}

function topScreenModule(): typeof import('../flows/top-screen') {
  return require('../flows/top-screen');
}
