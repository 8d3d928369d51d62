// Zeek's connection history string: one letter per kind of event, uppercase from the
// originator and lowercase from the responder, most letters once per side, some again at the
// 10th, 100th... occurrence, and '^' where the roles were flipped.

export class History {
  text = '';
  /** Letters seen, by role at the time (Zeek does not swap these on a flip either). */
  private readonly seen = [new Set<string>(), new Set<string>()];
  private readonly counts = new Map<string, { n: number; next: number }>();

  private letter(fromOrig: boolean, code: string): string {
    return fromOrig ? code.toUpperCase() : code.toLowerCase();
  }

  add(fromOrig: boolean, code: string): void {
    this.text += this.letter(fromOrig, code);
  }

  /**
   * Zeek's CheckHistory: the first event of `kind` from this side adds `code`; returns whether
   * the kind was seen before (kinds may share: a SYN and a SYN-ACK are both 'syn').
   */
  check(fromOrig: boolean, kind: string, code: string): boolean {
    const seen = this.seen[fromOrig ? 0 : 1];
    if (seen.has(kind)) return true;
    seen.add(kind);
    this.add(fromOrig, code);
    return false;
  }

  /** Once per side. */
  once(fromOrig: boolean, code: string): void {
    this.check(fromOrig, code, code);
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
