// Timers for any delay a user can type. Node's timers hold at most 2^31-1 ms (24.8 days) and
// fire after 1 ms beyond that (so `--duration 2147484` stopped at once); a longer delay is
// waited in steps. Infinity never fires.

const MAX_STEP_MS = 2 ** 31 - 1;

export interface LongTimeout {
  clear(): void;
}

export function setLongTimeout(fn: () => void, ms: number): LongTimeout {
  let timer: NodeJS.Timeout | undefined;
  const due = performance.now() + ms;
  const arm = () => {
    const left = due - performance.now();
    if (left > MAX_STEP_MS) timer = setTimeout(arm, MAX_STEP_MS);
    else timer = setTimeout(fn, Math.max(0, left));
  };
  if (ms !== Infinity) arm();
  return {
    clear: () => {
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
  };
}

/** Resolves after ms (any length; Infinity: never). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setLongTimeout(resolve, ms));
}
