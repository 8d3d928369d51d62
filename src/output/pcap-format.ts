// Classic pcap as a CaptureFormat: one header, one record per packet, nothing at the end.
import type { CaptureFormat } from './format';
import { type SllPacket, pcapFileHeader, pcapRecordSize, writePcapRecord } from './pcap';

const NO_OPTIONS = Buffer.alloc(0);

export function pcapFormat(snaplen: number): CaptureFormat {
  return {
    name: 'pcap',
    header: () => pcapFileHeader(snaplen),
    before: () => undefined,
    recordSize: (p: SllPacket) => pcapRecordSize(p),
    writeRecord: (out, at, p) => writePcapRecord(out, at, p),
    after: () => undefined,
    trailer: () => undefined,
    secrets: () => undefined, // classic pcap has no block for them
    known: {
      name: 'pcap',
      interfaceId: () => 0,
      ownerOptions: () => NO_OPTIONS,
      countRecords: () => {},
      encode: (out, at, p) => writePcapRecord(out, at, p),
    },
  };
}
