// The default size of the kernel capture ring, from the machine's memory. The ring is what a
// burst of the program's traffic fills while the controller catches up: 64 MiB loses packets
// when a loopback transfer outruns the controller for a tenth of a second (200 MB at ~2 GB/s);
// a 64th of the memory (384 MiB on 24 GiB) holds such a burst. The kernel allocates the whole
// ring when the capture opens, so it is bounded: 64 MiB at least, 1 GiB at most.
import os from 'node:os';

const MIB = 1 << 20;
const BLOCK = 4 * MIB; // the ring's block size (live-capture.ts)
const FLOOR = 64 * MIB;
const CEILING = 1024 * MIB;

/** The default ring size in KiB (what -B takes) for a machine with `totalBytes` of memory. */
export function defaultRingKiB(totalBytes = os.totalmem()): number {
  const share = Math.floor(totalBytes / 64 / BLOCK) * BLOCK;
  return Math.min(CEILING, Math.max(FLOOR, share)) / 1024;
}
