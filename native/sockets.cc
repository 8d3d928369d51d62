// Socket inspection through pidfd_getfd and argument decoding through process_vm_readv.
#include "sockets.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "unique_fd.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

bool is_v4_mapped(const Endpoint& e) {
  static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return e.family == AF_INET6 && memcmp(e.addr, prefix, 12) == 0;
}

bool is_wildcard(const Endpoint& e) {
  static const uint8_t zero[16] = {};
  return memcmp(e.addr, zero, e.family == AF_INET ? 4 : 16) == 0;
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

int inspect_socket(int pidfd, int fd, SocketInfo* out) {
  UniqueFd dup(static_cast<int>(syscall(SYS_pidfd_getfd, pidfd, fd, 0)));
  if (!dup.valid()) return -errno;
  socklen_t len = sizeof(int);
  if (getsockopt(dup.get(), SOL_SOCKET, SO_DOMAIN, &out->domain, &len) < 0) return -errno;
  if (out->domain != AF_INET && out->domain != AF_INET6) return 0;  // AF_UNIX, AF_NETLINK, ...
  struct stat st;
  if (fstat(dup.get(), &st) == 0) out->inode = st.st_ino;
  if (out->domain == AF_INET6) {
    int v6only = 0;
    len = sizeof v6only;
    if (getsockopt(dup.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len) == 0) out->v6only = v6only;
  }
  len = sizeof(int);
  getsockopt(dup.get(), SOL_SOCKET, SO_TYPE, &out->type, &len);
  len = sizeof(int);
  getsockopt(dup.get(), SOL_SOCKET, SO_PROTOCOL, &out->protocol, &len);
  sockaddr_storage ss;
  len = sizeof ss;
  if (getsockname(dup.get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0)
    decode_sockaddr(&ss, len, &out->local);
  len = sizeof ss;
  if (getpeername(dup.get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0)
    decode_sockaddr(&ss, len, &out->peer);
  return 0;  // the duplicate closes here: a kept duplicate would hold the socket open
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
