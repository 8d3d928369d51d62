// Which inet sockets exist right now (sock_diag netlink): how the controller learns that a
// socket of the traced program is gone without holding it open.
#pragma once
#include <cstdint>
#include <vector>

// Inodes of every socket of the given protocols (IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE),
// IPv4 and IPv6, in this network namespace. Orphaned sockets (closed, still finishing) and
// TIME_WAIT entries report inode 0 and are skipped. A TCP dump walks the kernel's whole
// connection hash (milliseconds on a large machine); UDP dumps are cheap. Returns 0 or -errno.
// Appends (inode, protocol, local port) for each.
struct LiveSocket {
  uint64_t inode;
  int protocol;
  uint16_t port;
};
int list_sockets(const std::vector<int>& protocols, std::vector<LiveSocket>* out);
