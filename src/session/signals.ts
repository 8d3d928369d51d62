// What signals to tracedump mean during a run. Ctrl-C: the first is the tracees' business (a
// launched command got it from the terminal; an attached program is detached); a second ends
// tracedump at once with a whole file. SIGTERM and SIGHUP (timeout, a batch runner, a closed
// terminal) stop as -c/--duration do.
import { printError } from '../output/fd-writer';
import type { StopReason } from '../report/summary';
import type { Traced } from '../trace/traced';

/** Installs the handlers; returns their removal. */
export function handleSignals(
  traced: Traced,
  requestStop: (why: StopReason) => void,
  /** The second Ctrl-C: whole records out, then this (the caller's exit, which does not return). */
  interruptedTwice: { flush: () => void; exit: (status: number) => void },
): () => void {
  let interrupts = 0;
  const onInt = () => {
    if (++interrupts >= 2) {
      interruptedTwice.flush(); // whole records only: the file stays readable
      printError('interrupted twice: stopping now');
      interruptedTwice.exit(130); // EXITKILL ends a launched command; the kernel detaches attached ones
      return;
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
