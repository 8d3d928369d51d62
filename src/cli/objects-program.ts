// `tracedump objects`'s flags (commander): names, meanings, validation and help text, and the
// arguments turned into an ObjectsRequest for objects/run.ts.
import { Command, CommanderError } from 'commander';
import { printError, writeAll, writeToReader } from '../output/fd-writer';
import { EXIT_OBJECTS_FAILURE, type ObjectsRequest } from '../objects/run';
import { seconds } from './arguments';

interface ObjectsFlags {
  json?: boolean;
  csv?: boolean;
  idle: number;
  active: number;
}

const HELP_AFTER = `
One record per object the program exchanged, tied to its flow (uid and community_id, as in
tracedump flows) and its process (pid, comm, exe):

  http  an HTTP/1.x or HTTP/2 request and its response, in clear or in TLS decrypted with the
        keys in the file: method, scheme, host, path, status, content types and encodings,
        header and body sizes (resp_body_bytes on the wire, resp_body_decoded_bytes once its
        content encoding is undone), ts (the request), resp_first_ts and resp_last_ts;
  dns   a DNS question and its answer: query, qtype, rcode, answers, dns_chain, latency;
  tls   a TLS connection the file has no keys for: server_name, alpn, and the sizes of its
        application-data records up and down (an estimate of what it carried).

Wireshark's dissectors do the HTTP, HTTP/2 and TLS work: tshark must be installed. Each file
is read on its own (a flow cut by a file boundary is two flows here).

Examples:
  tracedump objects curl.pcapng
  tracedump objects --json browser.pcapng | jq -r 'select(.kind=="http") | [.status, .host, .path] | @tsv'
  tracedump objects --csv app.pcapng > objects.csv

Exit status: 0 all read; 1 a file is cut short or damaged; 2 tshark is missing, not a capture
file, or bad arguments.`;

function buildObjectsProgram(): Command {
  return new Command('tracedump objects')
    .usage('[options] FILE...')
    .description('Print the HTTP exchanges, DNS questions and opaque TLS connections of pcap or pcapng files, with their flows and processes.')
    .helpOption('-h, --help', 'show this help')
    .option('--json', 'JSON lines')
    .option('--csv', 'CSV with a header line')
    .option('--idle <seconds>', 'a flow without a packet this long ends (default 120, as in tracedump flows)', seconds('idle'), 120)
    .option('--active <seconds>', 'a flow ends after this long in all (default 1800)', seconds('active'), 1800)
    .argument('<file...>', 'capture files')
    .addHelpText('after', HELP_AFTER)
    .configureOutput({
      writeOut: (s) => writeToReader(1, s),
      writeErr: (s) => writeAll(2, s),
      outputError: (s, write) => write(s.replace(/^error: /, 'tracedump objects: ')),
    })
    .exitOverride();
}

/** The arguments after `objects`: a request, or the exit status (help, or an error said). */
export function parseObjectsArgs(argv: string[]): ObjectsRequest | number {
  const program = buildObjectsProgram();
  try {
    program.parse(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : EXIT_OBJECTS_FAILURE;
    throw err;
  }
  const opts = program.opts<ObjectsFlags>();
  if (opts.json && opts.csv) {
    printError('objects: --json and --csv cannot be used together; pick one output format');
    return EXIT_OBJECTS_FAILURE;
  }
  if (program.args.includes('-')) {
    printError('objects: standard input cannot be read twice (tshark and tracedump both read the file); give a file name');
    return EXIT_OBJECTS_FAILURE;
  }
  return { files: program.args, format: opts.json ? 'json' : opts.csv ? 'csv' : 'table', idleSec: opts.idle, activeSec: opts.active };
}
