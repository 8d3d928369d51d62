// The direction of dependencies between src/'s folders (docs/design.md, "Source layout"): every
// relative import of src/**/*.ts is read, and an edge the table below does not allow, an import
// of a root module that is not one of the base ones, or a cycle between folders fails the test
// with the file that makes it.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';

const SRC = path.join(__dirname, '..', 'src');

/** Which folders each folder may import (besides itself and the base modules). */
const ALLOWED: Record<string, string[]> = {
  packet: [],
  text: [],
  filter: ['packet'],
  tracker: ['packet'],
  output: ['packet', 'text'],
  capture: ['packet', 'filter', 'tracker', 'output', 'text'],
  report: ['output', 'tracker', 'text'],
  tls: ['packet', 'capture'],
  events: ['text'],
  trace: ['text'],
  session: ['packet', 'filter', 'tracker', 'output', 'capture', 'report', 'tls', 'events', 'trace', 'text', 'flows'],
  read: ['packet', 'filter', 'capture', 'output', 'report', 'text'],
  flows: ['packet', 'read', 'output', 'text'],
  objects: ['packet', 'read', 'output', 'text', 'flows'],
  stats: ['packet', 'read', 'output', 'text', 'flows', 'objects'],
  campaign: ['packet', 'read', 'output', 'text', 'flows', 'objects', 'stats', 'trace'],
  extcap: [],
  cli: ['packet', 'filter', 'capture', 'output', 'report', 'text', 'read', 'events', 'tracker', 'tls', 'trace', 'session', 'flows', 'objects', 'stats', 'campaign', 'extcap'],
};

/**
 * Root modules any folder may import: the addon's loader and types, typed errors, and small
 * leaves. The rest of the root (the session, the tracees) is the top: no folder imports it.
 */
const BASE = new Set(['native', 'errors', 'version', 'environment', 'proc-file', 'long-timeout', 'stop-stats']);

function files(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? files(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

/** 'folder' for src/folder/..., 'root:name' for src/name.ts. */
function moduleOf(file: string): string {
  const rel = path.relative(SRC, file).replace(/\.ts$/, '');
  const parts = rel.split(path.sep);
  return parts.length === 1 ? `root:${parts[0]}` : parts[0];
}

interface Edge {
  from: string;
  to: string;
  file: string;
  line: number;
}

function edges(): Edge[] {
  const out: Edge[] = [];
  for (const file of files(SRC)) {
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    lines.forEach((text, i) => {
      for (const m of text.matchAll(/(?:import|export)\b[^'"]*?from\s+'(\.[^']+)'|import\s+'(\.[^']+)'|import\('(\.[^']+)'\)/g)) {
        const spec = m[1] ?? m[2] ?? m[3];
        const target = path.resolve(path.dirname(file), spec);
        const from = moduleOf(file);
        const to = moduleOf(fs.existsSync(`${target}.ts`) ? `${target}.ts` : path.join(target, 'index.ts'));
        if (from !== to) out.push({ from, to, file: path.relative(SRC, file), line: i + 1 });
      }
    });
  }
  return out;
}

t.test('every import between folders goes the allowed way', async (t) => {
  const all = edges();
  t.ok(all.length > 50, `imports read (${all.length} between modules)`);
  const bad: string[] = [];
  for (const e of all) {
    if (e.from === 'bench') continue; // the benchmark drives everything
    const toBase = e.to.startsWith('root:') && BASE.has(e.to.slice(5));
    if (e.from.startsWith('root:')) {
      // a base module imports only base modules; the top of the root imports anything
      if (BASE.has(e.from.slice(5)) && !toBase) bad.push(`${e.file}:${e.line}: base module ${e.from} imports ${e.to}`);
      continue;
    }
    if (toBase) continue;
    if (e.to.startsWith('root:')) bad.push(`${e.file}:${e.line}: ${e.from}/ imports the root's ${e.to.slice(5)}.ts (only the base modules: ${[...BASE].join(', ')})`);
    else if (!(ALLOWED[e.from] ?? []).includes(e.to)) bad.push(`${e.file}:${e.line}: ${e.from}/ -> ${e.to}/ is against the direction`);
  }
  t.same(bad, [], 'no edge against the direction');
  const folders = fs
    .readdirSync(SRC, { withFileTypes: true })
    .filter((e) => e.isDirectory() && e.name !== 'bench')
    .map((e) => e.name);
  t.same(folders.filter((f) => !(f in ALLOWED)), [], 'every folder of src/ has its row in the table');
});

t.test('no cycle between folders', async (t) => {
  const graph = new Map<string, Set<string>>();
  for (const e of edges()) {
    if (e.from.startsWith('root:') || e.to.startsWith('root:') || e.from === 'bench') continue;
    if (!graph.has(e.from)) graph.set(e.from, new Set());
    graph.get(e.from)!.add(e.to);
  }
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const visit = (n: string, trail: string[]) => {
    if (state.get(n) === 'done') return;
    if (state.get(n) === 'open') {
      cycles.push([...trail.slice(trail.indexOf(n)), n].join(' -> '));
      return;
    }
    state.set(n, 'open');
    for (const m of graph.get(n) ?? []) visit(m, [...trail, n]);
    state.set(n, 'done');
  };
  for (const n of graph.keys()) visit(n, []);
  t.same(cycles, [], 'the folders form no cycle');
});

t.test('the rule catches what it is meant to', async (t) => {
  // a sanity check of the reader itself: it sees the known edges
  const all = edges();
  t.ok(all.some((e) => e.from === 'capture' && e.to === 'packet'), 'capture/ -> packet/ is seen');
  t.ok(all.some((e) => e.from === 'tracker' && e.to === 'root:native'), 'tracker/ -> native.ts (types) is seen');
  t.notOk(all.some((e) => e.from === 'packet' && !e.to.startsWith('root:')), 'packet/ imports no folder');
});
