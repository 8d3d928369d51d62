// Classic pcap with nanosecond timestamps and LINUX_SLL2 link headers (they keep the
// interface index and the direction). Pure: it only makes bytes.

export const LINKTYPE_LINUX_SLL2 = 276;
export const PCAP_MAGIC_NSEC = 0xa1b23c4d;
export const SLL2_HEADER_SIZE = 20;
export const PCAP_RECORD_HEADER_SIZE = 16;

export function pcapFileHeader(snaplen: number, linktype = LINKTYPE_LINUX_SLL2): Buffer {
  const b = Buffer.alloc(24);
  b.writeUInt32LE(PCAP_MAGIC_NSEC, 0);
  b.writeUInt16LE(2, 4);
  b.writeUInt16LE(4, 6);
  b.writeInt32LE(0, 8); // thiszone
  b.writeUInt32LE(0, 12); // sigfigs
  b.writeUInt32LE(snaplen + SLL2_HEADER_SIZE, 16);
  b.writeUInt32LE(linktype, 20);
  return b;
}

export interface SllPacket {
  sec: number;
  nsec: number;
  /** Length on the wire of the network-layer packet. */
  len: number;
  ifindex: number;
  /** Ethertype of the network layer (0x0800 IPv4, 0x86dd IPv6). */
  protocol: number;
  /** ARPHRD_* type of the interface. */
  hatype: number;
  /** PACKET_* direction (0 to us, 4 outgoing). */
  pkttype: number;
  /** The packet from its network header. */
  data: Buffer;
}

/** Bytes one record takes. */
export function pcapRecordSize(p: SllPacket): number {
  return PCAP_RECORD_HEADER_SIZE + SLL2_HEADER_SIZE + p.data.length;
}

/** Writes one record at `at` in `out` (which must have room); returns the next offset. */
export function writePcapRecord(out: Buffer, at: number, p: SllPacket): number {
  out.writeUInt32LE(p.sec, at);
  out.writeUInt32LE(p.nsec, at + 4);
  out.writeUInt32LE(p.data.length + SLL2_HEADER_SIZE, at + 8);
  out.writeUInt32LE(p.len + SLL2_HEADER_SIZE, at + 12);
  const h = at + PCAP_RECORD_HEADER_SIZE;
  writeSll2Header(out, h, p);
  p.data.copy(out, h + SLL2_HEADER_SIZE);
  return h + SLL2_HEADER_SIZE + p.data.length;
}

/** The 20-byte LINUX_SLL2 header of a packet (pcap and pcapng alike). */
export function writeSll2Header(out: Buffer, h: number, p: SllPacket): void {
  out.writeUInt16BE(p.protocol, h);
  out.writeUInt16BE(0, h + 2);
  out.writeUInt32BE(p.ifindex >>> 0, h + 4);
  out.writeUInt16BE(p.hatype, h + 8);
  out.writeUInt8(p.pkttype, h + 10);
  out.writeUInt8(0, h + 11); // link-layer address length
  out.fill(0, h + 12, h + 20);
}
