// DNS questions and their answers, from the program's own DNS messages (the packet layer's DNS
// parser, as the flow table's server names use): one object per question, with the answers,
// the CNAME chain, the response code and how long the answer took.
import type { Flow } from '../flows/flow';
import { DNS_PORTS } from '../flows/dns-names';
import type { FlowPacket } from '../flows/flow-packet';
import { formatAddress } from '../packet/address';
import { type DnsMessage, cnameChain, parseDns } from '../packet/dns';
import { IPPROTO_UDP } from '../packet/protocols';
import { type ObjectRecord, objectBase } from './object-record';

const TYPE_NAMES = new Map([
  [1, 'A'],
  [2, 'NS'],
  [5, 'CNAME'],
  [6, 'SOA'],
  [12, 'PTR'],
  [15, 'MX'],
  [16, 'TXT'],
  [28, 'AAAA'],
  [33, 'SRV'],
  [64, 'SVCB'],
  [65, 'HTTPS'],
  [255, 'ANY'],
]);
const RCODE_NAMES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];

interface Question {
  flow: Flow;
  record: ObjectRecord;
  us: number;
}

export class DnsObjects {
  // questions waiting for their answer, by flow and message id
  private readonly waiting = new Map<Flow, Map<number, Question>>();

  constructor(private readonly emit: (r: ObjectRecord, flow: Flow) => void) {}

  packet(flow: Flow, p: FlowPacket): void {
    if (p.proto !== IPPROTO_UDP || !(DNS_PORTS.has(p.sport) || DNS_PORTS.has(p.dport))) return;
    const msg = parseDns(p.payload);
    if (!msg?.question) return;
    let questions = this.waiting.get(flow);
    if (!msg.response) {
      if (!questions) this.waiting.set(flow, (questions = new Map()));
      const r = objectBase(flow, p.us, 'dns');
      r.query = msg.question.name;
      r.qtype = typeName(msg.question.type);
      const earlier = questions.get(msg.id);
      if (earlier) this.finish(earlier, undefined); // asked again with the same id: the first went unanswered
      questions.set(msg.id, { flow, record: r, us: p.us });
      return;
    }
    const q = questions?.get(msg.id);
    if (!q || q.record.query !== msg.question.name) return;
    questions?.delete(msg.id);
    this.finish(q, msg, p.us);
  }

  /** A flow ended: its questions without an answer are written so. */
  ended(flow: Flow): void {
    const questions = this.waiting.get(flow);
    if (!questions) return;
    for (const q of questions.values()) this.finish(q, undefined);
    this.waiting.delete(flow);
  }

  private finish(q: Question, answer: DnsMessage | undefined, us?: number): void {
    const r = q.record;
    if (answer && us !== undefined) {
      r.rcode = RCODE_NAMES[answer.rcode] ?? String(answer.rcode);
      r.answers = answer.answers.map((a) => (a.address ? formatAddress(a.address.toString('latin1')) : (a.target ?? typeName(a.type))));
      const chain = cnameChain(answer);
      if (chain.length > 1) r.dns_chain = chain;
      r.latency = (us - q.us) / 1e6;
      r.complete = 'yes';
    } else {
      r.complete = 'no';
    }
    this.emit(r, q.flow);
  }
}

function typeName(t: number): string {
  return TYPE_NAMES.get(t) ?? `TYPE${t}`;
}
