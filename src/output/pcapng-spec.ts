// pcapng's numbers, one home for the writer (pcapng.ts) and the reader (read/reader.ts).
// Layout: draft-ietf-opsawg-pcapng.

export const BLOCK_SHB = 0x0a0d0d0a;
export const BLOCK_IDB = 1;
/** Packet Block (obsolete, still read). */
export const BLOCK_PB = 2;
/** Simple Packet Block (read). */
export const BLOCK_SPB = 3;
export const BLOCK_NRB = 4;
export const BLOCK_ISB = 5;
export const BLOCK_EPB = 6;
export const BLOCK_DSB = 0x0a;
/** Decryption Secrets Block type of an NSS key log ("TLSK"). */
export const SECRETS_TLS_KEY_LOG = 0x544c534b;
export const BYTE_ORDER_MAGIC = 0x1a2b3c4d;

export const OPT_END = 0;
export const OPT_COMMENT = 1;
export const SHB_HARDWARE = 2;
export const SHB_OS = 3;
export const SHB_USERAPPL = 4;
export const IF_NAME = 2;
export const IF_DESCRIPTION = 3;
export const IF_TSRESOL = 9;
export const IF_TSOFFSET = 14;
export const EPB_FLAGS = 2;
export const EPB_PROCESSID_THREADID = 8;
/** epb_flags bits 0-1: the direction. */
export const EPB_INBOUND = 1;
export const EPB_OUTBOUND = 2;
export const ISB_STARTTIME = 2;
export const ISB_ENDTIME = 3;
export const ISB_IFRECV = 4;
export const ISB_IFDROP = 5;
export const NRB_IPV4 = 1;
export const NRB_IPV6 = 2;
