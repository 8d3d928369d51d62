// Wiring and order of one tracedump run: launch the command under the tracer, route its events
// to the printers, forward termination signals, and return the command's exit status.
import { type EventFormat, formatter } from './events/format';
import { printError, writeAll } from './output/fd-writer';
import { type CommandSpec, TracedCommand } from './traced-command';
import type { TraceEvent } from './native';

export interface SessionOptions {
  command: CommandSpec;
  /** Print tracer events in this format on `eventsFd` (default stderr). */
  events?: EventFormat;
  eventsFd?: number;
}

export async function runSession(options: SessionOptions): Promise<number> {
  const format = options.events ? formatter(options.events) : undefined;
  const eventsFd = options.eventsFd ?? 2;
  const onEvents = (batch: TraceEvent[]) => {
    for (const e of batch) if (e.kind === 'warning' && !format) printError(`pid ${e.pid}: ${e.message}`);
    if (!format) return;
    let out = '';
    for (const e of batch) {
      const line = format(e);
      if (line !== undefined) out += line + '\n';
    }
    if (out) writeAll(eventsFd, out);
  };

  const command = new TracedCommand(options.command, onEvents);
  const stopSignals = forwardSignals(command);
  try {
    const outcome = await command.done;
    if (outcome.failure) printError(outcome.failure.message);
    return outcome.status;
  } finally {
    stopSignals();
  }
}

// Ctrl-C reaches the command from the terminal itself (same process group): tracedump waits for
// it to finish; a second Ctrl-C ends tracedump at once (EXITKILL ends the tracees with it).
// SIGTERM and SIGHUP sent to tracedump alone are passed on to the command.
function forwardSignals(command: TracedCommand): () => void {
  let interrupts = 0;
  const onInt = () => {
    if (++interrupts >= 2) {
      printError('interrupted twice: stopping now');
      process.exit(130);
    }
  };
  const onTerm = () => command.signal(15);
  const onHup = () => command.signal(1);
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  process.on('SIGHUP', onHup);
  return () => {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    process.off('SIGHUP', onHup);
  };
}
