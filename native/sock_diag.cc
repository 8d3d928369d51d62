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
#include <cstdio>
#include <cstring>

#include "unique_fd.h"

namespace {

int dump(int fd, int family, int protocol, std::vector<LiveSocket>* out,
         std::vector<FinishingFlow>* finishing) {
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
  // after thousands of connections (TIME_WAIT is asked for when finishing flows are).
  const bool tw = finishing && protocol == IPPROTO_TCP;
  msg.req.idiag_states = ~((1u << 3 /*SYN_RECV*/) | (tw ? 0u : 1u << 6 /*TIME_WAIT*/) | (1u << 12 /*NEW_SYN_RECV*/));
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
      if (m->idiag_inode) {
        out->push_back({m->idiag_inode, protocol, ntohs(m->id.idiag_sport), m->idiag_state == 10 /*LISTEN*/});
      } else if (tw && m->idiag_state != 10 /*LISTEN*/) {
        FinishingFlow f;
        memset(&f, 0, sizeof f);
        f.family = m->idiag_family;
        f.state = m->idiag_state;
        const size_t n = m->idiag_family == AF_INET ? 4 : 16;
        memcpy(f.local, m->id.idiag_src, n);
        memcpy(f.remote, m->id.idiag_dst, n);
        f.local_port = ntohs(m->id.idiag_sport);
        f.remote_port = ntohs(m->id.idiag_dport);
        finishing->push_back(f);
      }
    }
  }
}

// Ping sockets (ICMP datagram sockets) have no sock_diag handler: /proc/net/icmp and icmp6
// list them, with the echo identifier as the local port.
int list_ping(int protocol, std::vector<LiveSocket>* out) {
  FILE* f = fopen(protocol == IPPROTO_ICMP ? "/proc/net/icmp" : "/proc/net/icmp6", "re");
  if (!f) return errno == ENOENT ? 0 : -errno;
  char line[512];
  bool header = true;
  while (fgets(line, sizeof line, f)) {
    if (header) {
      header = false;
      continue;
    }
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
    unsigned port = 0;
    unsigned long inode = 0;
    if (sscanf(line, " %*s %*[0-9A-Fa-f]:%x %*s %*s %*s %*s %*s %*s %*s %lu", &port, &inode) == 2 && inode)
      out->push_back({inode, protocol, static_cast<uint16_t>(port), false});
  }
  fclose(f);
  return 0;
}

}  // namespace

int list_sockets(const std::vector<int>& protocols, std::vector<LiveSocket>* out,
                 std::vector<FinishingFlow>* finishing) {
  UniqueFd fd(socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (!fd.valid()) return -errno;
  for (int family : {AF_INET, AF_INET6})
    for (int proto : protocols) {
      if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) continue;
      int r = dump(fd.get(), family, proto, out, finishing);
      if (r < 0 && proto != IPPROTO_UDPLITE) return r;
    }
  for (int proto : protocols) {
    if (proto != IPPROTO_ICMP && proto != IPPROTO_ICMPV6) continue;
    int r = list_ping(proto, out);
    if (r < 0) return r;
  }
  return 0;
}
