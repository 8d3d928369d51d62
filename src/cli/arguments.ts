// Validation of flag values, one definition for every command (capture and read): a value is
// refused with the same words wherever the flag appears.
import { InvalidArgumentError } from 'commander';
import { DURATION_FORMS, parseDuration } from '../text/duration';

/** The largest pid Linux gives (pid_max's ceiling, 2^22). */
export const MAX_PID = 4194304;

/** pid[,pid...], repeatable; each from 1 to MAX_PID, kept once. */
export function pidList(value: string, previous: number[] | undefined): number[] {
  const out = previous ? [...previous] : [];
  for (const part of value.split(',')) {
    const n = Number(part);
    if (!/^\d+$/.test(part.trim()) || !Number.isSafeInteger(n) || n < 1 || n > MAX_PID)
      throw new InvalidArgumentError(`'${part}' is not a process id (1 to ${MAX_PID})`);
    if (!out.includes(n)) out.push(n);
  }
  return out;
}

/** A whole number from min to max, named in the message. */
export function integer(name: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(max === Number.MAX_SAFE_INTEGER ? `${name} must be a whole number of at least ${min}` : `${name} must be a whole number from ${min} to ${max}`);
    return n;
  };
}

/** A number of seconds (fractions allowed), at least 0. */
export function seconds(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`${name} must be a number of seconds (>= 0)`);
    return n;
  };
}

/** A repeatable flag's values, in order. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return previous ? [...previous, value] : [value];
}

/** A positive duration: a number of seconds, or with a unit (500ms, 10s, 5m, 2h, 1d). */
export function duration(name: string) {
  return (value: string): number => {
    const n = parseDuration(value);
    if (n === undefined) throw new InvalidArgumentError(`${name} must be a duration above 0: ${DURATION_FORMS}`);
    return n;
  };
}
