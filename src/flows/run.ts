// `tracedump flows FILE...`: the flow records of pcap or pcapng files, read as one stream in
// the order given (a rotated capture's files end to end). (Its flags: cli/flows-program.ts.)
//
// Exit status: 0 every packet read; 1 a file is damaged after a good start (the flows of the
// packets before it are written); 2 a file is not a capture, cannot be opened, or the
// arguments are wrong.
import { printError } from '../output/fd-writer';
import { TracedumpError, errorText } from '../errors';
import { ExpressionFilter } from '../read/expression-filter';
import { LineBuffer } from '../read/line-buffer';
import { processInfo } from '../read/print';
import { type CaptureRecord, CaptureReader, ReadError } from '../read/reader';
import { hostPort } from '../text/endpoint';
import { quoteName } from '../text/quote';
import { type AggregateKey, FlowAggregate } from './aggregate';
import { FlowPacketReader, NO_PROCESS } from './flow-packet';
import { FlowTable } from './flow-table';
import { type FlowRecord, featureFields } from './flow-record';
import { type FlowFormat, type RowWriter, type TableColumn, flowFieldTypes, rowWriter } from './formats';

export const EXIT_FLOWS_DAMAGED = 1;
export const EXIT_FLOWS_FAILURE = 2;

export interface FlowsRequest {
  files: string[];
  expression?: string;
  format: FlowFormat;
  by?: AggregateKey;
  features: boolean;
  splt: number;
  idleSec: number;
  activeSec: number;
}

const pad2 = (n: number) => String(n).padStart(2, '0');

/** Epoch seconds as the tables show them (local time, milliseconds). */
export function clock(ts: number): string {
  const d = new Date(ts * 1000);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

/** 1234567 -> "1.2M": byte and packet counts in a table. */
export function humanCount(n: unknown): string {
  if (typeof n !== 'number') return '-';
  if (n < 10_000) return String(n);
  for (const [unit, size] of [
    ['G', 1e9],
    ['M', 1e6],
    ['k', 1e3],
  ] as const)
    if (n >= size) return `${(n / size).toFixed(n >= size * 100 ? 0 : 1)}${unit}`;
  return String(n);
}

/** The table of flows: one line each, the program's side first where the file says which it is. */
export const FLOW_COLUMNS: TableColumn[] = [
  { title: 'TIME', value: (r) => clock(r.ts as number) },
  { title: 'PID', value: (r) => String(r.pid ?? '-'), right: true },
  { title: 'COMM', value: (r) => String(r.comm ?? '-') },
  { title: 'PROTO', value: (r) => (r.service ? `${r.proto}/${r.service}` : String(r.proto)) },
  {
    title: 'FLOW',
    value: (r) => {
      const o = hostPort(String(r['id.orig_h']), r['id.orig_p'] as number);
      const s = hostPort(String(r['id.resp_h']), r['id.resp_p'] as number);
      return r.app_dir === 'resp' ? `${s} < ${o}` : `${o} > ${s}`;
    },
  },
  { title: 'STATE', value: (r) => String(r.conn_state) },
  { title: 'UP', value: (r) => humanCount(r.app_dir === undefined ? r.orig_bytes : r.up_bytes), right: true },
  { title: 'DOWN', value: (r) => humanCount(r.app_dir === undefined ? r.resp_bytes : r.down_bytes), right: true },
  { title: 'PKTS', value: (r) => `${r.app_dir === 'resp' ? r.resp_pkts : r.orig_pkts}/${r.app_dir === 'resp' ? r.orig_pkts : r.resp_pkts}`, right: true },
  { title: 'DURATION', value: (r) => (typeof r.duration === 'number' ? r.duration.toFixed(3) : '-'), right: true },
  { title: 'SERVER', value: (r) => (r.server_name ? `${r.server_name} (${r.server_name_source})` : '') },
];

function aggregateColumns(by: AggregateKey): TableColumn[] {
  return [
    { title: by.toUpperCase(), value: (r) => String(r[by]) },
    { title: 'FLOWS', value: (r) => String(r.flows), right: true },
    { title: 'PKTS UP', value: (r) => humanCount(r.pkts_up), right: true },
    { title: 'PKTS DOWN', value: (r) => humanCount(r.pkts_down), right: true },
    { title: 'BYTES UP', value: (r) => humanCount(r.bytes_up), right: true },
    { title: 'BYTES DOWN', value: (r) => humanCount(r.bytes_down), right: true },
    { title: 'FIRST', value: (r) => clock(r.first as number), right: true },
    { title: 'LAST', value: (r) => clock(r.last as number) },
  ];
}

const AGGREGATE_FIELDS = ['flows', 'pkts_up', 'pkts_down', 'bytes_up', 'bytes_down', 'first', 'last'];

/** Where the records go: the writer is made at the first record (the feature fields are known then). */
class FlowOutput {
  private writer: RowWriter | undefined;
  private readonly aggregate: FlowAggregate | undefined;

  constructor(
    private readonly r: FlowsRequest,
    private readonly out: LineBuffer,
  ) {
    this.aggregate = r.by ? new FlowAggregate(r.by) : undefined;
  }

  private make(sample: FlowRecord | undefined): RowWriter {
    const put = (s: string) => this.out.write(s);
    if (this.r.by) {
      const fields = [this.r.by, ...AGGREGATE_FIELDS];
      return rowWriter(this.r.format, put, { fields, types: fields.map(() => 'string'), columns: aggregateColumns(this.r.by) });
    }
    const { fields, types } = flowFieldTypes(sample ? featureFields(sample) : []);
    return rowWriter(this.r.format, put, { fields, types, columns: FLOW_COLUMNS, sortKey: (row) => row.ts as number });
  }

  record(rec: FlowRecord): void {
    if (this.aggregate) {
      this.aggregate.add(rec);
      return;
    }
    this.writer ??= this.make(rec);
    this.writer.write(rec);
  }

  end(): void {
    if (this.aggregate) {
      const rows = this.aggregate.rows();
      this.writer = this.make(undefined);
      for (const row of rows) this.writer.write(row);
    }
    (this.writer ?? this.make(undefined)).end();
    this.out.flush();
  }
}

export async function runFlows(r: FlowsRequest): Promise<number> {
  let matches: ExpressionFilter | undefined;
  try {
    matches = r.expression === undefined ? undefined : new ExpressionFilter(r.expression);
  } catch (err) {
    if (!(err instanceof TracedumpError)) throw err;
    printError(errorText(err));
    return EXIT_FLOWS_FAILURE;
  }
  const out = new LineBuffer();
  const output = new FlowOutput(r, out);
  const table = new FlowTable(
    { idleUs: r.idleSec * 1e6, activeUs: r.activeSec * 1e6, features: r.features, splt: r.splt },
    ({ record }) => output.record(record),
  );
  let status = 0;
  const packets = new FlowPacketReader();
  // the process of the packet being read (asked at most once per flow)
  let current: CaptureRecord | undefined;
  const processOfCurrent = () => (current ? processInfo(current) : NO_PROCESS);
  for (const file of r.files) {
    const label = file === '-' ? 'standard input' : quoteName(file);
    let reader: CaptureReader;
    try {
      reader = CaptureReader.open(file, undefined, { reuseRecords: true });
    } catch (err) {
      if (!(err instanceof ReadError)) throw err;
      printError(`${label}: ${err.message}`);
      status = Math.max(status, err.kind === 'truncated' ? EXIT_FLOWS_DAMAGED : EXIT_FLOWS_FAILURE);
      continue;
    }
    try {
      for (let rec = reader.next(); rec && !out.closed; rec = reader.next()) {
        if (matches && !matches.test(rec.iface, rec.data, rec.origLen)) continue;
        current = rec;
        const p = packets.readRecord(rec, processOfCurrent);
        if (p) table.add(p);
        else table.otherPackets++;
      }
    } catch (err) {
      if (err instanceof TracedumpError) {
        // the expression cannot be used on this file's link type
        printError(errorText(err));
        reader.close();
        return EXIT_FLOWS_FAILURE;
      }
      if (!(err instanceof ReadError)) throw err;
      printError(`${label}: ${err.message}`);
      status = Math.max(status, err.kind === 'notCapture' ? EXIT_FLOWS_FAILURE : EXIT_FLOWS_DAMAGED);
    } finally {
      reader.close();
    }
  }
  table.flush();
  output.end();
  return status;
}

