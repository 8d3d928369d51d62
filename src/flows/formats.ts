// Flow records (or aggregated rows) as text: JSON lines, CSV, Zeek's TSV log format (the
// #fields/#types header zeek-cut reads) and an aligned table for people.
import { FLOW_FIELDS, type FlowRecord, type FlowValue } from './flow-record';

export type FlowFormat = 'table' | 'json' | 'csv' | 'zeek';

/** Writes rows; end() finishes the output (a table's last rows, Zeek's #close line). */
export interface RowWriter {
  write(row: FlowRecord): void;
  end(): void;
}

type Out = (text: string) => void;

function jsonWriter(out: Out): RowWriter {
  return { write: (row) => out(JSON.stringify(row) + '\n'), end: () => undefined };
}

function csvCell(v: FlowValue | undefined): string {
  if (v === undefined) return '';
  const s = Array.isArray(v) ? v.join(',') : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Columns: the given ones (the records' fields in order, then feature fields as they come). */
function csvWriter(out: Out, fields: string[]): RowWriter {
  let header = false;
  return {
    write(row) {
      if (!header) {
        out(`${fields.map(csvCell).join(',')}\n`);
        header = true;
      }
      out(`${fields.map((f) => csvCell(row[f])).join(',')}\n`);
    },
    end() {
      if (!header) out(`${fields.map(csvCell).join(',')}\n`);
    },
  };
}

const zeekTime = (d: Date) =>
  `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}-${String(d.getUTCDate()).padStart(2, '0')}-${String(d.getUTCHours()).padStart(2, '0')}-${String(d.getUTCMinutes()).padStart(2, '0')}-${String(d.getUTCSeconds()).padStart(2, '0')}`;

/** Zeek's escaping of a string field: the separator, the set separator in sets, backslash, non-printables. */
function zeekString(s: string, inSet: boolean): string {
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0) as number;
    if (ch === '\\' || c < 0x20 || c === 0x7f || ch === '\t' || (inSet && ch === ',')) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return out === '-' ? '\\x2d' : out; // a lone '-' would read as unset
}

function zeekValue(v: FlowValue | undefined, type: string): string {
  if (v === undefined) return '-';
  if (Array.isArray(v)) return v.length ? v.map((x) => zeekString(String(x), true)).join(',') : '(empty)';
  if (type === 'time' || type === 'interval') return (v as number).toFixed(6);
  if (typeof v === 'number') return String(v);
  return v === '' ? '(empty)' : zeekString(v, false);
}

/** Zeek's ASCII log format (path "conn"), readable by zeek-cut. */
function zeekWriter(out: Out, fields: string[], types: string[]): RowWriter {
  out(
    [
      '#separator \\x09',
      '#set_separator\t,',
      '#empty_field\t(empty)',
      '#unset_field\t-',
      '#path\tconn',
      `#open\t${zeekTime(new Date())}`,
      `#fields\t${fields.join('\t')}`,
      `#types\t${types.join('\t')}`,
    ].join('\n') + '\n',
  );
  return {
    write: (row) => out(`${fields.map((f, i) => zeekValue(row[f], types[i])).join('\t')}\n`),
    end: () => out(`#close\t${zeekTime(new Date())}\n`),
  };
}

export interface TableColumn {
  title: string;
  value: (row: FlowRecord) => string;
  /** Right-aligned (numbers). */
  right?: boolean;
}

/**
 * An aligned table: the first rows are held to size the columns (and sorted by `sortKey`),
 * later rows stream with those widths.
 */
function tableWriter(out: Out, columns: TableColumn[], sortKey?: (row: FlowRecord) => number): RowWriter {
  const HOLD = 2000;
  let held: FlowRecord[] | undefined = [];
  let widths: number[] = [];
  const line = (cells: string[]) =>
    `${cells
      .map((c, i) => (i === cells.length - 1 ? c : columns[i].right ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd()}\n`;
  const release = () => {
    if (!held) return;
    const rows = sortKey ? held.sort((a, b) => sortKey(a) - sortKey(b)) : held;
    const cells = rows.map((r) => columns.map((c) => c.value(r)));
    widths = columns.map((c, i) => Math.max(c.title.length, ...cells.map((row) => row[i].length)));
    out(line(columns.map((c) => c.title)));
    for (const c of cells) out(line(c));
    held = undefined;
  };
  return {
    write(row) {
      if (held) {
        held.push(row);
        if (held.length >= HOLD) release();
      } else {
        out(line(columns.map((c) => c.value(row))));
      }
    },
    end: release,
  };
}

export function rowWriter(format: FlowFormat, out: Out, spec: { fields: string[]; types: string[]; columns: TableColumn[]; sortKey?: (row: FlowRecord) => number }): RowWriter {
  switch (format) {
    case 'json':
      return jsonWriter(out);
    case 'csv':
      return csvWriter(out, spec.fields);
    case 'zeek':
      return zeekWriter(out, spec.fields, spec.types);
    case 'table':
      return tableWriter(out, spec.columns, spec.sortKey);
  }
}

/** The Zeek types of the flow fields and of the feature fields. */
export function flowFieldTypes(featureNames: string[]): { fields: string[]; types: string[] } {
  const fields = FLOW_FIELDS.map(([n]) => n);
  const types = FLOW_FIELDS.map(([, t]) => t);
  for (const f of featureNames) {
    fields.push(f);
    types.push(f.startsWith('splt_') ? (f === 'splt_piat_ms' ? 'vector[double]' : 'vector[count]') : /_(ps|piat_ms)$/.test(f) ? 'double' : 'count');
  }
  return { fields, types };
}
