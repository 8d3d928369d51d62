// Keys of the kernel filter's hash maps. The eBPF program (src/filter/ebpf-program.ts) builds
// the same bytes on its stack from BPF_LD_ABS loads, which yield host-order values: addresses
// are stored as host-order 32-bit words, ports in host order. Keep both sides in step.
#pragma once
#include <cstdint>
#include <cstring>

#include "sockets.h"

struct EndpointKey {
  uint8_t family;  // 4 or 6 (IPv4-mapped IPv6 endpoints are keyed as IPv4: that is the wire)
  uint8_t proto;   // IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE
  uint16_t port;
  uint32_t addr[4];  // all zero: any address (a socket bound to the wildcard)

  bool operator<(const EndpointKey& o) const { return memcmp(this, &o, sizeof *this) < 0; }
  bool operator==(const EndpointKey& o) const { return memcmp(this, &o, sizeof *this) == 0; }
};
static_assert(sizeof(EndpointKey) == 20, "EndpointKey layout");

struct FlowKey {
  EndpointKey local;
  EndpointKey remote;
  bool operator<(const FlowKey& o) const { return memcmp(this, &o, sizeof *this) < 0; }
};
static_assert(sizeof(FlowKey) == 40, "FlowKey layout");

// The wire protocol of a socket protocol (MPTCP subflows are TCP on the wire).
inline uint8_t wire_proto(int socket_protocol) {
  return socket_protocol == 262 ? 6 : static_cast<uint8_t>(socket_protocol);
}

EndpointKey endpoint_key(const Endpoint& e, int socket_protocol);
