// One application-level object as written: what it was (an HTTP exchange, a DNS question and
// its answer, a TLS connection the file has no keys for), its flow and its process. Unset
// fields are left out, as in flow records.
import type { Flow } from '../flows/flow';
import type { FlowRecord } from '../flows/flow-record';

/** Field names in the order the formats write them. */
export const OBJECT_FIELDS: readonly string[] = [
  'ts',
  'uid',
  'community_id',
  'pid',
  'comm',
  'exe',
  'kind',
  'version',
  'method',
  'scheme',
  'host',
  'path',
  'status',
  'req_content_type',
  'req_content_encoding',
  'req_header_bytes',
  'req_body_bytes',
  'resp_content_type',
  'resp_content_encoding',
  'resp_header_bytes',
  'resp_body_bytes',
  'resp_body_decoded_bytes',
  'resp_first_ts',
  'resp_last_ts',
  'complete',
  'query',
  'qtype',
  'rcode',
  'answers',
  'dns_chain',
  'latency',
  'server_name',
  'alpn',
  'up_records',
  'down_records',
  'up_bytes',
  'down_bytes',
];

export type ObjectRecord = FlowRecord;

/** An object's first fields: when, its flow, its process, what kind. */
export function objectBase(flow: Flow, us: number, kind: 'http' | 'dns' | 'tls'): ObjectRecord {
  const r: ObjectRecord = { ts: us / 1e6, uid: flow.uid(), community_id: flow.communityId() };
  const p = flow.process;
  if (p?.pid != null) r.pid = p.pid;
  if (p?.comm != null) r.comm = p.comm;
  if (p?.exe != null) r.exe = p.exe;
  r.kind = kind;
  return r;
}
