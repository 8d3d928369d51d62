// The default size of the kernel capture ring, from the machine's memory. The ring is what a
// burst of the program's traffic fills while the controller catches up: 64 MiB loses packets
// when a loopback transfer outruns the controller for a tenth of a second (200 MB at ~2 GB/s);
// a 64th of the memory (376 MiB on 24 GB) holds such a burst. The kernel allocates the whole
// ring when the capture opens, so it is bounded: 64 MiB at least, 1 GiB at most. The memory is
// the machine's, or the cgroup's limit when that is lower (a container).
import os from 'node:os';

const MIB = 1 << 20;
const BLOCK = 4 * MIB; // the ring's block size (live-capture.ts)
const FLOOR = 64 * MIB;
const CEILING = 1024 * MIB;

function machineMemory(): number {
  const limit = process.constrainedMemory?.(); // undefined or 0: none known
  return limit ? Math.min(limit, os.totalmem()) : os.totalmem();
}

/** The default ring size in KiB (what -B takes) for a machine with `totalBytes` of memory. */
export function defaultRingKiB(totalBytes = machineMemory()): number {
  const share = Math.floor(totalBytes / 64 / BLOCK) * BLOCK;
  return Math.min(CEILING, Math.max(FLOOR, share)) / 1024;
}
