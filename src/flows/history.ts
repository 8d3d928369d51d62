// Zeek's connection history string: one letter per kind of event, uppercase from the
// originator and lowercase from the responder, most letters once per side, some again at the
// 10th, 100th... occurrence, and '^' where the roles were flipped.

/** The kinds of events that add a letter once per side. */
export const enum HistoryKind {
  Syn = 1,
  Fin = 2,
  Rst = 4,
  Ack = 8,
  Data = 16,
  FinRst = 32,
  Multi = 64,
}

export class History {
  text = '';
  /** Kinds seen (bits), by role at the time (Zeek does not swap these on a flip either). */
  private seenOrig = 0;
  private seenResp = 0;
  private readonly counts = new Map<string, { n: number; next: number }>();

  private letter(fromOrig: boolean, code: string): string {
    return fromOrig ? code.toUpperCase() : code.toLowerCase();
  }

  add(fromOrig: boolean, code: string): void {
    this.text += this.letter(fromOrig, code);
  }

  /**
   * Zeek's CheckHistory: the first event of `kind` (a HistoryKind bit) from this side adds
   * `code`; returns whether the kind was seen before (a SYN and a SYN-ACK share a kind).
   */
  check(fromOrig: boolean, kind: number, code: string): boolean {
    const seen = fromOrig ? this.seenOrig : this.seenResp;
    if (seen & kind) return true;
    if (fromOrig) this.seenOrig |= kind;
    else this.seenResp |= kind;
    this.add(fromOrig, code);
    return false;
  }

  /** At the 1st, 10th, 100th... occurrence from this side (retransmissions, zero windows, gaps). */
  scaled(fromOrig: boolean, code: string): void {
    const key = `${fromOrig ? 'o' : 'r'}${code}`;
    const c = this.counts.get(key) ?? { n: 0, next: 1 };
    c.n++;
    if (c.n === c.next) {
      this.add(fromOrig, code);
      c.next *= 10;
    }
    this.counts.set(key, c);
  }

  flipped(): void {
    this.text += '^';
  }
}
