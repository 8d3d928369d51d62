// NETLINK_SOCK_DIAG dumps, one per (family, protocol).
#include "sock_diag.h"

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "unique_fd.h"

namespace {

int dump(int fd, int family, int protocol, std::vector<LiveSocket>* out) {
  struct {
    nlmsghdr nlh;
    inet_diag_req_v2 req;
  } msg;
  memset(&msg, 0, sizeof msg);
  msg.nlh.nlmsg_len = sizeof msg;
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  msg.req.sdiag_family = static_cast<uint8_t>(family);
  msg.req.sdiag_protocol = static_cast<uint8_t>(protocol);
  // TIME_WAIT and request sockets have no inode: leaving them out keeps the dump short
  // after thousands of connections.
  msg.req.idiag_states = ~((1u << 3 /*SYN_RECV*/) | (1u << 6 /*TIME_WAIT*/) | (1u << 12 /*NEW_SYN_RECV*/));
  sockaddr_nl nl;
  memset(&nl, 0, sizeof nl);
  nl.nl_family = AF_NETLINK;
  if (sendto(fd, &msg, sizeof msg, 0, reinterpret_cast<sockaddr*>(&nl), sizeof nl) < 0) return -errno;
  alignas(nlmsghdr) char buf[32768];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type == NLMSG_DONE) return 0;
      if (h->nlmsg_type == NLMSG_ERROR) {
        auto* e = static_cast<nlmsgerr*>(NLMSG_DATA(h));
        return e->error == -ENOENT ? 0 : e->error;  // protocol not available (udplite module)
      }
      auto* m = static_cast<inet_diag_msg*>(NLMSG_DATA(h));
      if (m->idiag_inode) out->push_back({m->idiag_inode, protocol, ntohs(m->id.idiag_sport)});
    }
  }
}

}  // namespace

int list_sockets(const std::vector<int>& protocols, std::vector<LiveSocket>* out) {
  UniqueFd fd(socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (!fd.valid()) return -errno;
  for (int family : {AF_INET, AF_INET6})
    for (int proto : protocols) {
      int r = dump(fd.get(), family, proto, out);
      if (r < 0 && proto != IPPROTO_UDPLITE) return r;
    }
  return 0;
}
