// Per-flow statistics for traffic classification, in nfstream's vocabulary: packet sizes and
// inter-arrival times (min, mean, sample standard deviation, max) for both directions together
// and each apart, TCP flag counts, and the first N packets' sizes, directions and gaps ("splt").
// src2dst is the originator's direction. Sizes are IP lengths, times milliseconds.
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from '../packet/dissect';

const TCP_PSH = 0x08;
const TCP_URG = 0x20;
const TCP_ECE = 0x40;
const TCP_CWR = 0x80;

/** Running min, mean, sample standard deviation and max (Welford). */
class Running {
  n = 0;
  min = Infinity;
  max = -Infinity;
  private mean = 0;
  private m2 = 0;

  add(x: number): void {
    this.n++;
    if (x < this.min) this.min = x;
    if (x > this.max) this.max = x;
    const d = x - this.mean;
    this.mean += d / this.n;
    this.m2 += d * (x - this.mean);
  }

  summary(prefix: string, suffix: string, out: Record<string, number>): void {
    const r = (x: number) => Math.round(x * 1000) / 1000;
    out[`${prefix}min_${suffix}`] = this.n ? r(this.min) : 0;
    out[`${prefix}mean_${suffix}`] = this.n ? r(this.mean) : 0;
    out[`${prefix}stddev_${suffix}`] = this.n > 1 ? r(Math.sqrt(this.m2 / (this.n - 1))) : 0;
    out[`${prefix}max_${suffix}`] = this.n ? r(this.max) : 0;
  }
}

class Direction {
  readonly ps = new Running();
  readonly piat = new Running();
  lastUs = -1;
  readonly flags = { syn: 0, cwr: 0, ece: 0, urg: 0, ack: 0, psh: 0, rst: 0, fin: 0 };

  add(us: number, size: number, tcpFlags: number | undefined): void {
    this.ps.add(size);
    if (this.lastUs >= 0) this.piat.add((us - this.lastUs) / 1000);
    this.lastUs = us;
    if (tcpFlags === undefined) return;
    const f = this.flags;
    if (tcpFlags & TCP_SYN) f.syn++;
    if (tcpFlags & TCP_CWR) f.cwr++;
    if (tcpFlags & TCP_ECE) f.ece++;
    if (tcpFlags & TCP_URG) f.urg++;
    if (tcpFlags & TCP_ACK) f.ack++;
    if (tcpFlags & TCP_PSH) f.psh++;
    if (tcpFlags & TCP_RST) f.rst++;
    if (tcpFlags & TCP_FIN) f.fin++;
  }
}

export interface Splt {
  /** 0: originator to responder, 1: back (nfstream's splt_direction). */
  direction: number[];
  /** IP lengths. */
  ps: number[];
  /** Milliseconds since the previous packet of the flow (0 for the first). */
  piat_ms: number[];
}

export class FlowFeatures {
  private readonly both = new Direction();
  private readonly dirs = [new Direction(), new Direction()];
  private readonly splt: Splt = { direction: [], ps: [], piat_ms: [] };
  private lastUs = -1;

  constructor(private readonly spltLength: number) {}

  /** A packet of the flow; fromOrig: sent by the originator; tcpFlags for TCP only. */
  add(us: number, fromOrig: boolean, ipLen: number, tcpFlags: number | undefined): void {
    this.both.add(us, ipLen, tcpFlags);
    this.dirs[fromOrig ? 0 : 1].add(us, ipLen, tcpFlags);
    if (this.splt.ps.length < this.spltLength) {
      this.splt.direction.push(fromOrig ? 0 : 1);
      this.splt.ps.push(ipLen);
      this.splt.piat_ms.push(this.lastUs < 0 ? 0 : Math.round(us - this.lastUs) / 1000);
    }
    this.lastUs = us;
  }

  /** The roles flipped: the originator's direction is the other one. */
  flip(): void {
    this.dirs.reverse();
    this.splt.direction = this.splt.direction.map((d) => 1 - d);
  }

  /** The named statistics (nfstream's column names), then the splt arrays. */
  values(): Record<string, number | number[]> {
    const out: Record<string, number> = {};
    const parts: [string, Direction][] = [
      ['bidirectional_', this.both],
      ['src2dst_', this.dirs[0]],
      ['dst2src_', this.dirs[1]],
    ];
    for (const [prefix, d] of parts) {
      d.ps.summary(prefix, 'ps', out);
      d.piat.summary(prefix, 'piat_ms', out);
    }
    for (const [prefix, d] of parts) for (const [flag, n] of Object.entries(d.flags)) out[`${prefix}${flag}_packets`] = n;
    return { ...out, splt_direction: this.splt.direction, splt_ps: this.splt.ps, splt_piat_ms: this.splt.piat_ms };
  }
}
