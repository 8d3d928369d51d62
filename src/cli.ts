// The command line: the only reader of argv and the only caller of process.exit.
import { Command, CommanderError, Option } from 'commander';
import { EXIT_TRACEDUMP_FAILURE, TracedumpError } from './errors';
import type { EventFormat } from './events/format';
import { printError, writeAll } from './output/fd-writer';
import { runSession } from './session';
import { version } from './version';

const EXAMPLES = `
Examples:
  sudo tracedump --events -- curl -s http://127.0.0.1:8080/
      print every socket call of curl (connect, bind, sendto...) with its endpoints
  sudo tracedump --events=json -- sh -c 'ping -c1 ::1; curl -s http://[::1]:8080/'
      JSON lines of the socket, fork, exec and exit events of a shell and its children

The exit status is the command's (128+N if a signal N killed it); 127: command not found,
126: it cannot be executed, 125: tracedump itself failed.`;

export interface CliOptions {
  events?: EventFormat;
}

function buildProgram(): Command {
  return new Command('tracedump')
    .usage('[options] [--] <command> [args...]')
    .description('Run a command and capture the network traffic of it and of every process and thread it starts.')
    .version(version, '-V, --version')
    .helpOption('-h, --help', 'show this help')
    .addOption(
      new Option('--events [format]', 'print socket and process events of the command on stderr')
        .choices(['text', 'json'])
        .preset('text'),
    )
    .argument('[command...]', 'the command to run, with its arguments')
    .passThroughOptions()
    .showSuggestionAfterError()
    .addHelpText('after', EXAMPLES)
    .configureOutput({
      writeOut: (s) => writeAll(1, s),
      writeErr: (s) => writeAll(2, s),
      outputError: (s, write) => write(s.replace(/^error: /, 'tracedump: ')),
    })
    .exitOverride();
}

// `--events` takes its format only as `--events=FORMAT`: `--events curl` must run curl.
function normalizeArgs(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--' || !a.startsWith('-')) return out.concat(args.slice(i));
    out.push(a === '--events' ? '--events=text' : a);
  }
  return out;
}

export async function main(argv: string[] = process.argv.slice(2)): Promise<number> {
  const program = buildProgram();
  try {
    program.parse(normalizeArgs(argv), { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) return 0; // --help, --version
      return EXIT_TRACEDUMP_FAILURE;
    }
    throw err;
  }
  const opts = program.opts<CliOptions>();
  const command: string[] = program.args;
  if (command.length === 0) {
    printError('no command given; try `tracedump --help`');
    return EXIT_TRACEDUMP_FAILURE;
  }
  try {
    return await runSession({
      command: { argv: command, cwd: process.cwd(), env: process.env },
      events: opts.events,
    });
  } catch (err) {
    if (err instanceof TracedumpError) {
      printError(err.message + (err.hint ? `\n  ${err.hint}` : ''));
      return err.exitStatus;
    }
    printError(`internal error: ${(err as Error).stack ?? err}`);
    return EXIT_TRACEDUMP_FAILURE;
  }
}

if (require.main === module) {
  main().then(
    (status) => process.exit(status),
    (err) => {
      printError(`internal error: ${(err as Error).stack ?? err}`);
      process.exit(EXIT_TRACEDUMP_FAILURE);
    },
  );
}
