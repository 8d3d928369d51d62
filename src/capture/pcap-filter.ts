// pcap-filter expressions (tcpdump's syntax) compiled by libpcap, which tracedump loads only
// when an expression is given: without libpcap installed, only -f and `read EXPR` fail, at once,
// naming the package to install.
import { TracedumpError } from '../errors';
import { native } from '../native';
import { quoteName } from '../text/quote';
import { LINKTYPE_RAW } from '../packet/link';


/** The compiled program (for packets that start at their IP header unless linktype says); `what` names where the expression came from (-f, read). */
export function compileFilter(expression: string, snaplen: number, what: string, linktype = LINKTYPE_RAW): Buffer {
  try {
    return native().compileFilter(expression, snaplen, linktype);
  } catch (err) {
    const e = err as { code?: string; message?: string };
    if (e.code === 'ELIBPCAP')
      throw new TracedumpError(`${what}: filter expressions need libpcap: ${e.message}`, {
        code: 'ELIBPCAP',
        hint: 'install it (Debian, Ubuntu: apt-get install libpcap0.8; Fedora: dnf install libpcap), or leave the expression out',
      });
    if (e.code === 'EPLATFORM') throw err;
    throw new TracedumpError(`${what} ${quoteName(`'${expression}'`)}: ${e.message ?? String(err)}`, { code: 'EUSAGE', hint: 'the syntax is pcap-filter(7), as in tcpdump' });
  }
}
