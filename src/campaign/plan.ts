// A campaign plan (YAML): the runs to make, each a labelled command with its capture options,
// repeated, with defaults for all. Read with the `yaml` package (positions of every node), and
// checked whole before anything runs: each error names the file, the line and the field.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { type Document, isMap, isScalar, isSeq, LineCounter, type Node, parseDocument, type YAMLMap } from 'yaml';
import { TracedumpError } from '../errors';
import { DURATION_FORMS, parseDuration } from '../text/duration';
import { resolveCommand } from '../trace/resolve-command';

export interface CaptureSpec {
  /** -f: a pcap-filter expression. */
  filter?: string;
  /** -s */
  snaplen?: number;
  /** -B, KiB */
  ring?: number;
}

export interface DisplaySpec {
  width: number;
  height: number;
}

/** A command: an argv, or a line for `sh -c`. */
export type CommandSpec = { argv: string[] } | { shell: string };

export interface RunSpec {
  label: string;
  command: CommandSpec;
  repeat: number;
  /** Seconds: the program is stopped after this (SIGTERM), then killed after `grace`. */
  duration: number | undefined;
  grace: number;
  user: string | undefined;
  env: Record<string, string>;
  cwd: string | undefined;
  display: DisplaySpec | undefined;
  /** Run beside the program to drive it; its exit ends the run. */
  driver: CommandSpec | undefined;
  before: CommandSpec | undefined;
  after: CommandSpec | undefined;
  tlsKeys: boolean;
  capture: CaptureSpec;
}

export interface Plan {
  file: string;
  /** sha256 of the plan's bytes. */
  hash: string;
  /** Where the runs go. */
  output: string;
  parallel: number;
  runs: RunSpec[];
}

const RUN_FIELDS = ['label', 'command', 'repeat', 'duration', 'grace', 'user', 'env', 'cwd', 'display', 'driver', 'before', 'after', 'tls_keys', 'capture'] as const;
const DEFAULT_FIELDS = RUN_FIELDS.filter((f) => f !== 'label' && f !== 'command');
const TOP_FIELDS = ['output', 'parallel', 'defaults', 'runs'];
const CAPTURE_FIELDS = ['filter', 'snaplen', 'ring'];
const DISPLAY_DEFAULT: DisplaySpec = { width: 1280, height: 800 };

export class PlanError extends TracedumpError {
  constructor(readonly problems: string[]) {
    super(problems.length === 1 ? `bad plan: ${problems[0]}` : `bad plan, ${problems.length} problems:\n  ${problems.join('\n  ')}`, {
      code: 'EPLAN',
      hint: 'the plan format: docs/campaigns.md',
    });
  }
}

/** Reads and checks a plan; throws a PlanError listing every problem found. */
export function readPlan(file: string, outputOverride?: string): Plan {
  let text: Buffer;
  try {
    text = fs.readFileSync(file);
  } catch (err) {
    throw new TracedumpError(`cannot read the plan ${file}: ${(err as Error).message}`, { code: 'EPLAN', path: file });
  }
  const lines = new LineCounter();
  const doc = parseDocument(text.toString('utf8'), { lineCounter: lines, prettyErrors: false });
  const problems: string[] = [];
  const name = path.basename(file);
  const at = (node: Node | null | undefined): string => {
    const offset = node?.range?.[0];
    return offset === undefined ? name : `${name}:${lines.linePos(offset).line}`;
  };
  for (const e of doc.errors) problems.push(`${name}:${lines.linePos(e.pos[0]).line}: ${e.message.split('\n')[0]}`);
  if (problems.length) throw new PlanError(problems);
  const checker = new Checker(at, problems, path.dirname(path.resolve(file)));
  const plan = checker.plan(doc, file, crypto.createHash('sha256').update(text).digest('hex'), outputOverride);
  if (problems.length || !plan) throw new PlanError(problems);
  return plan;
}

class Checker {
  constructor(
    private readonly at: (n: Node | null | undefined) => string,
    private readonly problems: string[],
    private readonly baseDir: string,
  ) {}

  private bad(node: Node | null | undefined, field: string, what: string): undefined {
    this.problems.push(`${this.at(node)}: ${field}: ${what}`);
    return undefined;
  }

  plan(doc: Document, file: string, hash: string, outputOverride: string | undefined): Plan | undefined {
    const root = doc.contents;
    if (!isMap(root)) return this.bad(root, 'the plan', 'must be a mapping with runs: (and optionally output:, parallel:, defaults:)');
    this.unknown(root, TOP_FIELDS, '');
    const output = outputOverride ?? (this.str(root.get('output', true) as Node, 'output') || `${path.basename(file).replace(/\.ya?ml$/, '')}.campaign`);
    const parallel = this.count(root.get('parallel', true) as Node, 'parallel', 1, 64) ?? 1;
    const defaultsNode = root.get('defaults', true) as Node | undefined;
    let defaults: YAMLMap | undefined;
    if (defaultsNode !== undefined) {
      if (isMap(defaultsNode)) {
        defaults = defaultsNode;
        this.unknown(defaults, DEFAULT_FIELDS, 'defaults.');
      } else this.bad(defaultsNode, 'defaults', 'must be a mapping of run fields');
    }
    const runsNode = root.get('runs', true) as Node | undefined;
    if (!isSeq(runsNode) || runsNode.items.length === 0) {
      this.bad(runsNode ?? root, 'runs', 'must be a list of runs, each with a label and a command');
      return undefined;
    }
    const runs: RunSpec[] = [];
    const commands = new Map<string, string>();
    runsNode.items.forEach((item, i) => {
      const where = `runs[${i}]`;
      if (!isMap(item)) return this.bad(item as Node, where, 'must be a mapping (label:, command:, ...)');
      this.unknown(item, RUN_FIELDS, `${where}.`);
      const run = this.run(item, defaults, where);
      if (!run) return;
      const key = JSON.stringify(run.command);
      const before = commands.get(run.label);
      if (before !== undefined && before !== key)
        this.bad(item.get('label', true) as Node, `${where}.label`, `"${run.label}" is used twice with different commands: a label names one program`);
      commands.set(run.label, key);
      runs.push(run);
    });
    return { file: path.resolve(file), hash, output: path.resolve(this.baseDir, output), parallel, runs };
  }

  private run(m: YAMLMap, defaults: YAMLMap | undefined, where: string): RunSpec | undefined {
    const get = (f: string): Node | undefined => (m.has(f) ? (m.get(f, true) as Node) : (defaults?.get(f, true) as Node | undefined));
    const fieldName = (f: string) => (m.has(f) ? `${where}.${f}` : `defaults.${f}`);
    const labelNode = m.get('label', true) as Node | undefined;
    const label = this.str(labelNode, `${where}.label`);
    if (label === undefined) {
      if (labelNode === undefined) this.bad(m, `${where}.label`, 'is missing: every run needs a label');
      return undefined;
    }
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(label)) return this.bad(labelNode, `${where}.label`, `"${label}" must be letters, digits, '.', '_' or '-' (it names the runs' directories)`);
    const commandNode = m.get('command', true) as Node | undefined;
    if (commandNode === undefined) return this.bad(m, `${where}.command`, 'is missing: an argv list or a shell line');
    const command = this.command(commandNode, `${where}.command`, true);
    if (!command) return undefined;
    const display = get('display');
    return {
      label,
      command,
      repeat: this.count(get('repeat'), fieldName('repeat'), 1, 100_000) ?? 1,
      duration: this.seconds(get('duration'), fieldName('duration')),
      grace: this.seconds(get('grace'), fieldName('grace')) ?? 5,
      user: this.str(get('user'), fieldName('user')),
      env: this.env(get('env'), fieldName('env')),
      cwd: this.str(get('cwd'), fieldName('cwd')),
      display: display === undefined ? undefined : this.display(display, fieldName('display')),
      driver: get('driver') === undefined ? undefined : this.command(get('driver') as Node, fieldName('driver'), true),
      before: get('before') === undefined ? undefined : this.command(get('before') as Node, fieldName('before'), false),
      after: get('after') === undefined ? undefined : this.command(get('after') as Node, fieldName('after'), false),
      tlsKeys: this.bool(get('tls_keys'), fieldName('tls_keys')) ?? true,
      capture: this.capture(get('capture'), fieldName('capture')),
    };
  }

  private unknown(m: YAMLMap, allowed: readonly string[], prefix: string): void {
    for (const pair of m.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      if (!allowed.includes(key)) this.bad(pair.key as Node, `${prefix}${key}`, `unknown field (the fields here: ${allowed.join(', ')})`);
    }
  }

  private str(n: Node | undefined, field: string): string | undefined {
    if (n === undefined) return undefined;
    if (isScalar(n) && (typeof n.value === 'string' || typeof n.value === 'number')) return String(n.value);
    return this.bad(n, field, 'must be a string');
  }

  private bool(n: Node | undefined, field: string): boolean | undefined {
    if (n === undefined) return undefined;
    if (isScalar(n) && typeof n.value === 'boolean') return n.value;
    return this.bad(n, field, 'must be true or false');
  }

  private count(n: Node | undefined, field: string, min: number, max: number): number | undefined {
    if (n === undefined) return undefined;
    const v = isScalar(n) ? n.value : undefined;
    if (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max) return v;
    return this.bad(n, field, `must be a whole number from ${min} to ${max} (got ${JSON.stringify(isScalar(n) ? n.value : 'a ' + n.constructor.name)})`);
  }

  /** A duration: seconds (a YAML number), or text as `--duration`-like options take it ("30 s" too). */
  private seconds(n: Node | undefined, field: string): number | undefined {
    if (n === undefined) return undefined;
    const v = isScalar(n) ? n.value : undefined;
    if (typeof v === 'number' && v > 0) return v;
    const s = typeof v === 'string' ? parseDuration(v.trim().replace(/^(\d+(?:\.\d+)?)\s+(?=[a-z]+$)/, '$1')) : undefined;
    return s ?? this.bad(n, field, `must be a duration above 0: ${DURATION_FORMS} (got ${JSON.stringify(v)})`);
  }

  private env(n: Node | undefined, field: string): Record<string, string> {
    if (n === undefined) return {};
    if (!isMap(n)) return this.bad(n, field, 'must be a mapping of NAME: value') ?? {};
    const out: Record<string, string> = {};
    for (const pair of n.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : '';
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
        this.bad(pair.key as Node, `${field}.${key}`, 'is not a variable name');
        continue;
      }
      const v = pair.value as Node;
      if (isScalar(v) && v.value !== null && typeof v.value !== 'object') out[key] = String(v.value);
      else this.bad(v, `${field}.${key}`, 'must be a string');
    }
    return out;
  }

  private display(n: Node, field: string): DisplaySpec | undefined {
    if (isScalar(n) && n.value === 'virtual') return { ...DISPLAY_DEFAULT };
    if (isMap(n)) {
      this.unknown(n, ['width', 'height'], `${field}.`);
      return {
        width: this.count(n.get('width', true) as Node, `${field}.width`, 64, 16384) ?? DISPLAY_DEFAULT.width,
        height: this.count(n.get('height', true) as Node, `${field}.height`, 64, 16384) ?? DISPLAY_DEFAULT.height,
      };
    }
    return this.bad(n, field, 'must be "virtual" or a mapping with width: and height:');
  }

  private capture(n: Node | undefined, field: string): CaptureSpec {
    if (n === undefined) return {};
    if (!isMap(n)) return this.bad(n, field, 'must be a mapping (filter:, snaplen:, ring:)') ?? {};
    this.unknown(n, CAPTURE_FIELDS, `${field}.`);
    return {
      filter: this.str(n.get('filter', true) as Node, `${field}.filter`),
      snaplen: this.count(n.get('snaplen', true) as Node, `${field}.snaplen`, 0, 262144),
      ring: this.count(n.get('ring', true) as Node, `${field}.ring`, 1024, 16 * 1024 * 1024),
    };
  }

  /** argv (a list) or a shell line (a string); the program must exist (checked for argv, and for a shell line's first word when it is a plain word). */
  private command(n: Node, field: string, mustExist: boolean): CommandSpec | undefined {
    let spec: CommandSpec;
    if (isSeq(n)) {
      const argv = n.items.map((x) => (isScalar(x) && x.value !== null && typeof x.value !== 'object' ? String(x.value) : undefined));
      if (argv.length === 0 || argv.some((a) => a === undefined)) return this.bad(n, field, 'must be a list of strings (the program, then its arguments)');
      spec = { argv: argv as string[] };
    } else if (isScalar(n) && typeof n.value === 'string' && n.value.trim()) {
      spec = { shell: n.value };
    } else return this.bad(n, field, 'must be a list (argv) or a string (a shell line)');
    const program = 'argv' in spec ? spec.argv[0] : /^\s*([A-Za-z0-9_./+-]+)(\s|$)/.exec(spec.shell)?.[1];
    if (mustExist && program && !/^(exec|cd|export|for|while|if|set|env)$/.test(program)) {
      try {
        resolveCommand(program, process.env.PATH ?? '/usr/bin:/bin', this.baseDir);
      } catch (err) {
        return this.bad(n, field, `${(err as Error).message}`);
      }
    }
    return spec;
  }
}
