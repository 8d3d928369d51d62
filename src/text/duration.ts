// Durations as people write them: seconds, or a number with a unit (500ms, 10s, 5m, 2h, 1d).

const UNITS: Record<string, number> = { ms: 1e-3, s: 1, m: 60, h: 3600, d: 86400 };

/** What a duration may be, for messages. */
export const DURATION_FORMS = 'seconds, or a number with ms, s, m, h or d (e.g. 10s, 5m)';

/** Seconds, or undefined when the text is not a duration above 0. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  const n = m ? Number(m[1]) * UNITS[m[2] ?? 's'] : NaN;
  return Number.isFinite(n) && n > 0 ? n : undefined;
}
