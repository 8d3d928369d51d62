// Wireshark's dissectors, through tshark: HTTP/1.x and HTTP/2 (HPACK, bodies, content
// encodings) inside TLS decrypted with the file's own keys (its Decryption Secrets Blocks),
// and TLS records. tshark's JSON output is read as it comes, one packet at a time.
import { spawn, spawnSync } from 'node:child_process';
import { TracedumpError } from '../errors';

/** One packet's protocol layers as tshark prints them (--no-duplicate-keys: repeated keys are arrays). */
export type Layers = Record<string, unknown>;

export interface TsharkPacket {
  /** 1-based frame number in its file. */
  frame: number;
  layers: Layers;
}

/** The protocols whose fields objects are made of (everything else is left out of the output). */
const PROTOCOLS = 'frame http http2 tls';
/** Only packets that carry any of them. */
const DISPLAY_FILTER = 'http || http2 || tls.app_data';

/** tshark's arguments for the packets objects are made of (the benchmark times them alone too). */
export function tsharkArgs(file: string): string[] {
  return ['-r', file, '-n', '-Q', '-T', 'json', '--no-duplicate-keys', '-J', PROTOCOLS, '-Y', DISPLAY_FILTER];
}

/** tshark's version ("4.0.17"), or a TracedumpError naming the package when it is not installed. */
export function tsharkVersion(): string {
  const r = spawnSync('tshark', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new TracedumpError("tracedump objects needs tshark (Wireshark's dissectors), and it is not installed", {
      code: 'ENOTSHARK',
      hint: 'install it: apt-get install tshark (Debian, Ubuntu) or dnf install wireshark-cli (Fedora)',
    });
  }
  const m = /TShark \(Wireshark\) (\d+\.\d+\.\d+)/.exec(r.stdout);
  return m ? m[1] : 'unknown';
}

/**
 * The packets of `file` that carry HTTP, HTTP/2 or TLS application data, dissected by tshark in
 * one pass, in frame order. Throws a TracedumpError when tshark fails (its own message).
 */
export async function* tsharkPackets(file: string): AsyncGenerator<TsharkPacket> {
  const child = spawn('tshark', tsharkArgs(file), { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s: string) => {
    if (stderr.length < 4096) stderr += s;
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  // tshark prints a JSON array, one element per packet, each starting at a line "  {" and
  // ending at a line "  }" or "  },": split there and parse each packet alone.
  let lines: string[] = [];
  let inPacket = false;
  let rest = '';
  child.stdout.setEncoding('utf8');
  try {
    for await (const chunk of child.stdout as AsyncIterable<string>) {
      const text = rest + chunk;
      const parts = text.split('\n');
      rest = parts.pop() as string;
      for (const line of parts) {
        if (!inPacket) {
          if (line === '  {') {
            inPacket = true;
            lines = ['{'];
          }
          continue;
        }
        if (line === '  }' || line === '  },') {
          inPacket = false;
          lines.push('}');
          const packet = JSON.parse(lines.join('\n')) as { _source?: { layers?: Layers } };
          const layers = packet._source?.layers ?? {};
          const frame = Number(first(field(layers.frame, 'frame.number')));
          yield { frame, layers };
          continue;
        }
        lines.push(line);
      }
    }
  } finally {
    if (child.exitCode === null) child.kill();
  }
  const code = await exited;
  if (code !== 0) {
    const said = stderr.split('\n').find((l) => l.trim() && !l.startsWith('Running as user')) ?? `exit status ${code}`;
    throw new TracedumpError(`tshark could not read ${file}: ${said.trim()}`, { code: 'ETSHARK', path: file });
  }
}

/** A field of a layer object (undefined when absent). */
export function field(layer: unknown, name: string): unknown {
  return layer && typeof layer === 'object' ? (layer as Record<string, unknown>)[name] : undefined;
}

/** The value, or its first occurrence when it repeats. */
export function first(v: unknown): unknown {
  return Array.isArray(v) ? v[0] : v;
}

/** Every occurrence as an array (none: empty). */
export function all(v: unknown): unknown[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

/** A field as a number (undefined when absent or not a number). */
export function num(v: unknown): number | undefined {
  const x = first(v);
  if (typeof x !== 'string' || x === '') return undefined;
  const n = Number(x);
  return Number.isFinite(n) ? n : undefined;
}

/** A field as a string (undefined when absent). */
export function str(v: unknown): string | undefined {
  const x = first(v);
  return typeof x === 'string' ? x : undefined;
}
