// The kernel filter as an eBPF socket filter: it passes a packet when its endpoints are found
// in the rule maps (exact flows, bound local endpoints, pending remote endpoints). It is built
// once; rules change by map updates, never by replacing the program. Packets it cannot key
// (ICMP errors, fragments, IPv6 extension headers) are passed to userspace, which decides.
// ICMP echoes are keyed as ping sockets see them: the identifier is the pinger's port, the
// other end's is 0 (a request from (src, id) to (dst, 0), a reply the other way round).
//
// Map keys (native/filter_keys.h): EndpointKey = { u8 family; u8 proto; u16 port;
// u32 addr[4] } with host-order words as BPF_LD_ABS yields them; FlowKey = { local, remote }.
import {
  ICMP6_ECHO_REPLY,
  ICMP6_ECHO_REQUEST,
  ICMP_ECHO_REPLY,
  ICMP_ECHO_REQUEST,
  ICMP_ERRORS,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPPROTO_UDPLITE,
  IPV6_AH,
  IPV6_EXTENSIONS,
  IPV6_FRAGMENT,
} from '../packet/protocols';
import { EbpfAssembler, HELPER_MAP_LOOKUP_ELEM, type Reg } from './ebpf';

export interface EbpfFilterConfig {
  maps: { flows: number; binds: number; pending: number };
  /** Bytes of each packet to keep (the filter's return value). */
  snaplen: number;
  /** ifindex of the loopback device: its outgoing copies are dropped (each packet once). */
  loopbackIfindex: number;
}

// struct __sk_buff offsets
const SKB_PKT_TYPE = 4;
const SKB_PROTOCOL = 16;
const SKB_IFINDEX = 40;
const PACKET_OUTGOING = 4;
const ETH_P_IP_BE = 0x0008; // htons(0x0800) as the u32 field reads on little endian
const ETH_P_IPV6_BE = 0xdd86;

const IPPROTO = { icmp: IPPROTO_ICMP, tcp: IPPROTO_TCP, udp: IPPROTO_UDP, udplite: IPPROTO_UDPLITE, icmpv6: IPPROTO_ICMPV6 } as const;
// every extension header goes to userspace, which walks them (packet/ip.ts)
const IPV6_EXTENSION_HEADERS = [...IPV6_EXTENSIONS, IPV6_FRAGMENT, IPV6_AH];

// Stack slots (offsets from r10) of the keys: A = source endpoint, B = destination endpoint.
// FlowKey {A,B} starts at KEY_A, {B,A} at KEY_B2; the *_ANY copies have a zero address.
const KEY_B_ANY = -100;
const KEY_A_ANY = -80;
const KEY_B2 = -60;
const KEY_A = -40;
const KEY_B = -20;
const STACK_BYTES = 104;

const CTX: Reg = 6; // must hold the context for BPF_LD_ABS/IND
const L4: Reg = 8; // offset of the transport header
const PROTO: Reg = 9;

export function buildEbpfFilter(cfg: EbpfFilterConfig): Buffer {
  const a = new EbpfAssembler();
  a.movReg(CTX, 1);

  // Loopback packets are seen twice, as sent and as received: keep the received copy.
  a.load('w', 0, CTX, SKB_PKT_TYPE).jumpImm('jne', 0, PACKET_OUTGOING, 'not_lo_out');
  a.load('w', 0, CTX, SKB_IFINDEX).jumpImm('jeq', 0, cfg.loopbackIfindex, 'reject');
  a.label('not_lo_out');

  for (let off = -STACK_BYTES; off < 0; off += 8) a.storeImm('dw', 10, off, 0);
  a.load('w', 7, CTX, SKB_PROTOCOL);
  a.jumpImm('jeq', 7, ETH_P_IP_BE, 'ipv4');
  a.jumpImm('jeq', 7, ETH_P_IPV6_BE, 'ipv6');
  a.jump('reject');

  // IPv4
  a.label('ipv4');
  a.loadAbs('h', 6).aluImm('and', 0, 0x1fff).jumpImm('jne', 0, 0, 'pass'); // a later fragment
  a.loadAbs('b', 0).aluImm('and', 0, 0x0f).aluImm('lsh', 0, 2).movReg(L4, 0);
  a.loadAbs('b', 9).movReg(PROTO, 0);
  a.jumpImm('jeq', PROTO, IPPROTO.icmp, 'icmp4');
  transportOnly(a, 'v4_keys');
  a.label('icmp4');
  a.loadInd('b', L4, 0);
  for (const t of ICMP_ERRORS) a.jumpImm('jeq', 0, t, 'pass');
  a.jumpImm('jeq', 0, ICMP_ECHO_REQUEST, 'v4_keys');
  a.jumpImm('jeq', 0, ICMP_ECHO_REPLY, 'v4_keys');
  a.jump('reject');
  a.label('v4_keys');
  fillHeader(a, 4);
  a.loadAbs('w', 12);
  a.store('w', 10, KEY_A + 4, 0);
  a.loadAbs('w', 16);
  a.store('w', 10, KEY_B + 4, 0).store('w', 10, KEY_B2 + 4, 0);
  a.jump('ports');

  // IPv6 (transport header right after the fixed header; anything else goes to userspace)
  a.label('ipv6');
  a.loadAbs('b', 6).movReg(PROTO, 0);
  a.movImm(L4, 40);
  a.jumpImm('jeq', PROTO, IPPROTO.icmpv6, 'icmp6');
  for (const h of IPV6_EXTENSION_HEADERS) a.jumpImm('jeq', PROTO, h, 'pass');
  transportOnly(a, 'v6_keys');
  a.label('icmp6');
  a.loadAbs('b', 40);
  a.jumpImm('jeq', 0, ICMP6_ECHO_REQUEST, 'v6_keys');
  a.jumpImm('jeq', 0, ICMP6_ECHO_REPLY, 'v6_keys');
  a.aluImm('sub', 0, 1).jumpImm('jlt', 0, 4, 'pass'); // types 1-4: errors
  a.jump('reject');
  a.label('v6_keys');
  fillHeader(a, 6);
  for (let i = 0; i < 4; i++) {
    a.loadAbs('w', 8 + 4 * i);
    a.store('w', 10, KEY_A + 4 + 4 * i, 0);
    a.loadAbs('w', 24 + 4 * i);
    a.store('w', 10, KEY_B + 4 + 4 * i, 0).store('w', 10, KEY_B2 + 4 + 4 * i, 0);
  }

  a.label('ports');
  a.jumpImm('jeq', PROTO, IPPROTO.icmp, 'echo');
  a.jumpImm('jeq', PROTO, IPPROTO.icmpv6, 'echo');
  a.loadInd('h', L4, 0);
  a.store('h', 10, KEY_A + 2, 0).store('h', 10, KEY_A_ANY + 2, 0);
  a.loadInd('h', L4, 2);
  a.store('h', 10, KEY_B + 2, 0).store('h', 10, KEY_B2 + 2, 0).store('h', 10, KEY_B_ANY + 2, 0);

  a.jump('lookups');

  // an echo: the identifier on the pinger's side (the keys' ports are zero already)
  a.label('echo');
  a.loadInd('b', L4, 0);
  a.jumpImm('jeq', 0, ICMP_ECHO_REQUEST, 'echo_request');
  a.jumpImm('jeq', 0, ICMP6_ECHO_REQUEST, 'echo_request');
  a.loadInd('h', L4, 4);
  a.store('h', 10, KEY_B + 2, 0).store('h', 10, KEY_B2 + 2, 0).store('h', 10, KEY_B_ANY + 2, 0);
  a.jump('lookups');
  a.label('echo_request');
  a.loadInd('h', L4, 4);
  a.store('h', 10, KEY_A + 2, 0).store('h', 10, KEY_A_ANY + 2, 0);

  a.label('lookups');
  const lookups: Array<[number, number]> = [
    [cfg.maps.flows, KEY_A], // source is the local end
    [cfg.maps.flows, KEY_B2], // destination is the local end
    [cfg.maps.binds, KEY_A],
    [cfg.maps.binds, KEY_A_ANY],
    [cfg.maps.binds, KEY_B],
    [cfg.maps.binds, KEY_B_ANY],
    [cfg.maps.pending, KEY_B], // sent to a pending destination
    [cfg.maps.pending, KEY_A], // an answer from it
  ];
  for (const [fd, key] of lookups) {
    a.loadMapFd(1, fd).movReg(2, 10).aluImm('add', 2, key).call(HELPER_MAP_LOOKUP_ELEM);
    a.jumpImm('jne', 0, 0, 'pass');
  }

  a.label('reject').movImm(0, 0).exit();
  a.label('pass').movImm(0, cfg.snaplen).exit();
  return a.assemble();
}

function transportOnly(a: EbpfAssembler, keys: string): void {
  a.jumpImm('jeq', PROTO, IPPROTO.tcp, keys);
  a.jumpImm('jeq', PROTO, IPPROTO.udp, keys);
  a.jumpImm('jeq', PROTO, IPPROTO.udplite, keys);
  a.jump('reject');
}

// family and protocol bytes of all five keys
function fillHeader(a: EbpfAssembler, family: 4 | 6): void {
  for (const key of [KEY_A, KEY_B, KEY_B2, KEY_A_ANY, KEY_B_ANY]) {
    a.storeImm('b', 10, key, family);
    a.store('b', 10, key + 1, PROTO);
  }
}
