// Socket inspection without touching the tracee: pidfd_getfd duplicates a tracee's socket into
// the tracer, getsockname/getpeername/getsockopt answer, and the duplicate is closed at once.
#pragma once
#include <sys/socket.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

// One transport endpoint. family is AF_INET or AF_INET6 (0: none); an IPv4 address
// occupies the first 4 bytes of addr. IPv4-mapped IPv6 addresses stay AF_INET6.
struct Endpoint {
  int family = 0;
  uint8_t addr[16] = {};
  uint16_t port = 0;  // host byte order

  bool valid() const { return family != 0; }
  std::string address_string() const;
};

struct SocketInfo {
  int domain = 0;    // SO_DOMAIN
  int type = 0;      // SO_TYPE
  int protocol = 0;  // SO_PROTOCOL
  Endpoint local;    // getsockname (port 0: not bound yet)
  Endpoint peer;     // getpeername (family 0: not connected)
  uint64_t inode = 0;
  bool v6only = false;  // IPV6_V6ONLY: an AF_INET6 socket that does not receive IPv4  // the socket's inode: its identity while it lives (sock_diag reports it)
};

bool is_v4_mapped(const Endpoint& e);
// The any-address (0.0.0.0 or ::): the kernel picks the real local address at connect/send.
bool is_wildcard(const Endpoint& e);

// Decodes an AF_INET/AF_INET6 sockaddr; false for other families or short buffers.
bool decode_sockaddr(const void* buf, size_t len, Endpoint* out);

// Duplicates fd of the process behind pidfd, inspects it, closes the duplicate.
// Returns 0 or -errno (EBADF: no such fd, ENOTSOCK: not a socket).
int inspect_socket(int pidfd, int fd, SocketInfo* out);

// Reads tracee memory; returns bytes read or -errno.
ssize_t read_tracee(pid_t tid, uint64_t addr, void* buf, size_t len);

// The destination addresses named by a socket call's arguments (at most `limit` of them).
// call_nr is the x86-64 syscall number; args are the six syscall arguments.
std::vector<Endpoint> call_destinations(pid_t tid, long call_nr, const uint64_t args[6], size_t limit);

int pidfd_open_checked(pid_t tgid);
