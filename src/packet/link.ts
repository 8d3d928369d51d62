// The link layer of a captured frame: where the network header starts, its ethertype, and what
// the link header says of direction and interface (LINUX_SLL2, LINUX_SLL, Ethernet with VLAN
// tags, BSD loopback, raw IP). `tracedump read` and `tracedump flows` both start here.

/** Which way a packet went, as the file says; null when it does not. */
export type Direction = 'in' | 'out' | null;

export const LINKTYPE_NULL = 0;
export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_RAW = 101;
export const LINKTYPE_LOOP = 108;
export const LINKTYPE_LINUX_SLL = 113;
export const LINKTYPE_IPV4 = 228;
export const LINKTYPE_IPV6 = 229;
export const LINKTYPE_LINUX_SLL2 = 276;
/** DLT_RAW as some systems number it in files (12; OpenBSD 14). */
const DLT_RAW_ALIASES = new Set([12, 14]);

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV6 = 0x86dd;

export interface Link {
  /** Offset of the network header. */
  hdr: number;
  /** Ethertype of the network layer; -1 when the link layer gives none (see net). */
  ethertype: number;
  direction: Direction;
  ifindex: number | null;
  /** When the link layer is not one we decode: a name for the protocol column. */
  other?: string;
}

/** The direction an SLL/SLL2 packet type says. */
export function sllDirection(pkttype: number): Direction {
  if (pkttype <= 3) return 'in'; // host, broadcast, multicast, another host
  if (pkttype === 4) return 'out';
  return null;
}

export function ipEthertype(b: Buffer, o: number): number {
  if (b.length <= o) return -1;
  const v = b[o] >> 4;
  return v === 4 ? ETHERTYPE_IPV4 : v === 6 ? ETHERTYPE_IPV6 : -1;
}

export function linkLayer(linktype: number, d: Buffer): Link {
  const none: Link = { hdr: 0, ethertype: -1, direction: null, ifindex: null };
  switch (linktype) {
    case LINKTYPE_LINUX_SLL2:
      if (d.length < 20) return { ...none, other: 'sll2' };
      return { hdr: 20, ethertype: d.readUInt16BE(0), direction: sllDirection(d[10]), ifindex: d.readInt32BE(4) };
    case LINKTYPE_LINUX_SLL:
      if (d.length < 16) return { ...none, other: 'sll' };
      return { hdr: 16, ethertype: d.readUInt16BE(14), direction: sllDirection(d.readUInt16BE(0)), ifindex: null };
    case LINKTYPE_ETHERNET: {
      if (d.length < 14) return { ...none, other: 'ether' };
      let hdr = 14;
      let et = d.readUInt16BE(12);
      for (let tags = 0; tags < 4 && (et === 0x8100 || et === 0x88a8 || et === 0x9100) && d.length >= hdr + 4; tags++) {
        et = d.readUInt16BE(hdr + 2);
        hdr += 4;
      }
      if (et < 0x0600) return { ...none, hdr, other: 'llc' }; // an 802.3 length: LLC follows
      return { hdr, ethertype: et, direction: null, ifindex: null };
    }
    case LINKTYPE_NULL:
    case LINKTYPE_LOOP: {
      if (d.length < 4) return { ...none, other: 'loop' };
      // an address family, in the byte order of the machine that captured (NULL) or big-endian (LOOP)
      const le = d.readUInt32LE(0);
      const af = le <= 0xffff ? le : d.readUInt32BE(0);
      const et = af === 2 ? ETHERTYPE_IPV4 : af === 10 || af === 24 || af === 28 || af === 30 ? ETHERTYPE_IPV6 : -1;
      return { hdr: 4, ethertype: et, direction: null, ifindex: null, other: et < 0 ? `af-${af}` : undefined };
    }
    case LINKTYPE_RAW:
      return { hdr: 0, ethertype: ipEthertype(d, 0), direction: null, ifindex: null };
    case LINKTYPE_IPV4:
      return { hdr: 0, ethertype: ETHERTYPE_IPV4, direction: null, ifindex: null };
    case LINKTYPE_IPV6:
      return { hdr: 0, ethertype: ETHERTYPE_IPV6, direction: null, ifindex: null };
    default:
      if (DLT_RAW_ALIASES.has(linktype)) return { hdr: 0, ethertype: ipEthertype(d, 0), direction: null, ifindex: null };
      return { ...none, other: `linktype-${linktype}` };
  }
}

/** epb_flags bits 0-1: 1 inbound, 2 outbound. */
export function flagsDirection(flags: number | undefined): Direction {
  if (flags === undefined) return null;
  const d = flags & 3;
  return d === 1 ? 'in' : d === 2 ? 'out' : null;
}
