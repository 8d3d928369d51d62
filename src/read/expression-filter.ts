// A pcap-filter expression applied to the frames of a file, as `tcpdump -r FILE EXPR` does:
// used by `tracedump read` and `tracedump flows`.
import { TracedumpError } from '../errors';
import { compileFilter } from '../capture/pcap-filter';
import { native } from '../native';
import type { CaptureInterface } from './reader';

/**
 * The expression, compiled by libpcap for each link type the file's interfaces have (a pcapng
 * file may mix them), and run on each frame as tcpdump -r does.
 */
export class ExpressionFilter {
  private readonly programs = new Map<string, Buffer>();

  constructor(private readonly expression: string) {
    // libpcap missing fails before the file is read; the expression itself is checked for each
    // link type (`ether host` is fine for Ethernet, not for raw IP)
    try {
      compileFilter(expression, 262144, 'read');
    } catch (err) {
      if ((err as TracedumpError).code === 'ELIBPCAP') throw err;
    }
  }

  test(iface: CaptureInterface, frame: Buffer, wireLength: number): boolean {
    const key = `${iface.linktype}/${iface.snaplen}`;
    let program = this.programs.get(key);
    if (!program) {
      program = compileFilter(this.expression, iface.snaplen || 262144, `read (link type ${iface.linktype})`, iface.linktype);
      this.programs.set(key, program);
    }
    return native().filterMatches(program, frame, wireLength);
  }
}
