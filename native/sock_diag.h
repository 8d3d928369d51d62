// Which inet sockets exist right now (sock_diag netlink): how the controller learns that a
// socket of the traced program is gone without holding it open.
#pragma once
#include <cstdint>
#include <vector>

// Inodes of every TCP, UDP and UDP-Lite socket, IPv4 and IPv6, in this network namespace.
// Orphaned sockets (closed, still finishing) and TIME_WAIT entries report inode 0 and are
// skipped. Returns 0 or -errno.
int list_socket_inodes(std::vector<uint64_t>* out);
