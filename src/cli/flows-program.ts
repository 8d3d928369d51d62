// `tracedump flows`'s flags (commander): names, meanings, validation and help text, and the
// arguments turned into a FlowsRequest for flows/run.ts.
import { Command, CommanderError, Option } from 'commander';
import { printError, writeAll, writeToReader } from '../output/fd-writer';
import { AGGREGATE_KEYS, type AggregateKey } from '../flows/aggregate';
import type { FlowFormat } from '../flows/formats';
import { EXIT_FLOWS_FAILURE, type FlowsRequest } from '../flows/run';
import { integer, seconds } from './arguments';

interface FlowsFlags {
  json?: boolean;
  csv?: boolean;
  zeek?: boolean;
  by?: AggregateKey;
  features?: boolean;
  splt: number;
  idle: number;
  active: number;
  filter?: string;
}

const HELP_AFTER = `
One record per flow (a TCP connection, a UDP or ICMP exchange between two ends), with Zeek's
conn.log fields and meanings (ts, uid, id.orig_h, id.orig_p, id.resp_h, id.resp_p, proto,
service, duration, orig_bytes, resp_bytes, conn_state, missed_bytes, history, orig_pkts,
orig_ip_bytes, resp_pkts, resp_ip_bytes, community_id) and tracedump's own: the process (pid,
tid, comm, exe, from tracedump's pcapng), app_dir (orig: the program opened the flow; resp: it
answered), up_bytes/down_bytes and up_pkts/down_pkts from the program's side, server_name and
server_name_source (sni, quic-sni, http-host, or dns: the program's own DNS answer, with
dns_chain, the CNAME chain), tls_version and alpn (the protocols the client offered).

Files are read one after the other as one capture (the files of -C or -G, in order). A flow
ends 5 s after its TCP connection closed or was reset, 5 s after an unanswered SYN, after
--idle without a packet, or after --active in all; the rest end with the input.

Examples:
  tracedump flows curl.pcapng
  tracedump flows --json app.pcapng | jq -r 'select(.proto=="tcp") | .server_name'
  tracedump flows --zeek app.pcapng > conn.log
  tracedump flows --by server browser.pcapng
  tracedump flows --features --csv -f 'tcp port 443' capture-*.pcapng > features.csv

Exit status: 0 all read; 1 a file is cut short or damaged (the flows of the packets before it
are written); 2 not a capture file, or bad arguments.`;

function buildFlowsProgram(): Command {
  return new Command('tracedump flows')
    .usage('[options] FILE... [-f expression]')
    .description('Print the flows of pcap or pcapng files: Zeek conn.log records with the process, the server name and TLS.')
    .helpOption('-h, --help', 'show this help')
    .option('--json', 'JSON lines (Zeek\'s JSON field names)')
    .option('--csv', 'CSV with a header line')
    .option('--zeek', "Zeek's TSV log format (#fields header: zeek-cut reads it)")
    .addOption(new Option('--by <key>', 'one row per process, app, server or proto: flows, packets and bytes up/down, first and last seen').choices(AGGREGATE_KEYS))
    .option('--features', "per-flow statistics for classifiers (nfstream's names): sizes, gaps, TCP flags, the first packets")
    .option('--splt <n>', 'with --features: how many first packets to list (default 10)', integer('splt', 0), 10)
    .option('--idle <seconds>', 'a flow without a packet this long ends (default 120)', seconds('idle'), 120)
    .option('--active <seconds>', 'a flow ends after this long in all, and another begins (default 1800)', seconds('active'), 1800)
    .option('-f, --filter <expression>', 'only packets matching a pcap-filter expression (as tcpdump; needs libpcap)')
    .argument('<file...>', "capture files ('-' for standard input)")
    .addHelpText('after', HELP_AFTER)
    .configureOutput({
      writeOut: (s) => writeToReader(1, s),
      writeErr: (s) => writeAll(2, s),
      outputError: (s, write) => write(s.replace(/^error: /, 'tracedump flows: ')),
    })
    .exitOverride();
}

/** The arguments after `flows`: a request, or the exit status (help, or an error said). */
export function parseFlowsArgs(argv: string[]): FlowsRequest | number {
  const program = buildFlowsProgram();
  try {
    program.parse(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : EXIT_FLOWS_FAILURE;
    throw err;
  }
  const opts = program.opts<FlowsFlags>();
  const formats = (['json', 'csv', 'zeek'] as const).filter((f) => opts[f]);
  if (formats.length > 1) {
    printError(`flows: --${formats.join(' and --')} cannot be used together; pick one output format`);
    return EXIT_FLOWS_FAILURE;
  }
  const format: FlowFormat = formats[0] ?? 'table';
  if (opts.by && format === 'zeek') {
    printError('flows: --by rows are not conn.log records; use --json, --csv or the table with --by');
    return EXIT_FLOWS_FAILURE;
  }
  return {
    files: program.args,
    expression: opts.filter,
    format,
    by: opts.by,
    features: !!opts.features,
    splt: opts.splt,
    idleSec: opts.idle,
    activeSec: opts.active,
  };
}
