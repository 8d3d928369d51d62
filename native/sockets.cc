// Socket inspection through pidfd_getfd and argument decoding through process_vm_readv.
#include "sockets.h"

#include <arpa/inet.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iterator>

#include "clock.h"
#include "unique_fd.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

bool is_ping(const SocketInfo& s) {
  return (s.type & 0xf) == SOCK_DGRAM && (s.protocol == IPPROTO_ICMP || s.protocol == IPPROTO_ICMPV6);
}

bool is_v4_mapped(const Endpoint& e) {
  static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return e.family == AF_INET6 && memcmp(e.addr, prefix, 12) == 0;
}

bool is_wildcard(const Endpoint& e) {
  static const uint8_t zero[16] = {};
  return memcmp(e.addr, zero, e.family == AF_INET ? 4 : 16) == 0;
}

void resolve_any_destination(Endpoint* d, const SocketInfo& s) {
  static const uint8_t loop4[4] = {127, 0, 0, 1};
  if (d->family == AF_INET && is_wildcard(*d)) {
    // IPv4 routing: the socket's own bound address, else loopback
    if (s.local.family == AF_INET && !is_wildcard(s.local)) memcpy(d->addr, s.local.addr, 4);
    else memcpy(d->addr, loop4, 4);
  } else if (d->family == AF_INET6 && is_v4_mapped(*d)) {
    static const uint8_t zero4[4] = {};
    if (memcmp(d->addr + 12, zero4, 4) != 0) return;
    if (is_v4_mapped(s.local) && memcmp(s.local.addr + 12, zero4, 4) != 0) memcpy(d->addr + 12, s.local.addr + 12, 4);
    else memcpy(d->addr + 12, loop4, 4);
  } else if (d->family == AF_INET6 && is_wildcard(*d)) {
    d->addr[15] = 1;  // "::" means ::1 (the BSD convention Linux keeps)
  }
}

std::string Endpoint::address_string() const {
  char buf[INET6_ADDRSTRLEN] = "";
  if (family == AF_INET) inet_ntop(AF_INET, addr, buf, sizeof buf);
  if (family == AF_INET6) inet_ntop(AF_INET6, addr, buf, sizeof buf);
  return buf;
}

bool decode_sockaddr(const void* buf, size_t len, Endpoint* out) {
  sa_family_t family;
  if (len < sizeof family) return false;
  memcpy(&family, buf, sizeof family);
  if (family == AF_INET && len >= sizeof(sockaddr_in)) {
    sockaddr_in sin;
    memcpy(&sin, buf, sizeof sin);
    *out = Endpoint{};
    out->family = AF_INET;
    memcpy(out->addr, &sin.sin_addr, 4);
    out->port = ntohs(sin.sin_port);
    return true;
  }
  if (family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    sockaddr_in6 sin6;
    memcpy(&sin6, buf, sizeof sin6);
    *out = Endpoint{};
    out->family = AF_INET6;
    memcpy(out->addr, &sin6.sin6_addr, 16);
    out->port = ntohs(sin6.sin6_port);
    return true;
  }
  return false;
}

int pidfd_open_checked(pid_t tgid) {
  int fd = static_cast<int>(syscall(SYS_pidfd_open, tgid, 0));
  return fd >= 0 ? fd : -errno;
}

namespace {

// getpeername only when the socket has a local port: a socket without one has no peer (TCP
// and UDP connect() bind a port first; a failed or dissolved connection clears the peer before
// it gives the port back).
void read_peer_if_bound(int dup, SocketInfo* out) {
  out->peer = Endpoint{};
  if (out->local.port == 0) return;
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getpeername(dup, reinterpret_cast<sockaddr*>(&ss), &len) == 0) decode_sockaddr(&ss, len, &out->peer);
  if (is_ping(*out)) out->peer.port = 0;  // the peer of an echo has no identifier of its own
}

// getsockname's answer into out->local.
void read_local(int dup, SocketInfo* out) {
  out->local = Endpoint{};
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(dup, reinterpret_cast<sockaddr*>(&ss), &len) == 0) decode_sockaddr(&ss, len, &out->local);
}

void read_endpoints(int dup, SocketInfo* out) {
  read_local(dup, out);
  read_peer_if_bound(dup, out);
}

// An inet socket's type told by its protocol, without SO_TYPE: TCP and MPTCP sockets are
// streams, UDP and UDP-Lite ones datagrams. The one other type such a protocol can have is
// SOCK_RAW, and a raw socket's local port is its protocol number (inet_create): only then is
// SO_TYPE needed. 0: ask SO_TYPE (another protocol, or a port that could be a raw socket's).
int stream_or_dgram(int protocol, const Endpoint& local) {
  if (protocol == 262 /*MPTCP: no raw sockets above 255*/) return SOCK_STREAM;
  if (protocol != IPPROTO_TCP && protocol != IPPROTO_UDP && protocol != IPPROTO_UDPLITE) return 0;
  if (!local.valid() || local.port == protocol) return 0;
  return protocol == IPPROTO_TCP ? SOCK_STREAM : SOCK_DGRAM;
}

bool read_v6only(int dup) {
  int v6only = 0;
  socklen_t len = sizeof v6only;
  return getsockopt(dup, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len) == 0 && v6only;
}

}  // namespace

const SocketFactsCache::Facts* SocketFactsCache::find(uint64_t ino, uint64_t now_ns) {
  auto it = map_.find(ino);
  if (it == map_.end()) return nullptr;
  if (now_ns - it->second.read_ns < ttl_ns_) return &it->second;
  map_.erase(it);
  return nullptr;
}

void SocketFactsCache::put(uint64_t ino, const Facts& f) {
  if (map_.size() >= capacity_ && !map_.count(ino)) {
    for (auto it = map_.begin(); it != map_.end();)
      it = f.read_ns - it->second.read_ns >= ttl_ns_ ? map_.erase(it) : std::next(it);
    if (map_.size() >= capacity_) map_.clear();
  }
  map_[ino] = f;
}

void SocketFactsCache::set_v6only(uint64_t ino, bool v6only) {
  auto it = map_.find(ino);
  if (it == map_.end()) return;
  it->second.v6only = v6only;
  it->second.v6only_final = true;
}

int dup_tracee_fd(int pidfd, int fd) {
  int dup = static_cast<int>(syscall(SYS_pidfd_getfd, pidfd, fd, 0));
  return dup >= 0 ? dup : -errno;
}

int inspect_dup(int dup, SocketInfo* out, SocketFactsCache* cache) {
  // getsockname first: its address family is the socket's domain (an AF_UNIX or AF_NETLINK
  // socket is told with this one call), and for AF_INET/AF_INET6 it is the local endpoint.
  sockaddr_storage ss;
  socklen_t name_len = sizeof ss, len;
  int family = -1;
  int r = getsockname(dup, reinterpret_cast<sockaddr*>(&ss), &name_len);
  if (r == 0 && name_len >= sizeof(sa_family_t)) {
    family = ss.ss_family;
  } else if (r < 0 && errno == ENOTSOCK) {
    return -ENOTSOCK;
  } else {  // a family without names: ask for the domain
    len = sizeof(int);
    if (getsockopt(dup, SOL_SOCKET, SO_DOMAIN, &out->domain, &len) < 0) return -errno;
  }
  if (family >= 0) out->domain = family;
  if (out->domain != AF_INET && out->domain != AF_INET6) return 0;  // AF_UNIX, AF_NETLINK, ...

  struct stat st;
  if (fstat(dup, &st) < 0) return -errno;
  const uint64_t ino = st.st_ino;
  if (family >= 0) {
    out->local = Endpoint{};
    decode_sockaddr(&ss, name_len <= sizeof ss ? name_len : sizeof ss, &out->local);
    read_peer_if_bound(dup, out);
  } else {
    read_endpoints(dup, out);
  }
  SocketFactsCache::Facts facts;
  const SocketFactsCache::Facts* known = nullptr;
  uint64_t now = 0;
  if (cache) {
    now = monotonic_ns();
    known = cache->find(ino, now);
    if (known && known->domain != out->domain) known = nullptr;  // not the socket it was
  }
  if (known) {
    facts = *known;
  } else {
    facts.domain = out->domain;
    len = sizeof(int);
    getsockopt(dup, SOL_SOCKET, SO_PROTOCOL, &facts.protocol, &len);
    facts.type = stream_or_dgram(facts.protocol, out->local);
    if (facts.type == 0) {
      len = sizeof(int);
      getsockopt(dup, SOL_SOCKET, SO_TYPE, &facts.type, &len);
    }
    facts.read_ns = now;
  }
  out->type = facts.type;
  out->protocol = facts.protocol;
  out->inode = ino;
  if (facts.domain == AF_INET6) {
    if (facts.v6only_final) {
      out->v6only = facts.v6only;
    } else {
      // Until the socket is bound, setsockopt(IPV6_V6ONLY) may still change it.
      out->v6only = read_v6only(dup);
      if (out->local.port != 0) {
        facts.v6only = out->v6only;
        facts.v6only_final = true;
        if (cache && known) cache->set_v6only(ino, out->v6only);
      }
    }
  }
  if (cache && !known) cache->put(ino, facts);
  return 0;
}

void refresh_socket(int dup, SocketInfo* info, SocketFactsCache* cache, const Endpoint* peer) {
  bool was_bound = info->local.port != 0;
  read_local(dup, info);
  if (peer)
    info->peer = *peer;
  else
    read_peer_if_bound(dup, info);
  // v6only read at entry while unbound: read again now that the call may have bound it.
  if (info->domain == AF_INET6 && !was_bound) {
    info->v6only = read_v6only(dup);
    if (info->local.port != 0 && cache) cache->set_v6only(info->inode, info->v6only);
  }
}

int inspect_socket(int pidfd, int fd, SocketInfo* out, SocketFactsCache* cache) {
  int d = dup_tracee_fd(pidfd, fd);
  if (d < 0) return d;
  UniqueFd dup(d);
  return inspect_dup(dup.get(), out, cache);  // the duplicate closes here
}

ssize_t read_tracee(pid_t tid, uint64_t addr, void* buf, size_t len) {
  iovec local{buf, len};
  iovec remote{reinterpret_cast<void*>(addr), len};
  ssize_t n = process_vm_readv(tid, &local, 1, &remote, 1, 0);
  return n >= 0 ? n : -errno;
}

namespace {

bool read_sockaddr(pid_t tid, uint64_t addr, uint64_t len, Endpoint* out) {
  if (addr == 0 || len == 0) return false;
  sockaddr_storage ss;
  size_t n = len < sizeof ss ? len : sizeof ss;
  if (read_tracee(tid, addr, &ss, n) != static_cast<ssize_t>(n)) return false;
  return decode_sockaddr(&ss, n, out);
}

// struct msghdr / mmsghdr on x86-64.
struct MsgHdr64 {
  uint64_t name;
  uint32_t namelen;
  uint32_t pad;
  uint64_t iov, iovlen, control, controllen;
  uint32_t flags;
  uint32_t pad2;
};
struct MMsgHdr64 {
  MsgHdr64 hdr;
  uint32_t len;
  uint32_t pad;
};
static_assert(sizeof(MsgHdr64) == 56, "msghdr layout");
static_assert(sizeof(MMsgHdr64) == 64, "mmsghdr layout");

void add_unique(std::vector<Endpoint>* v, const Endpoint& e) {
  for (const auto& x : *v)
    if (x.family == e.family && x.port == e.port && memcmp(x.addr, e.addr, 16) == 0) return;
  v->push_back(e);
}

}  // namespace

std::vector<Endpoint> call_destinations(pid_t tid, long nr, const uint64_t args[6], size_t limit) {
  std::vector<Endpoint> out;
  Endpoint e;
  switch (nr) {
    case SYS_connect:
      if (read_sockaddr(tid, args[1], args[2], &e)) out.push_back(e);
      break;
    case SYS_sendto:
      if (read_sockaddr(tid, args[4], args[5], &e)) out.push_back(e);
      break;
    case SYS_sendmsg: {
      MsgHdr64 m;
      if (args[1] && read_tracee(tid, args[1], &m, sizeof m) == sizeof m &&
          read_sockaddr(tid, m.name, m.namelen, &e))
        out.push_back(e);
      break;
    }
    case SYS_sendmmsg: {
      size_t vlen = args[2] < 1024 ? args[2] : 1024;  // the kernel caps vlen at UIO_MAXIOV
      if (!args[1] || vlen == 0) break;
      std::vector<MMsgHdr64> msgs(vlen);
      ssize_t n = read_tracee(tid, args[1], msgs.data(), vlen * sizeof(MMsgHdr64));
      if (n < 0) break;
      size_t got = static_cast<size_t>(n) / sizeof(MMsgHdr64);
      for (size_t i = 0; i < got && out.size() < limit; i++)
        if (read_sockaddr(tid, msgs[i].hdr.name, msgs[i].hdr.namelen, &e)) add_unique(&out, e);
      break;
    }
  }
  return out;
}

int64_t tcp_segments(int dup) {
  tcp_info info;
  memset(&info, 0, sizeof info);
  socklen_t len = sizeof info;
  if (getsockopt(dup, IPPROTO_TCP, TCP_INFO, &info, &len) < 0) return -1;
  if (len < offsetof(tcp_info, tcpi_segs_in) + sizeof info.tcpi_segs_in) return -1;
  return static_cast<int64_t>(info.tcpi_segs_out) + info.tcpi_segs_in;
}
