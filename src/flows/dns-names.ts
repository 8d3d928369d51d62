// The names the traced program's own DNS answers gave to addresses, in capture order: a flow to
// an address takes the name (and CNAME chain) of the last answer for it before the flow began.
import { type DnsMessage, cnameChain } from '../packet/dns';

export interface DnsName {
  /** The name asked. */
  name: string;
  /** [name asked, CNAME targets...] up to the owner of the address records. */
  chain: string[];
}

/** DNS, mDNS and LLMNR: the ports whose datagrams are read as DNS messages. */
export const DNS_PORTS: ReadonlySet<number> = new Set([53, 5353, 5355]);

/** Addresses remembered at most (the oldest are forgotten first). */
const MAX_ADDRESSES = 200_000;

export class DnsNames {
  private readonly byAddress = new Map<string, DnsName>();

  /** A DNS response seen in the capture. */
  learn(msg: DnsMessage): void {
    if (!msg.response || msg.rcode !== 0 || !msg.question) return;
    const chain = cnameChain(msg);
    for (const r of msg.answers) {
      if (!r.address) continue;
      const key = r.address.toString('latin1');
      this.byAddress.delete(key); // re-inserted last: the newest answer wins, the oldest go first
      this.byAddress.set(key, { name: chain[0], chain });
      if (this.byAddress.size > MAX_ADDRESSES) this.byAddress.delete(this.byAddress.keys().next().value as string);
    }
  }

  /** The name of an address (latin1 address bytes), if an answer gave one. */
  lookup(address: string): DnsName | undefined {
    return this.byAddress.get(address);
  }
}
