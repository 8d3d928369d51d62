// Socket inspection without touching the tracee: pidfd_getfd duplicates a tracee's socket into
// the tracer, getsockname/getpeername/getsockopt answer. The duplicate never outlives the stop
// in which the tracee's call runs: it is closed before the tracee runs on after the call (a
// kept duplicate would delay the FIN, or change what a lingering close() waits for). Across a
// call that takes an exit stop, the tracer may keep it from the entry stop to the exit stop:
// the call in progress holds its own reference to the socket meanwhile, so nothing changes.
#pragma once
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <unordered_map>
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
  uint64_t inode = 0;    // the socket's inode: its identity while it lives (sock_diag reports it)
  bool v6only = false;  // IPV6_V6ONLY: an AF_INET6 socket that does not receive IPv4
};

// The facts of an AF_INET/AF_INET6 socket that never change while it lives (SO_TYPE,
// SO_PROTOCOL, and IPV6_V6ONLY once the socket is bound: before, setsockopt may still change
// it), by inode (every socket lives in the one sockfs, so the inode number alone names it), so
// that a stop at a socket already seen asks the kernel only for its endpoints. An entry is
// trusted for `ttl_ns` after it was read (hits do not extend it), so a reused inode number
// cannot give a stale answer (socket inodes come from a 32-bit counter: reuse within 30 s would
// take billions of new inodes); the domain (getsockname's family) must match as well. At most
// `capacity` entries: expired ones go first, then all. One thread only (the tracer's).
class SocketFactsCache {
 public:
  struct Facts {
    int domain = 0, type = 0, protocol = 0;
    bool v6only = false, v6only_final = false;
    uint64_t read_ns = 0;
  };
  explicit SocketFactsCache(size_t capacity = 8192, uint64_t ttl_ns = 30'000'000'000ull)
      : capacity_(capacity), ttl_ns_(ttl_ns) {}
  // The facts of inode `ino` read less than ttl ago, or null.
  const Facts* find(uint64_t ino, uint64_t now_ns);
  void put(uint64_t ino, const Facts& f);
  // v6only read while the socket was bound: final from now on.
  void set_v6only(uint64_t ino, bool v6only);
  size_t size() const { return map_.size(); }

 private:
  size_t capacity_;
  uint64_t ttl_ns_;
  std::unordered_map<uint64_t, Facts> map_;
};

bool is_v4_mapped(const Endpoint& e);
// UDP or UDP-Lite (socket protocol numbers).
inline bool is_udp(int protocol) { return protocol == IPPROTO_UDP || protocol == IPPROTO_UDPLITE; }
// A stream that listens and accepts: TCP or MPTCP (262: IPPROTO_MPTCP, absent from older headers).
inline bool is_stream(int protocol) { return protocol == IPPROTO_TCP || protocol == 262; }
// An ICMP datagram ("ping") socket: its local port is the echo identifier the kernel puts in
// every request it sends and matches replies by; its peer's port is always 0 (the filter keys
// an echo request as (source, identifier) -> (destination, 0), a reply the other way round).
bool is_ping(const SocketInfo& s);
// The any-address (0.0.0.0 or ::): the kernel picks the real local address at connect/send.
bool is_wildcard(const Endpoint& e);

// A destination that is the any-address (0.0.0.0, ::, ::ffff:0.0.0.0) reaches the machine
// itself: the kernel sends to the socket's bound IPv4 address or to loopback (::1 for IPv6).
// Rewrites d to where the packets really go, so the filter rule matches them.
void resolve_any_destination(Endpoint* d, const SocketInfo& s);

// Decodes an AF_INET/AF_INET6 sockaddr; false for other families or short buffers.
bool decode_sockaddr(const void* buf, size_t len, Endpoint* out);

// Duplicates fd of the process behind pidfd, inspects it, closes the duplicate.
// Returns 0 or -errno (EBADF: no such fd, ENOTSOCK: not a socket).
int inspect_socket(int pidfd, int fd, SocketInfo* out, SocketFactsCache* cache = nullptr);

// Duplicates fd of the process behind pidfd into the tracer (close-on-exec): the new fd, or
// -errno. The caller closes it (see the note at the top).
int dup_tracee_fd(int pidfd, int fd);

// Inspects a duplicate taken with dup_tracee_fd: getsockname first (its family is the domain:
// other families end there), then fstat for the inode and, unless the cache knows them,
// SO_TYPE and SO_PROTOCOL; getpeername only for a socket with a local port (one without has no
// peer). Only AF_INET/AF_INET6 sockets get their inode, endpoints and v6only.
// Returns 0 or -errno (ENOTSOCK: not a socket).
int inspect_dup(int dup, SocketInfo* out, SocketFactsCache* cache);

// Re-reads what a call can change of a socket inspected before through the same duplicate:
// its endpoints, and v6only until it is bound (then final, and put in the cache). peer: the
// peer when the caller knows it already (family 0: none), so getpeername is not asked.
void refresh_socket(int dup, SocketInfo* info, SocketFactsCache* cache, const Endpoint* peer = nullptr);

// The segments a TCP socket has sent and received so far (TCP_INFO's segs_out + segs_in),
// through a duplicate; -1 for other sockets or when the kernel does not say.
int64_t tcp_segments(int dup);

// Reads tracee memory; returns bytes read or -errno.
ssize_t read_tracee(pid_t tid, uint64_t addr, void* buf, size_t len);

// The destination addresses named by a socket call's arguments (at most `limit` of them).
// call_nr is the x86-64 syscall number; args are the six syscall arguments.
std::vector<Endpoint> call_destinations(pid_t tid, long call_nr, const uint64_t args[6], size_t limit);

int pidfd_open_checked(pid_t tgid);
