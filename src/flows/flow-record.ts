// One flow as written: Zeek conn.log's fields with its names and meanings, then tracedump's own
// (the process, the program's side, the server name and where it came from, TLS), then the
// classification features when asked. Unset fields are left out (Zeek's JSON does the same).

/** Field names in the order every format writes them, with their Zeek types. */
export const FLOW_FIELDS: readonly (readonly [string, string])[] = [
  ['ts', 'time'],
  ['uid', 'string'],
  ['id.orig_h', 'addr'],
  ['id.orig_p', 'port'],
  ['id.resp_h', 'addr'],
  ['id.resp_p', 'port'],
  ['proto', 'enum'],
  ['service', 'string'],
  ['duration', 'interval'],
  ['orig_bytes', 'count'],
  ['resp_bytes', 'count'],
  ['conn_state', 'string'],
  ['missed_bytes', 'count'],
  ['history', 'string'],
  ['orig_pkts', 'count'],
  ['orig_ip_bytes', 'count'],
  ['resp_pkts', 'count'],
  ['resp_ip_bytes', 'count'],
  ['community_id', 'string'],
  ['pid', 'count'],
  ['tid', 'count'],
  ['comm', 'string'],
  ['exe', 'string'],
  ['app_dir', 'string'],
  ['up_bytes', 'count'],
  ['down_bytes', 'count'],
  ['up_pkts', 'count'],
  ['down_pkts', 'count'],
  ['server_name', 'string'],
  ['server_name_source', 'string'],
  ['dns_chain', 'vector[string]'],
  ['tls_version', 'string'],
  ['alpn', 'vector[string]'],
];

export type FlowValue = string | number | string[] | number[];

/** A flow record: field name -> value; absent fields are unset. */
export type FlowRecord = Record<string, FlowValue>;

/** The feature fields (nfstream's names), in order, for tabular formats. */
export function featureFields(record: FlowRecord): string[] {
  return Object.keys(record).filter((k) => !FLOW_FIELD_NAMES.has(k));
}

export const FLOW_FIELD_NAMES: ReadonlySet<string> = new Set(FLOW_FIELDS.map(([n]) => n));
