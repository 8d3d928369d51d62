// `tracedump campaign run|ls|show|export` (commander): names, meanings, validation and help
// text; runs the campaign or reads its catalogue.
import fs from 'node:fs';
import path from 'node:path';
import { Command, CommanderError } from 'commander';
import { TracedumpError, errorText } from '../errors';
import { printError, writeAll, writeToReader } from '../output/fd-writer';
import { rowWriter } from '../flows/formats';
import { humanCount } from '../flows/run';
import { LineBuffer } from '../read/line-buffer';
import { collect } from './arguments';

export const EXIT_CAMPAIGN_FAILURE = 2;
/** Some runs are left (interrupted, disk full): run the same command again. */
export const EXIT_CAMPAIGN_UNFINISHED = 1;

const HELP_AFTER = `
A campaign runs the commands of a plan (YAML) under tracedump, each as often as it says,
unattended, and keeps each run in a directory of its own: capture.pcapng (the label and run id
in its section comment), flows.jsonl, objects.jsonl (with tshark), meta.json (the command, its
package and version, how it ended, the capture's figures, the host, the sha256 of every file)
and the program's and driver's output. A catalogue (catalog.sqlite) holds every run, flow and
object. Run the same command again after any stop: finished runs are kept, the rest are done.

  plan.yaml:
    parallel: 1
    defaults: { duration: 30s, repeat: 3 }
    runs:
      - label: curl-example
        command: [curl, -s, https://example.com/]
      - label: firefox
        command: firefox --headless https://example.com/
        duration: 20s

Commands:
  campaign run PLAN.yaml [-o DIR]   run the plan (DIR: the plan's output, or PLAN.campaign)
  campaign ls DIR [--label L]       list the runs with their figures
  campaign show DIR RUN_ID          one run's meta.json (an id prefix will do)
  campaign export DIR --flows|--objects [--label L]... [--json|--csv]
  campaign push DIR --to postgres://USER@HOST:PORT/DB   the catalogue into PostgreSQL (again: what is missing)

Examples:
  sudo tracedump campaign run apps.yaml
  tracedump campaign ls apps.campaign
  tracedump campaign export apps.campaign --flows --label firefox --csv > firefox-flows.csv
  tracedump stats --html report.html apps.campaign

The plan format and the catalogue's schema: docs/campaigns.md.
Exit status: 0 every run done; 1 interrupted or the disk full (run it again); 2 a bad plan or bad arguments.`;

function program(): Command {
  return new Command('tracedump campaign')
    .usage('run PLAN.yaml [-o DIR] [--catalog URL] | ls DIR | show DIR RUN_ID | export DIR --flows|--objects | push DIR --to URL')
    .description('Labelled captures of many applications, unattended, with their metadata, in a catalogue.')
    .helpOption('-h, --help', 'show this help')
    .option('-o, --output <dir>', "run: where the runs go (instead of the plan's output:)")
    .option('--label <label>', 'ls, export: only these labels (repeatable)', collect)
    .option('--catalog <url>', 'run: also put each run in this PostgreSQL catalogue (postgres://USER@HOST:PORT/DB)')
    .option('--to <url>', 'push: the PostgreSQL catalogue to put the campaign in')
    .option('--flows', 'export: the flow records')
    .option('--objects', 'export: the objects')
    .option('--json', 'export, ls: JSON lines')
    .option('--csv', 'export, ls: CSV with a header line')
    .argument('<action>', 'run, ls, show or export')
    .argument('<target>', 'the plan (run) or the campaign directory')
    .argument('[run_id]', 'show: the run')
    .addHelpText('after', HELP_AFTER)
    .configureOutput({
      writeOut: (s) => writeToReader(1, s),
      writeErr: (s) => writeAll(2, s),
      outputError: (s, write) => write(s.replace(/^error: /, 'tracedump campaign: ')),
    })
    .exitOverride();
}

interface Flags {
  output?: string;
  catalog?: string;
  to?: string;
  label?: string[];
  flows?: boolean;
  objects?: boolean;
  json?: boolean;
  csv?: boolean;
}

/** `tracedump campaign ARGS`: its exit status. */
export async function campaign(argv: string[], cliModule: string): Promise<number> {
  const p = program();
  try {
    p.parse(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : EXIT_CAMPAIGN_FAILURE;
    throw err;
  }
  const o = p.opts<Flags>();
  const [action, target, runId] = p.args;
  try {
    switch (action) {
      case 'run':
        return await run(target, o, cliModule);
      case 'ls':
        return list(target, o);
      case 'show':
        return show(target, runId);
      case 'export':
        return exportRecords(target, o);
      case 'push':
        return await push(target, o);
      default:
        throw new TracedumpError(`campaign: no action "${action}"`, { code: 'EUSAGE', hint: 'run, ls, show, export or push (tracedump campaign --help)' });
    }
  } catch (err) {
    if (!(err instanceof TracedumpError)) throw err;
    printError(errorText(err));
    return EXIT_CAMPAIGN_FAILURE;
  }
}

async function run(planFile: string, o: Flags, cliModule: string): Promise<number> {
  const { readPlan } = require('../campaign/plan') as typeof import('../campaign/plan');
  const { runCampaign } = require('../campaign/campaign') as typeof import('../campaign/campaign');
  const plan = readPlan(planFile, o.output);
  if (process.getuid?.() !== 0) throw new TracedumpError('campaign run captures, and captures need root', { code: 'EPERM', hint: `sudo tracedump campaign run ${planFile}` });
  const { CampaignStop } = require('../campaign/run-one') as typeof import('../campaign/run-one');
  let r: Awaited<ReturnType<typeof runCampaign>>;
  try {
    r = await runCampaign(plan, { tracedump: tracedumpCommand(cliModule), progressFd: 2, postgres: o.catalog });
  } catch (err) {
    if (!(err instanceof CampaignStop)) throw err;
    printError(`campaign stopped: ${errorText(err)}`);
    return EXIT_CAMPAIGN_UNFINISHED;
  }
  const left = r.total - r.done - r.skipped;
  if (r.stopped) {
    printError(`campaign stopped: ${r.stopped}\n  ${r.done + r.skipped} of ${r.total} runs done; run the same command again to do the ${left} left`);
    return EXIT_CAMPAIGN_UNFINISHED;
  }
  printError(`campaign: ${r.total} runs done (${r.done} now, ${r.skipped} before) in ${plan.output}`);
  return 0;
}

/**
 * How a campaign starts each run's tracedump: through the launcher, as a user would (it hands
 * the run's environment to the command and keeps NODE_OPTIONS and the like from tracedump's
 * own Node); the CLI module itself where there is no launcher.
 */
function tracedumpCommand(cliModule: string): string[] {
  const launcher = path.join(path.dirname(cliModule), '..', 'bin', 'tracedump');
  return fs.existsSync(launcher) ? [launcher] : [process.execPath, cliModule];
}

function openCatalog(dir: string): import('../campaign/catalog').Catalog {
  const { CATALOG_FILE, Catalog } = require('../campaign/catalog') as typeof import('../campaign/catalog');
  const file = path.join(dir, CATALOG_FILE);
  if (!fs.existsSync(file)) throw new TracedumpError(`${dir} is not a campaign directory (no ${CATALOG_FILE})`, { code: 'EUSAGE', hint: 'tracedump campaign run PLAN.yaml makes one' });
  return new Catalog(file);
}

function list(dir: string, o: Flags): number {
  const catalog = openCatalog(dir);
  try {
    const out = new LineBuffer();
    const fields = ['run_id', 'label', 'repeat', 'started', 'seconds', 'end_reason', 'exit_status', 'packets', 'bytes', 'drops', 'flows', 'objects', 'dir'];
    const w = rowWriter(o.json ? 'json' : o.csv ? 'csv' : 'table', (s) => out.write(s), {
      fields,
      types: fields.map(() => 'string'),
      columns: [
        { title: 'RUN', value: (r) => String(r.run_id).slice(0, 8) },
        { title: 'LABEL', value: (r) => String(r.label) },
        { title: '#', value: (r) => String(r.repeat), right: true },
        { title: 'STARTED', value: (r) => String(r.started).replace('T', ' ').slice(0, 19) },
        { title: 'SECONDS', value: (r) => Number(r.seconds).toFixed(1), right: true },
        { title: 'END', value: (r) => String(r.end_reason) },
        { title: 'STATUS', value: (r) => String(r.exit_status ?? '-'), right: true },
        { title: 'PACKETS', value: (r) => humanCount(r.packets), right: true },
        { title: 'BYTES', value: (r) => humanCount(r.bytes), right: true },
        { title: 'DROPS', value: (r) => String(r.drops ?? '-'), right: true },
        { title: 'FLOWS', value: (r) => String(r.flows), right: true },
        { title: 'OBJECTS', value: (r) => String(r.objects), right: true },
      ],
    });
    for (const r of catalog.runs(o.label)) w.write(r as unknown as Record<string, number>);
    w.end();
    out.flush();
    return 0;
  } finally {
    catalog.close();
  }
}

function show(dir: string, runId: string | undefined): number {
  if (!runId) throw new TracedumpError('campaign show: which run? give its id (tracedump campaign ls lists them)', { code: 'EUSAGE' });
  const catalog = openCatalog(dir);
  try {
    const r = catalog.run(runId);
    if (!r) throw new TracedumpError(`campaign show: no run, or more than one, has an id starting "${runId}" in ${dir}`, { code: 'EUSAGE', hint: 'tracedump campaign ls lists them' });
    writeToReader(1, `${JSON.stringify(r.meta, null, 2)}\n`);
    return 0;
  } finally {
    catalog.close();
  }
}

async function push(dir: string, o: Flags): Promise<number> {
  if (!o.to) throw new TracedumpError('campaign push: where to? --to postgres://USER@HOST:PORT/DB', { code: 'EUSAGE' });
  const { pushCatalog } = require('../campaign/postgres') as typeof import('../campaign/postgres');
  const catalog = openCatalog(dir);
  try {
    const r = await pushCatalog(catalog, o.to, (run, pushed) => writeAll(2, `campaign push: run ${run.label} #${run.repeat} ${pushed ? 'stored' : 'there already'}\n`));
    printError(`campaign push: ${r.pushed} runs stored, ${r.already} there already`);
    return 0;
  } finally {
    catalog.close();
  }
}

function exportRecords(dir: string, o: Flags): number {
  if (!!o.flows === !!o.objects) throw new TracedumpError('campaign export: --flows or --objects (one of them)', { code: 'EUSAGE' });
  if (o.csv && o.json) throw new TracedumpError('campaign export: --json or --csv, not both', { code: 'EUSAGE' });
  const catalog = openCatalog(dir);
  try {
    const out = new LineBuffer();
    const table = o.flows ? 'flows' : 'objects';
    const { FLOW_FIELDS } = require('../flows/flow-record') as typeof import('../flows/flow-record');
    const { OBJECT_FIELDS } = require('../objects/object-record') as typeof import('../objects/object-record');
    const fields = ['run_id', 'label', ...(o.flows ? FLOW_FIELDS.map(([n]) => n) : OBJECT_FIELDS)];
    const w = rowWriter(o.csv ? 'csv' : 'json', (s) => out.write(s), { fields, types: fields.map(() => 'string'), columns: [] });
    for (const rec of catalog.records(table, o.label ?? [])) {
      w.write(rec as Record<string, number>);
      if (out.closed) break;
    }
    w.end();
    out.flush();
    return 0;
  } finally {
    catalog.close();
  }
}
