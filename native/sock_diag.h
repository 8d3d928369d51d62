// Which inet sockets exist right now (sock_diag netlink): how the controller learns that a
// socket of the traced program is gone without holding it open.
#pragma once
#include <cstdint>
#include <vector>

// Inodes of every socket of the given protocols (IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE,
// and IPPROTO_ICMP / IPPROTO_ICMPV6 for ping sockets, from /proc/net/icmp and icmp6),
// IPv4 and IPv6, in this network namespace. Orphaned sockets (closed, still finishing) and
// TIME_WAIT entries report inode 0 and are skipped. A TCP dump walks the kernel's whole
// connection hash (milliseconds on a large machine); UDP dumps are cheap. Returns 0 or -errno.
// Appends (inode, protocol, local port) for each.
struct LiveSocket {
  uint64_t inode;
  int protocol;
  uint16_t port;
  bool listening = false;  // TCP LISTEN
};
// A TCP connection still finishing without a socket of its own (an orphan sending what its
// closed socket left, FIN_WAIT, LAST_ACK, TIME_WAIT): the kernel still exchanges packets for
// it. family AF_INET or AF_INET6 (addresses as the kernel has them: 4 bytes, or 16).
struct FinishingFlow {
  int family;
  uint8_t state;  // TCP_FIN_WAIT1, TCP_TIME_WAIT... (linux/tcp_states.h numbering)
  uint8_t local[16];
  uint16_t local_port;
  uint8_t remote[16];
  uint16_t remote_port;
};
// With `finishing`, TCP dumps also list the connections still finishing (TIME_WAIT included).
int list_sockets(const std::vector<int>& protocols, std::vector<LiveSocket>* out,
                 std::vector<FinishingFlow>* finishing = nullptr);
