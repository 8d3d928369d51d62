// Renders tracer events as concise text lines (strace -f style) or JSON lines.
import { signalName } from '../errors';
import type { Endpoint, TraceEvent } from '../native';
import { hostPort } from '../text/endpoint';

export type EventFormat = 'text' | 'json';

export function formatEndpoint(e: Endpoint | null): string {
  return e ? hostPort(e.address, e.port) : '*';
}

function clock(ms: number): string {
  const d = new Date(ms);
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  const micros = Math.floor((ms % 1000) * 1000);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(micros, 6)}`;
}

function who(e: { pid: number; tid: number }, comm?: string, thread?: string): string {
  const id = e.tid && e.tid !== e.pid ? `${e.pid}/${e.tid}` : `${e.pid}`;
  const name = thread && thread !== comm ? `${comm}:${thread}` : comm;
  return name ? `[${id} ${name}]` : `[${id}]`;
}

function result(r: number | null, errno?: string): string {
  if (r === null) return '';
  return r < 0 ? ` = -1 ${errno ?? `E${-r}`}` : ` = ${r}`;
}

/** One line per event, or undefined for events not shown in text (thread exits, done). */
export function formatText(e: TraceEvent): string | undefined {
  const t = clock(e.time);
  switch (e.kind) {
    case 'socket': {
      const remote =
        e.remotes.length === 0 ? '' : ` -> ${e.remotes.map(formatEndpoint).join(', ')}`;
      const local = formatEndpoint(e.local);
      return `${t} ${who(e, e.comm, e.threadName)} ${e.call}(${e.fd}) ${e.proto}${e.family} ${local}${remote}${result(e.result, e.errno)}`;
    }
    case 'attach':
      return `${t} ${who(e, e.comm)} attached (${e.threads} thread${e.threads === 1 ? '' : 's'}) ${e.exe}`;
    case 'spawn':
      return `${t} ${who(e, e.comm)} ${e.thread ? 'thread' : e.how} ${e.child}`;
    case 'exec':
      return `${t} ${who(e, e.comm)} exec ${e.exe}`;
    case 'exit':
      if (e.tid !== e.pid) return undefined;
      if (e.signal !== null) return `${t} ${who(e, e.comm)} killed by ${signalName(e.signal)}${e.core ? ' (core dumped)' : ''}`;
      return `${t} ${who(e, e.comm)} exit ${e.code}`;
    case 'warning':
      return `${t} ${who(e)} warning: ${e.message}`;
    case 'pending':
    case 'done':
      return undefined;
  }
}

/**
 * Epoch seconds with microseconds as a string ("1765087200.123456"), the format of `time` in
 * `tracedump read --json` (there with the file's precision).
 */
export function epochMicros(ms: number): string {
  let sec = Math.floor(ms / 1000);
  let us = Math.round((ms - sec * 1000) * 1000);
  if (us >= 1_000_000) [sec, us] = [sec + 1, us - 1_000_000];
  return `${sec}.${String(us).padStart(6, '0')}`;
}

export function formatJson(e: TraceEvent): string | undefined {
  if (e.kind === 'done' || e.kind === 'pending') return undefined;
  if (e.kind === 'socket') {
    const { ruleGeneration: _internal, entry: _merged, ...shown } = e; // the controller's bookkeeping
    return JSON.stringify({ ...shown, time: epochMicros(e.time) });
  }
  return JSON.stringify({ ...e, time: epochMicros(e.time) });
}

export function formatter(format: EventFormat): (e: TraceEvent) => string | undefined {
  return format === 'json' ? formatJson : formatText;
}
