// pcapng as a CaptureFormat: a section header naming tracedump and the command, an interface
// block the first time an interface carries a packet, every packet with its direction, the
// pid and tid of its process and a comment any Wireshark shows, the names the program itself
// resolved, the TLS keys it logged, and interface statistics at the end.
import { resolvedNames } from '../packet/dns';
import type { CaptureFormat, CaptureTotals, PacketOwner } from './format';
import type { SllPacket } from './pcap';
import {
  type SectionInfo,
  enhancedPacketSize,
  interfaceDescription,
  interfaceStatistics,
  nameResolution,
  PACKET_OUTGOING,
  processOptions,
  decryptionSecrets,
  sectionHeader,
  writeEnhancedPacket,
} from './pcapng';

export interface PcapngContext {
  snaplen: number;
  section: SectionInfo;
  interfaceName(ifindex: number): string | undefined;
  /** The program a process runs (from its exec), when known. */
  exeOf(pid: number): string | undefined;
}

export function pcapngFormat(ctx: PcapngContext): CaptureFormat {
  const ifids = new Map<number, number>(); // ifindex -> interface id in this section
  const received: number[] = [];
  const ownerOptions = new Map<string, Buffer>();
  // the last options made per owner object, with what they said (an exec changes the exe)
  const lastOptions = new WeakMap<PacketOwner, { exe: string; shared: string; options: Buffer }>();
  const named = new Set<string>(); // "address bytes|name" already in a name block

  const optionsOf = (o: PacketOwner, received: boolean): Buffer => {
    const exe = ctx.exeOf(o.pid) ?? '';
    // a received packet on a port another process shares may be that process's
    const shared = o.shared && received ? o.shared : '';
    const last = lastOptions.get(o);
    if (last && last.exe === exe && last.shared === shared) return last.options;
    const key = `${o.pid}/${o.tid}/${o.comm}/${exe}/${shared}`;
    let b = ownerOptions.get(key);
    if (!b) {
      b = processOptions(o.pid, o.tid, `pid=${o.pid} tid=${o.tid} comm=${o.comm}${exe ? ` exe=${exe}` : ''}${shared ? `; ${shared}` : ''}`);
      if (ownerOptions.size > 65536) ownerOptions.clear(); // bounded: a fork storm must not grow it
      ownerOptions.set(key, b);
    }
    lastOptions.set(o, { exe, shared, options: b });
    return b;
  };
  const encode = (out: Buffer, at: number, p: SllPacket, o: PacketOwner): number =>
    writeEnhancedPacket(out, at, p, ifids.get(p.ifindex) ?? 0, optionsOf(o, p.pkttype !== PACKET_OUTGOING));

  return {
    name: 'pcapng',
    header: () => sectionHeader(ctx.section),
    before(p: SllPacket) {
      if (ifids.has(p.ifindex)) return undefined;
      ifids.set(p.ifindex, ifids.size);
      received.push(0);
      return interfaceDescription(ctx.interfaceName(p.ifindex), ctx.snaplen);
    },
    recordSize: (p, o) => enhancedPacketSize(p, optionsOf(o, p.pkttype !== PACKET_OUTGOING)),
    writeRecord(out, at, p, o) {
      received[ifids.get(p.ifindex) ?? 0]++;
      return encode(out, at, p, o);
    },
    after(p: SllPacket) {
      const fresh = resolvedNames(p.data).filter((r) => {
        const k = `${r.address.toString('hex')}|${r.name}`;
        if (named.has(k)) return false;
        named.add(k);
        return true;
      });
      return fresh.length ? nameResolution(fresh) : undefined;
    },
    secrets: (keyLog) => decryptionSecrets(keyLog),
    known: {
      name: 'pcapng',
      interfaceId: (ifindex) => ifids.get(ifindex),
      ownerOptions: (o) => optionsOf(o, false),
      countRecords: (ifid, n) => void (received[ifid] += n),
      encode,
    },
    trailer(t: CaptureTotals) {
      // The kernel ring is shared by all interfaces: its drops are given once, on the first.
      const blocks = received.map((n, ifid) =>
        interfaceStatistics({
          ifid,
          start: t.start,
          end: t.end,
          received: n,
          dropped: ifid === 0 ? t.kernelDrops : undefined,
          comment:
            ifid === 0
              ? `isb_ifdrop: packets the kernel capture ring dropped, all interfaces together${t.gaps ? `. Not in this capture: ${t.gaps}` : ''}`
              : undefined,
        }),
      );
      return blocks.length ? Buffer.concat(blocks) : undefined;
    },
  };
}
