// Classic pcap's numbers, one home for the writer (pcap.ts) and the reader (read/reader.ts).
// (Link types: packet/link.ts.)

/** File magic, microsecond timestamps. */
export const PCAP_MAGIC_USEC = 0xa1b2c3d4;
/** File magic, nanosecond timestamps (what tracedump writes). */
export const PCAP_MAGIC_NSEC = 0xa1b23c4d;
/** Alexey Kuznetsov's modified pcap (read). */
export const PCAP_MAGIC_MODIFIED = 0xa1b2cd34;
export const PCAP_FILE_HEADER_SIZE = 24;
export const PCAP_RECORD_HEADER_SIZE = 16;
export const SLL2_HEADER_SIZE = 20;
