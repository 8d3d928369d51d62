// SIGUSR1 prints the capture's figures on stderr, as tcpdump does. Node itself would open its
// inspector on SIGUSR1: a debugger port on 127.0.0.1 that any local user can reach, inside a
// process running as root. A listener takes the signal from Node; cli.ts imports this module
// before anything else, so the listener is in place as soon as tracedump's own code runs.
let reporter: (() => void) | undefined;

process.on('SIGUSR1', () => reporter?.());

/** What SIGUSR1 prints from now on (undefined: nothing). */
export function onStatsSignal(fn: (() => void) | undefined): void {
  reporter = fn;
}
