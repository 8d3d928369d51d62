// TLS connections the file has no keys for (no HTTP seen in them): one opaque object each, with
// the server name and ALPN of its ClientHello and its application-data record sizes per
// direction, the best estimate of the sizes of what went through it (TLS 1.3 also encrypts the
// end of its handshake in such records: the first few are the server's certificate and Finished).
import type { Flow } from '../flows/flow';
import { type ObjectRecord, objectBase } from './object-record';
import { type Layers, all, field, num } from './tshark';
import type { WalkedFrame } from './flow-walk';

interface Opaque {
  first: number;
  up: number[];
  down: number[];
}

const APPLICATION_DATA = 23;

export class TlsObjects {
  private readonly flows = new Map<Flow, Opaque>();

  constructor(
    private readonly emit: (r: ObjectRecord, flow: Flow) => void,
    /** Flows whose HTTP tshark decoded: not opaque. */
    private readonly decoded: WeakSet<Flow>,
  ) {}

  /** A packet tshark dissected: its application-data records that it could not decrypt. */
  frame(layers: Layers, at: WalkedFrame): void {
    for (const tls of all(layers.tls)) {
      for (const rec of all(field(tls, 'tls.record'))) {
        const r = rec as Layers;
        // a TLS 1.3 record's outer type is opaque_type. (Whether tshark decrypted it shows in
        // the HTTP it found in the flow, not here: it names an application protocol by the port
        // alone too.)
        const type = num(r['tls.record.opaque_type']) ?? num(r['tls.record.content_type']);
        if (type !== APPLICATION_DATA) continue;
        const length = num(r['tls.record.length']);
        if (length === undefined) continue;
        let o = this.flows.get(at.flow);
        if (!o) this.flows.set(at.flow, (o = { first: at.us, up: [], down: [] }));
        (at.flow.fromApp(at.fromOrig) ? o.up : o.down).push(length);
      }
    }
  }

  /** A flow ended: its opaque object, if it had any records tshark could not decrypt. */
  ended(flow: Flow): void {
    const o = this.flows.get(flow);
    if (!o) return;
    this.flows.delete(flow);
    if (this.decoded.has(flow)) return;
    const r = objectBase(flow, o.first, 'tls');
    const named = flow.serverName();
    if (named) r.server_name = named.name;
    const alpn = flow.inspector?.result.alpn;
    if (alpn?.length) r.alpn = alpn;
    r.up_records = o.up;
    r.down_records = o.down;
    r.up_bytes = o.up.reduce((a, b) => a + b, 0);
    r.down_bytes = o.down.reduce((a, b) => a + b, 0);
    r.complete = 'estimate';
    this.emit(r, flow);
  }
}
