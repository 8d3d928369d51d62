// `tracedump stats`'s flags (commander): names, meanings, validation and help text, and the
// arguments turned into a StatsRequest for stats/run.ts.
import { Command, CommanderError, Option } from 'commander';
import { printError, writeAll, writeToReader } from '../output/fd-writer';
import { GROUP_KEYS, type GroupKey } from '../stats/collect';
import { EXIT_STATS_FAILURE, type StatsRequest } from '../stats/run';
import { duration, seconds } from './arguments';

interface StatsFlags {
  json?: boolean;
  csv?: boolean;
  by?: GroupKey;
  app: 'command' | 'comm';
  window?: number;
  model?: string;
  compare?: boolean;
  html?: string;
  orgs?: string;
  idle: number;
  active: number;
}

const HELP_AFTER = `
The per-application model of captures: for each application (the label of a campaign run, or
the command tracedump captured; --app comm: each process name), the distributions of

  flow_bytes_up, flow_bytes_down   bytes of each flow from the program's side (as tracedump flows)
  flow_duration                    seconds
  objects_per_flow                 HTTP exchanges in each flow that had any
  object_size, object_size[TYPE]   response body bytes on the wire, all and per content type
  object_gap                       seconds between the starts of consecutive HTTP exchanges

with count, mean, min, p5, p25, p50, p75, p95, p99 (interpolated: numpy's and R's default), max
and the standard family that fits best (log-normal, Pareto, exponential, Weibull; D is the
Kolmogorov-Smirnov distance). Object metrics need tshark (tracedump objects).

--by domain|org|type|proto splits them by destination (registrable domain; organisation, from
Ghostery's tracker database and your --orgs file, through the server name's CNAME chain), by
content type, or by protocol. --window 10s gives the bytes up and down (IP bytes) per window.
--model writes the model (quantile tables, histograms with their bin edges, fitted parameters,
windows, destinations) as JSON for a simulator; --compare A.json B.json shows how two differ.
--html writes a report with charts that opens offline.

Examples:
  tracedump stats curl.pcapng
  tracedump stats --by org --json runs/
  tracedump stats --window 10s browser.pcapng
  tracedump stats --model firefox.json --html firefox.html runs/firefox/
  tracedump stats --compare monday.json tuesday.json

Exit status: 0 all read; 1 a file is cut short or damaged; 2 no capture found, not a capture
file, an unreadable model, or bad arguments.`;

function buildStatsProgram(): Command {
  return new Command('tracedump stats')
    .usage('[options] FILE|DIR...   |   --compare A.json B.json')
    .description('Print the per-application model of captures: distributions of flow and object sizes, durations and gaps; windows; destinations.')
    .helpOption('-h, --help', 'show this help')
    .option('--json', 'JSON lines')
    .option('--csv', 'CSV with a header line')
    .addOption(new Option('--by <key>', 'split by destination domain, organisation, content type or protocol').choices(GROUP_KEYS))
    .addOption(new Option('--app <key>', 'what an application is: the run (its label or command) or each process name').choices(['command', 'comm']).default('command'))
    .option('--window <duration>', 'bytes up and down per application per window (e.g. 10s, 1m)', duration('--window'))
    .option('--model <file>', 'write the model as JSON to file')
    .option('--compare', 'compare two model files (the arguments) instead')
    .option('--html <file>', 'write a self-contained HTML report with charts to file')
    .option('--orgs <file>', 'your own domain -> organisation map (JSON, or lines "domain organisation"), before the built-in one')
    .option('--idle <seconds>', 'a flow without a packet this long ends (default 120)', seconds('idle'), 120)
    .option('--active <seconds>', 'a flow ends after this long in all (default 1800)', seconds('active'), 1800)
    .argument('<input...>', 'capture files or directories of them (searched for .pcap and .pcapng)')
    .addHelpText('after', HELP_AFTER)
    .configureOutput({
      writeOut: (s) => writeToReader(1, s),
      writeErr: (s) => writeAll(2, s),
      outputError: (s, write) => write(s.replace(/^error: /, 'tracedump stats: ')),
    })
    .exitOverride();
}

/** The arguments after `stats`: a request, or the exit status (help, or an error said). */
export function parseStatsArgs(argv: string[]): StatsRequest | number {
  const program = buildStatsProgram();
  try {
    program.parse(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : EXIT_STATS_FAILURE;
    throw err;
  }
  const o = program.opts<StatsFlags>();
  if (o.json && o.csv) {
    printError('stats: --json and --csv cannot be used together; pick one output format');
    return EXIT_STATS_FAILURE;
  }
  const format = o.json ? 'json' : o.csv ? 'csv' : 'table';
  if (o.compare) {
    if (program.args.length !== 2) {
      printError(`stats: --compare takes two model files, not ${program.args.length}: tracedump stats --compare a.json b.json`);
      return EXIT_STATS_FAILURE;
    }
    if (o.model || o.html || o.window || o.by) {
      printError('stats: --compare reads two models: --model, --html, --window and --by do not apply');
      return EXIT_STATS_FAILURE;
    }
    return { inputs: [], format, app: o.app, compare: [program.args[0], program.args[1]], idleSec: o.idle, activeSec: o.active };
  }
  if (program.args.includes('-')) {
    printError('stats: standard input cannot be read (each file is read twice, by tshark and by tracedump); give a file name');
    return EXIT_STATS_FAILURE;
  }
  return { inputs: program.args, format, by: o.by, app: o.app, windowSec: o.window, model: o.model, html: o.html, orgs: o.orgs, idleSec: o.idle, activeSec: o.active };
}
