// `tracedump objects FILE...`: the application-level objects of capture files (HTTP exchanges,
// DNS questions, opaque TLS connections), each tied to its flow and process. tshark dissects;
// the flow walk reads the same file alongside it. (Its flags: cli/objects-program.ts.)
//
// Exit status: 0 every file read; 1 a file is damaged after a good start; 2 tshark is missing,
// a file is not a capture or cannot be opened, or the arguments are wrong.
import { TracedumpError, errorText } from '../errors';
import { printError } from '../output/fd-writer';
import { clock, humanCount } from '../flows/run';
import { type FlowFormat, type TableColumn, rowWriter } from '../flows/formats';
import { LineBuffer } from '../read/line-buffer';
import { OBJECT_FIELDS, type ObjectRecord } from './object-record';
import { SCAN_FAILED, scanCapture, scanFailure } from './scan';
import { tsharkVersion } from './tshark';

export const EXIT_OBJECTS_FAILURE = SCAN_FAILED;

export interface ObjectsRequest {
  files: string[];
  format: Exclude<FlowFormat, 'zeek'>;
  idleSec: number;
  activeSec: number;
}

/** What the object was: the request line, the question, or the TLS server. */
function what(r: ObjectRecord): string {
  if (r.kind === 'http') return `${r.method} ${r.scheme}://${r.host ?? '?'}${r.path}`;
  if (r.kind === 'dns') return `${r.qtype} ${r.query}`;
  return `TLS ${r.server_name ?? '?'}${r.alpn ? ` (${(r.alpn as string[]).join(',')})` : ''}`;
}

function result(r: ObjectRecord): string {
  if (r.kind === 'http') return r.status === undefined ? '-' : String(r.status);
  if (r.kind === 'dns') return r.rcode === undefined ? 'no answer' : `${r.rcode} ${((r.answers as string[]) ?? []).join(',')}`;
  return `${(r.up_records as number[]).length}/${(r.down_records as number[]).length} records`;
}

export const OBJECT_COLUMNS: TableColumn[] = [
  { title: 'TIME', value: (r) => clock(r.ts as number) },
  { title: 'PID', value: (r) => String(r.pid ?? '-'), right: true },
  { title: 'COMM', value: (r) => String(r.comm ?? '-') },
  { title: 'KIND', value: (r) => (r.kind === 'http' ? `http/${r.version}` : String(r.kind)) },
  { title: 'OBJECT', value: what },
  { title: 'RESULT', value: result },
  { title: 'TYPE', value: (r) => String(r.resp_content_type ?? '') },
  { title: 'UP', value: (r) => humanCount(r.kind === 'tls' ? r.up_bytes : r.req_body_bytes), right: true },
  { title: 'DOWN', value: (r) => humanCount(r.kind === 'tls' ? r.down_bytes : r.resp_body_bytes), right: true },
  {
    title: 'TIME TAKEN',
    value: (r) => {
      const end = r.kind === 'http' ? r.resp_last_ts : undefined;
      if (typeof end === 'number') return `${((end - (r.ts as number)) * 1000).toFixed(1)} ms`;
      if (typeof r.latency === 'number') return `${(r.latency * 1000).toFixed(1)} ms`;
      return '';
    },
    right: true,
  },
];

export async function runObjects(r: ObjectsRequest): Promise<number> {
  try {
    tsharkVersion();
  } catch (err) {
    if (!(err instanceof TracedumpError)) throw err;
    printError(errorText(err));
    return EXIT_OBJECTS_FAILURE;
  }
  const out = new LineBuffer();
  const writer = rowWriter(r.format, (s) => out.write(s), {
    fields: [...OBJECT_FIELDS],
    types: OBJECT_FIELDS.map(() => 'string'),
    columns: OBJECT_COLUMNS,
    sortKey: (row) => row.ts as number,
  });
  let status = 0;
  for (const file of r.files) {
    try {
      await scanCapture(file, { idleSec: r.idleSec, activeSec: r.activeSec, objects: true }, { object: (rec) => writer.write(rec), stopped: () => out.closed });
    } catch (err) {
      status = Math.max(status, scanFailure(file, err));
    }
  }
  writer.end();
  out.flush();
  return status;
}
