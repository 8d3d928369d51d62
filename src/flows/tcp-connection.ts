// A TCP connection as Zeek's TCP analyzer follows it, for conn.log's meanings: each endpoint's
// state (INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET), the history
// letters, the byte counts from sequence numbers, content gaps, and conn_state. Written from
// Zeek's TCPSessionAdapter/TCP_Endpoint and base/protocols/conn/main.zeek; where this differs
// from Zeek it says so (docs/flows.md).
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from '../packet/dissect';
import { type History, HistoryKind } from './history';


export const enum TcpState {
  Inactive = 0,
  SynSent = 1,
  SynAckSent = 2,
  Partial = 3,
  Established = 4,
  Closed = 5,
  Reset = 6,
}

const SEQ_SPACE = 2 ** 32;
/** Shared until an endpoint has data out of order. */
const NO_BLOCKS: [number, number][] = [];
/** SYN and RST sequence jumps larger than this are not trusted (Zeek's 1 MiB). */
const MAX_JUMP = 1 << 20;

/** seq (32 bits) as the 64-bit offset nearest to ref (an offset already in the stream). */
function unwrap(seq: number, ref: number): number {
  let refLow = ref % SEQ_SPACE;
  if (refLow < 0) refLow += SEQ_SPACE;
  let d = seq - refLow;
  if (d > SEQ_SPACE / 2) d -= SEQ_SPACE;
  else if (d < -SEQ_SPACE / 2) d += SEQ_SPACE;
  return ref + d;
}

class Endpoint {
  state = TcpState.Inactive;
  prevState = TcpState.Inactive;
  initialized = false;
  /** Initialized from the peer's ACK (Zeek's init_peer): its own first packet starts it again. */
  fromPeer = false;
  /** Offsets in a 64-bit sequence space (the first seq seen as is, later ones unwrapped near it). */
  startSeq = 0;
  lastSeq = 0;
  ackSeq = 0;
  finCount = 0;
  didClose = false;
  /** End of this side's data seen contiguously (for gaps), and blocks seen beyond it. */
  contiguous = 0;
  blocks: [number, number][] = NO_BLOCKS;
  /** Bytes of gaps (data the peer acknowledged that was never seen). */
  gapBytes = 0;

  setState(s: TcpState): void {
    this.prevState = this.state;
    this.state = s;
  }

  init(seq: number, len: number, syn: boolean): void {
    this.initialized = true;
    this.fromPeer = false;
    if (syn) {
      this.startSeq = this.ackSeq = seq;
      this.lastSeq = seq + 1 + len;
    } else {
      this.startSeq = this.ackSeq = seq - 1;
      this.lastSeq = seq;
    }
    this.contiguous = this.startSeq + 1;
  }

  /** Zeek's TCP_Endpoint::Size(). */
  size(peerInactive: boolean): number {
    if (!this.initialized) return 0;
    if (this.prevState === TcpState.SynSent && this.state === TcpState.Reset && peerInactive && this.ackSeq <= this.startSeq + 1) return 0;
    let size = Math.max(this.lastSeq, this.ackSeq) - this.startSeq;
    if (size !== 0) size--;
    if (this.finCount > 0 && size !== 0) size--;
    return Math.max(0, size);
  }

  /** Data [from, to) of this side seen: the contiguous end moves over what joins it. */
  seen(from: number, to: number): void {
    if (to <= this.contiguous) return;
    if (from > this.contiguous) {
      if (this.blocks === NO_BLOCKS) this.blocks = [];
      if (this.blocks.length < 256) this.blocks.push([from, to]);
      return;
    }
    this.contiguous = to;
    this.absorb();
  }

  private absorb(): void {
    if (this.blocks.length === 0) return;
    this.blocks.sort((a, b) => a[0] - b[0]);
    while (this.blocks.length && this.blocks[0][0] <= this.contiguous) {
      const [, to] = this.blocks.shift() as [number, number];
      if (to > this.contiguous) this.contiguous = to;
    }
  }

  /** The peer acknowledged up to `ack`: what of it was never seen is a gap; returns its size. */
  acked(ack: number): number {
    let upTo = ack;
    if (this.finCount > 0) upTo = Math.min(upTo, this.lastSeq - 1); // the FIN's octet is no data
    if (upTo <= this.contiguous) return 0;
    let gap = 0;
    this.blocks.sort((a, b) => a[0] - b[0]);
    while (this.contiguous < upTo) {
      const next = this.blocks.find((b) => b[1] > this.contiguous);
      if (!next || next[0] >= upTo) {
        gap += upTo - this.contiguous;
        this.contiguous = upTo;
        break;
      }
      if (next[0] > this.contiguous) gap += next[0] - this.contiguous;
      this.contiguous = Math.max(this.contiguous, next[1]);
      this.absorb();
    }
    this.blocks = this.blocks.filter((b) => b[1] > this.contiguous);
    this.gapBytes += gap;
    return gap;
  }

  /** ESTABLISHED, or CLOSED after ESTABLISHED: Zeek reports gaps only between two clean endpoints. */
  get clean(): boolean {
    return this.state === TcpState.Established || (this.state === TcpState.Closed && this.prevState === TcpState.Established);
  }
}

export class TcpConnection {
  orig = new Endpoint();
  resp = new Endpoint();
  /** Sequence offsets of each side's last SYN, FIN and RST, for letters that repeat on a new one. */
  private readonly last = { syn: [NaN, NaN], fin: [NaN, NaN], rst: [NaN, NaN] };

  constructor(private readonly history: History) {}

  get closed(): boolean {
    return this.orig.didClose || this.resp.didClose;
  }

  /** Both sides closed (or one reset): the connection is over; later packets do not extend it. */
  get bothClosed(): boolean {
    return this.orig.didClose && this.resp.didClose;
  }

  /** Whether the connection is complete for removal after the close delay. */
  get closeComplete(): boolean {
    const { orig: o, resp: r } = this;
    return (
      o.state === TcpState.Reset ||
      r.state === TcpState.Reset ||
      (o.didClose && r.didClose) ||
      (o.didClose && r.state === TcpState.Inactive) ||
      (r.didClose && o.state === TcpState.Inactive)
    );
  }

  /** Still only an originator's SYN (or SYN-ACK) with no answer: Zeek removes it 5 s after. */
  get attemptOnly(): boolean {
    return (this.orig.state === TcpState.SynSent || this.orig.state === TcpState.SynAckSent) && this.resp.state === TcpState.Inactive;
  }

  /** Whether a SYN from `fromOrig` side with this seq starts a new connection on the same 4-tuple (Zeek's IsReuse). */
  isReuse(fromOrig: boolean, flags: number, seq: number): boolean {
    if (!(flags & TCP_SYN)) return false;
    let sender = fromOrig ? this.orig : this.resp;
    if (flags & TCP_ACK) {
      if (this.orig.state !== TcpState.Inactive) return false;
      sender = this.resp;
    }
    if (!this.closed) {
      if (!sender.initialized || seq === sender.startSeq % SEQ_SPACE) return false; // a retransmitted SYN
      if (!(flags & TCP_ACK) && !fromOrig && this.orig.state === TcpState.SynAckSent && this.resp.state === TcpState.Inactive) return false;
    }
    return true;
  }

  /**
   * One packet from the originator (fromOrig) or the responder. `flipRoles` swaps the flow's
   * roles (and calls flip() here) where Zeek flips them mid-connection: a SYN-ACK first and then
   * an ACK or data (history "H" becomes "^h"), or a SYN-ACK then a SYN from the other side.
   */
  packet(fromOrig: boolean, flags: number, seq32: number, ack32: number, len: number, window: number, flipRoles: () => void): void {
    const ep = fromOrig ? this.orig : this.resp;
    const peer = fromOrig ? this.resp : this.orig;
    const syn = (flags & TCP_SYN) !== 0;
    const fin = (flags & TCP_FIN) !== 0;
    const rst = (flags & TCP_RST) !== 0;
    const ackSet = (flags & TCP_ACK) !== 0;
    if (ep.state === TcpState.Inactive && (!ep.initialized || ep.fromPeer)) ep.init(seq32, len, syn);
    else if (syn && !ackSet && !rst && (ep.state === TcpState.SynSent || ep.state === TcpState.Established || ep.state === TcpState.Partial)) {
      if (unwrap(seq32, ep.startSeq) !== ep.startSeq) ep.init(seq32, len, true); // Zeek's SYN_seq_jump: a new start
    }
    const seq = unwrap(seq32, ep.lastSeq);
    const rel = seq - ep.startSeq;

    // history letters (Zeek's update_history: only SYN, FIN and RST are counted as flags)
    const h = this.history;
    const bits = (syn ? 1 : 0) + (fin ? 1 : 0) + (rst ? 1 : 0);
    if (bits > 1) {
      h.check(fromOrig, fin && rst ? HistoryKind.FinRst : HistoryKind.Multi, fin && rst ? 'I' : 'Q');
    } else if (bits === 1) {
      if (syn) {
        const code = ackSet ? 'H' : 'S';
        if (h.check(fromOrig, HistoryKind.Syn, code) && rel !== this.last.syn[fromOrig ? 0 : 1]) h.add(fromOrig, code);
        this.last.syn[fromOrig ? 0 : 1] = rel;
      }
      if (fin) {
        if (h.check(fromOrig, HistoryKind.Fin, 'F') && rel + len !== this.last.fin[fromOrig ? 0 : 1]) h.add(fromOrig, 'F');
        this.last.fin[fromOrig ? 0 : 1] = rel + len;
      }
      if (rst) {
        if (h.check(fromOrig, HistoryKind.Rst, 'R') && rel !== this.last.rst[fromOrig ? 0 : 1]) h.add(fromOrig, 'R');
        this.last.rst[fromOrig ? 0 : 1] = rel;
      }
    } else if (len > 0 || ackSet) {
      if (h.text === 'H') {
        // a SYN-ACK first, then an ACK or data: the SYN-ACK's sender was the responder
        flipRoles();
        h.text = '^h';
        fromOrig = !fromOrig;
      }
      if (len > 0) h.check(fromOrig, HistoryKind.Data, 'D');
      else h.check(fromOrig, HistoryKind.Ack, 'A');
    }
    if (window === 0 && !rst && peer.state !== TcpState.Closed && ep.state !== TcpState.Reset) h.scaled(fromOrig, 'W');

    if (fin) ep.finCount++;
    // this packet's ACK acknowledges the peer's data
    if (ackSet && !rst) {
      if (peer.state === TcpState.Inactive && !peer.initialized) {
        peer.initialized = true;
        peer.fromPeer = true;
        peer.startSeq = peer.lastSeq = peer.ackSeq = ack32 - 1;
        peer.contiguous = ack32;
      } else if (peer.initialized) {
        const a = unwrap(ack32, peer.ackSeq);
        if (a > peer.ackSeq) peer.ackSeq = a;
      }
    }

    // the end of this segment in the sequence space, and retransmissions
    if (ep.state !== TcpState.Reset) {
      const end = seq + (rst ? 0 : len) + (syn ? 1 : 0) + (fin ? 1 : 0);
      const delta = end - ep.lastSeq;
      const jump = (syn || rst) && Math.abs(delta) > MAX_JUMP;
      if (!jump && !(fin && ep.lastSeq === ep.startSeq + 1 && delta <= 0)) {
        if (delta > 0) ep.lastSeq = end;
        else if (len > 0) h.scaled(fromOrig, 'T');
      }
      if (len > 0 && !rst) ep.seen(seq + (syn ? 1 : 0), seq + (syn ? 1 : 0) + len);
    }

    if (this.stateMachine(fromOrig, ep, peer, syn, fin, rst, ackSet, len)) flipRoles();

    // gaps: the peer's data this packet acknowledges that was never seen
    if (ackSet && !rst && peer.initialized && peer.ackSeq > peer.contiguous && this.orig.clean && this.resp.clean) {
      if (peer.acked(peer.ackSeq) > 0) h.scaled(!fromOrig, 'G');
    }

    if (fin || rst) ep.didClose = true;
  }

  /** Zeek's UpdateStateMachine for the sending endpoint; true when the roles must flip. */
  private stateMachine(fromOrig: boolean, ep: Endpoint, peer: Endpoint, syn: boolean, fin: boolean, rst: boolean, ack: boolean, len: number): boolean {
    let flip = false;
    switch (ep.state) {
      case TcpState.Inactive:
        if (syn) {
          if (fromOrig) {
            ep.setState(ack ? TcpState.SynAckSent : TcpState.SynSent);
          } else {
            if (!ack && peer.state === TcpState.SynAckSent) {
              flip = true; // SYN-ACK then SYN: the roles were the other way round
              peer.setState(TcpState.Established);
            } else if (peer.state === TcpState.SynSent) {
              peer.setState(TcpState.Established);
            }
            ep.setState(TcpState.Established);
          }
        }
        if (fin) ep.setState(TcpState.Closed);
        else if (rst) ep.setState(TcpState.Reset);
        else if (!syn) {
          if (!fromOrig && len === 0 && this.orig.state === TcpState.SynSent) break; // an ACK before the SYN-ACK
          if (ack && peer.state === TcpState.Established) ep.setState(TcpState.Established);
          else ep.setState(TcpState.Partial);
        }
        break;
      case TcpState.SynSent:
      case TcpState.SynAckSent:
        if (fin) ep.setState(TcpState.Closed);
        else if (rst) ep.setState(TcpState.Reset);
        break;
      case TcpState.Established:
      case TcpState.Partial:
        if (syn && !ack && ep.state === TcpState.Partial && peer.state === TcpState.Inactive) ep.setState(TcpState.SynSent);
        if (fin && !rst) {
          ep.setState(TcpState.Closed);
          if (peer.state === TcpState.Reset && peer.prevState === TcpState.Closed) peer.setState(TcpState.Closed);
        } else if (rst) {
          ep.setState(TcpState.Reset);
        }
        break;
      case TcpState.Closed:
        if (rst && peer.state !== TcpState.Closed) ep.setState(TcpState.Reset);
        break;
      case TcpState.Reset:
        break;
    }
    return flip;
  }

  /** Swaps the endpoints (the flow's roles flipped). */
  flip(): void {
    [this.orig, this.resp] = [this.resp, this.orig];
    this.last.syn.reverse();
    this.last.fin.reverse();
    this.last.rst.reverse();
  }

  origBytes(): number {
    return this.orig.size(this.resp.state === TcpState.Inactive);
  }

  respBytes(): number {
    return this.resp.size(this.orig.state === TcpState.Inactive);
  }

  missedBytes(): number {
    return this.orig.gapBytes + this.resp.gapBytes;
  }

  /** Zeek's conn_state() for TCP. */
  connState(): string {
    const os = this.orig.state;
    const rs = this.resp.state;
    const oInactive = os === TcpState.Inactive || os === TcpState.Partial;
    const rInactive = rs === TcpState.Inactive || rs === TcpState.Partial;
    if (rs === TcpState.Reset) {
      if (os === TcpState.SynSent || os === TcpState.SynAckSent || (os === TcpState.Reset && this.origBytes() === 0 && this.respBytes() === 0)) return 'REJ';
      return oInactive ? 'RSTRH' : 'RSTR';
    }
    if (os === TcpState.Reset) {
      if (rInactive) return /^\^?S[^HAFGIQ]*R.*$/.test(this.history.text) ? 'RSTOS0' : 'OTH';
      return 'RSTO';
    }
    if (rs === TcpState.Closed && os === TcpState.Closed) return 'SF';
    if (os === TcpState.Closed) return rInactive ? 'SH' : 'S2';
    if (rs === TcpState.Closed) return oInactive ? 'SHR' : 'S3';
    if (os === TcpState.SynSent && rs === TcpState.Inactive) return 'S0';
    if (os === TcpState.Established && rs === TcpState.Established) return 'S1';
    return 'OTH';
  }
}
