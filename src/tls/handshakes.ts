// TLS handshakes whose keys the program has not logged yet. A TLS 1.3 client logs its
// handshake keys only once it has handled the server's first flight, which is encrypted with
// them: a program that does so late (a busy event loop, a GC pause, a loaded machine) would
// have the keys land in the file after the packets they decrypt, and Wireshark then cannot
// decrypt the connection at all. So packets wait while a handshake seen in the program's
// traffic (by the ClientHello's random) has no key line yet, up to a bound.
import { type Dissected, IPPROTO_TCP } from '../packet/dissect';
import { type PacketRecord, captureMs } from '../capture/records';
import { clientHelloRandom } from '../packet/tls';

/** How long a handshake may hold the file back waiting for its keys (clients that never log). */
export const MAX_KEY_WAIT_MS = 3000;

export class PendingHandshakes {
  // client random (hex) -> capture time (ms) of its ClientHello
  private readonly waiting = new Map<string, number>();
  private readonly done = new Set<string>();

  /** Notes a ClientHello in a packet about to be written (d: the pipeline's dissection). */
  notePacket(p: PacketRecord, d: Dissected | undefined): void {
    if (!d || d.proto !== IPPROTO_TCP || d.icmpError || d.payload < 0) return;
    const random = clientHelloRandom(p.data, d.payload);
    if (random === undefined || this.done.has(random) || this.waiting.has(random)) return;
    this.waiting.set(random, captureMs(p));
  }

  /** Key log lines read: their handshakes wait no more. */
  noteKeys(keyLog: Buffer): void {
    for (const line of keyLog.toString('latin1').split('\n')) {
      const random = line.split(' ')[1]?.toLowerCase();
      if (!random) continue;
      this.waiting.delete(random);
      if (this.done.size > 100_000) this.done.clear(); // bounded; a late ClientHello copy is rare
      this.done.add(random);
    }
  }

  /** Packets captured at or after this time (ms) are held; Infinity: none is waited for. */
  holdFrom(nowMs: number): number {
    let oldest = Infinity;
    for (const [random, at] of this.waiting) {
      if (nowMs - at > MAX_KEY_WAIT_MS) this.waiting.delete(random);
      else if (at < oldest) oldest = at;
    }
    return oldest;
  }
}
