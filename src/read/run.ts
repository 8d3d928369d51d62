// `tracedump read FILE`: one line per packet of a pcap or pcapng file, like `tcpdump -r`, with
// the process each packet belongs to (from tracedump's pcapng) in its own columns. (Its flags:
// cli/read-program.ts.)
//
// Exit status: 0 every packet read; 1 the file is damaged after a good start (cut short in the
// middle of a record, a block that cannot be right) — the whole packets before it are printed
// first; 2 it is not a capture file, cannot be opened, or the arguments are wrong.
import { printError } from '../output/fd-writer';
import { TracedumpError, errorText } from '../errors';
import { quoteName } from '../text/quote';
import { decode } from './decode';
import { ExpressionFilter } from './expression-filter';
import { LineBuffer } from './line-buffer';
import { Clock, type TimeStyle, jsonLine, processInfo, textLine } from './print';
import { CaptureReader, ReadError } from './reader';

export const EXIT_READ_DAMAGED = 1;
export const EXIT_READ_FAILURE = 2;


/** What `tracedump read` is asked (cli/read-program.ts makes it from the arguments). */
export interface ReadRequest {
  file: string;
  expression?: string;
  json: boolean;
  pids?: Set<number>;
  comms?: Set<string>;
  limit: number;
  timeStyle: TimeStyle;
  number: boolean;
}

export async function runRead(r: ReadRequest): Promise<number> {
  const { file, expression, pids, comms, limit } = r;
  const label = file === '-' ? 'standard input' : quoteName(file);
  let matches: ExpressionFilter | undefined;
  try {
    matches = expression === undefined ? undefined : new ExpressionFilter(expression);
  } catch (err) {
    if (!(err instanceof TracedumpError)) throw err;
    printError(errorText(err));
    return EXIT_READ_FAILURE;
  }
  const out = new LineBuffer();
  let reader: CaptureReader;
  try {
    // lines go out before each read: `tracedump -w - -- cmd | tracedump read -` prints as it comes
    reader = CaptureReader.open(file, () => out.flush());
  } catch (err) {
    if (err instanceof ReadError) {
      printError(`${label}: ${err.message}`);
      return err.kind === 'truncated' ? EXIT_READ_DAMAGED : EXIT_READ_FAILURE;
    }
    throw err;
  }

  const clock = new Clock(r.timeStyle);
  let printed = 0;
  let status = 0;
  try {
    while (printed < limit && !out.closed) {
      const rec = reader.next();
      if (!rec) break;
      const proc = processInfo(rec);
      if (pids && (proc.pid === null || !pids.has(proc.pid))) continue;
      if (comms && (proc.comm === null || !comms.has(proc.comm))) continue;
      if (matches && !matches.test(rec.iface, rec.data, rec.origLen)) continue;
      const d = decode(rec.iface.linktype, rec.data, rec.origLen, rec.flags);
      out.push(
        r.json
          ? jsonLine(rec, proc, d)
          : textLine(r.number ? rec.frame : undefined, clock.text(rec.sec, rec.nsec, rec.iface.digits), proc, d),
      );
      printed++;
    }
  } catch (err) {
    if (err instanceof TracedumpError) {
      out.flush();
      printError(errorText(err));
      reader.close();
      return EXIT_READ_FAILURE;
    }
    if (!(err instanceof ReadError)) throw err;
    out.flush(); // the whole packets first, then why the rest is missing
    printError(`${label}: ${err.message}`);
    status = err.kind === 'notCapture' ? EXIT_READ_FAILURE : EXIT_READ_DAMAGED;
  } finally {
    reader.close();
  }
  out.flush();
  return status;
}
