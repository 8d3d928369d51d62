// Rules for the kernel filter, derived from what the tracer saw at a socket call.
#include "capture_rules.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>

#include "bpf.h"
#include "clock.h"
#include "stop_stats.h"

EndpointKey endpoint_key(const Endpoint& e, int socket_protocol) {
  EndpointKey k;
  memset(&k, 0, sizeof k);
  k.proto = wire_proto(socket_protocol);
  k.port = e.port;
  const uint8_t* a = e.addr;
  int words = 4;
  if (e.family == AF_INET || is_v4_mapped(e)) {
    k.family = 4;
    if (e.family == AF_INET6) a += 12;
    words = 1;
  } else {
    k.family = 6;
  }
  for (int i = 0; i < words; i++) {
    uint32_t w;
    memcpy(&w, a + 4 * i, 4);
    k.addr[i] = ntohl(w);
  }
  return k;
}

namespace {

std::vector<uint8_t> bytes(const void* p, size_t n) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  return std::vector<uint8_t>(b, b + n);
}


// A pending key whose last call ended leaves the kernel map at once, the first time: while it
// is there, everyone's packets to or from that destination reach the ring (a transfer to the
// same server beside the program's own fills it for nothing). A destination called again
// within this long is one the program calls again and again (a connect storm, fresh sockets
// to one DNS server): its key then stays this long after each call, so that each call costs no
// map update and delete, one of them while the tracee is held. The kernel filter is a superset
// either way: the controller judges every packet by the exact endpoints.
constexpr uint64_t kPendingLingerNs = 1'000'000'000;

// Instrumentation: how many flow and bind keys the maps hold, for the stop timings.
template <class Flows, class Binds>
void note_present(const Flows& flows, const Binds& binds) {
  if (stop_stats::on())
    stop_stats::g_rules_present.store(static_cast<uint32_t>(flows.size() + binds.size()),
                                      std::memory_order_relaxed);
}

}  // namespace

uint64_t ClassicSwitch::rules_added() {
  ++generation_;
  if (!wide_attached_) {
    stop_stats::Timed timed(stop_stats::kClassicWide, static_cast<uint32_t>(wide_.size()));
    if (capture_->attach_classic(wide_) == 0) {
      wide_attached_ = true;
      ++swaps_;
    }
  }
  return generation_;
}

int ClassicSwitch::offer(const std::vector<sock_filter>& exact, uint64_t generation, bool pending) {
  if (generation < generation_ || pending) return 0;
  stop_stats::Timed timed(stop_stats::kClassicExact, static_cast<uint32_t>(exact.size()));
  int r = capture_->attach_classic(exact);
  if (r < 0) return r;
  wide_attached_ = false;
  return 1;
}

CaptureRules::CaptureRules(int flows_fd, int binds_fd, int pending_fd)
    : flows_(flows_fd), binds_(binds_fd), pending_(pending_fd) {}

CaptureRules::CaptureRules(std::shared_ptr<ClassicSwitch> classic) : classic_(std::move(classic)) {}

void CaptureRules::changed() {
  if (classic_) classic_->rules_added();
}

int CaptureRules::offer_classic(const std::vector<sock_filter>& exact, uint64_t generation) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!classic_) return -EINVAL;
  return classic_->offer(exact, generation, !pending_count_.empty());
}

uint64_t CaptureRules::generation() {
  std::lock_guard<std::mutex> lock(mutex_);
  return classic_ ? classic_->generation() : 0;
}

void CaptureRules::put(int fd, Owners& owners, const void* key, size_t size, uint64_t inode) {
  std::vector<uint8_t> k = bytes(key, size);
  auto it = owners.find(k);
  if (it == owners.end()) {
    uint32_t one = 1;
    int r = 0;
    if (fd >= 0) {
      stop_stats::Timed timed(stop_stats::kMapInsert, static_cast<uint32_t>(owners.size()));
      r = bpf::map_update(fd, key, &one);
    }
    if (r < 0) {
      failed_++;  // map full (E2BIG) or out of memory: counted and reported, never hidden
      return;
    }
    it = owners.emplace(k, std::set<uint64_t>()).first;
    changed();
    note_present(flow_owners_, bind_owners_);
  }
  auto& set = it->second;
  if (set.insert(inode).second)
    by_inode_[inode].push_back({&owners == &flow_owners_ ? RuleKind::kFlow : RuleKind::kBind, k});
}

void CaptureRules::add_socket_rules(const SocketInfo& s, const Endpoint* remote,
                                    std::vector<RuleSpec>* added) {
  if (s.local.port == 0) return;  // not bound yet (e.g. IP_BIND_ADDRESS_NO_PORT): no packet can flow
  int proto = s.protocol;
  std::lock_guard<std::mutex> lock(mutex_);
  // (a ping socket's peer has port 0: its echoes are keyed so, see sockets.h)
  if (remote && remote->valid() && (remote->port != 0 || is_ping(s))) {
    FlowKey fk{endpoint_key(s.local, proto), endpoint_key(*remote, proto)};
    put(flows_.get(), flow_owners_, &fk, sizeof fk, s.inode);
    added->push_back({RuleKind::kFlow, wire_proto(proto), s.local, *remote});
    // A connected socket only talks on its 4-tuple: a port rule from an earlier bind() would
    // outlive its purpose and catch whoever takes the port next.
    drop_binds(s.inode);
    return;
  }
  EndpointKey bk = endpoint_key(s.local, proto);
  put(binds_.get(), bind_owners_, &bk, sizeof bk, s.inode);
  added->push_back({RuleKind::kBind, wire_proto(proto), s.local, Endpoint{}});
  // A dual-stack socket bound to [::] also receives IPv4.
  if (s.local.family == AF_INET6 && is_wildcard(s.local) && !s.v6only) {
    EndpointKey v4 = bk;
    v4.family = 4;
    put(binds_.get(), bind_owners_, &v4, sizeof v4, s.inode);
  }
}

void CaptureRules::add_pending(const SocketCallInfo& c, int delta, std::vector<RuleSpec>* added) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const Endpoint& d : c.dests) {
    EndpointKey k = endpoint_key(d, c.socket.protocol);
    int& n = pending_count_[k];
    n += delta;
    if (delta > 0 && n == 1) {
      auto lingering = lingering_.find(k);
      if (lingering != lingering_.end()) {
        lingering_.erase(lingering);  // still in the map
      } else if (pending_.valid()) {
        uint32_t one = 1;
        stop_stats::Timed timed(stop_stats::kMapInsert, static_cast<uint32_t>(pending_count_.size() - 1));
        if (bpf::map_update(pending_.get(), &k, &one) < 0) failed_++;
      }
      changed();
    }
    if (n <= 0) {
      pending_count_.erase(k);
      if (pending_.valid()) {
        const uint64_t now = monotonic_ns();
        auto last = released_.find(k);
        const bool again = last != released_.end() && now - last->second < kPendingLingerNs;
        released_[k] = now;
        if (again)
          lingering_[k] = now + kPendingLingerNs;
        else
          unpend_.push_back(k);  // out once the tracee runs on (after_resume), not while held
      }
    }
    if (delta > 0 && added) added->push_back({RuleKind::kPending, wire_proto(c.socket.protocol), {}, d});
  }
}

void CaptureRules::after_resume() {
  std::lock_guard<std::mutex> lock(mutex_);
  flush_unpend();
}

// mutex_ held
void CaptureRules::flush_unpend() {
  for (const EndpointKey& k : unpend_) {
    // called again meanwhile (another thread's call): still wanted
    if (pending_count_.count(k) || lingering_.count(k)) continue;
    stop_stats::Timed timed(stop_stats::kMapDelete, static_cast<uint32_t>(pending_count_.size()));
    bpf::map_delete(pending_.get(), &k);
  }
  unpend_.clear();
}

int CaptureRules::expire_pending(bool all) {
  std::lock_guard<std::mutex> lock(mutex_);
  const uint64_t now = monotonic_ns();
  flush_unpend();  // (calls ended by a tracee's death take no after_resume)
  if (all) {  // with the calls left in flight (a detach mid-call)
    for (auto& [key, n] : pending_count_) lingering_[key] = now;
    pending_count_.clear();
  }
  int removed = 0;
  for (auto it = lingering_.begin(); it != lingering_.end();) {
    if (!all && it->second > now) {
      ++it;
      continue;
    }
    if (pending_.valid()) {
      stop_stats::Timed timed(stop_stats::kMapDelete, static_cast<uint32_t>(lingering_.size()));
      bpf::map_delete(pending_.get(), &it->first);
    }
    it = lingering_.erase(it);
    removed++;
  }
  for (auto it = released_.begin(); it != released_.end();)
    it = all || now - it->second >= kPendingLingerNs ? released_.erase(it) : std::next(it);
  return removed;
}

void CaptureRules::before_call(const SocketCallInfo& c, bool need_exit, std::vector<RuleSpec>* added) {
  if (need_exit) {
    // The local port is picked inside the call, and the first packet leaves inside it too:
    // let everything to/from the destination through until the exit says which port it was.
    if (c.call != SocketCall::kBind && c.call != SocketCall::kListen) add_pending(c, +1, added);
    return;
  }
  // Local endpoint already known: a connected socket gets its exact flow, others their port.
  const Endpoint* remote = nullptr;
  if (c.socket.peer.valid())
    remote = &c.socket.peer;
  else if (c.call == SocketCall::kConnect && !c.dests.empty())
    remote = &c.dests[0];
  add_socket_rules(c.socket, remote, added);
}

void CaptureRules::after_call(const SocketCallInfo& c, int64_t result, const SocketInfo& after,
                              std::vector<RuleSpec>* added) {
  bool ok = result >= 0 || (c.call == SocketCall::kConnect && result == -EINPROGRESS);
  // Failed and unbound: nothing of it can flow. Otherwise the socket's own rule goes in
  // first and only then the pending one out: a reply arriving in between must still pass.
  if (ok || after.local.port != 0) {
    const Endpoint* remote = nullptr;
    if (after.peer.valid())
      remote = &after.peer;
    else if (c.call == SocketCall::kConnect && ok && !c.dests.empty())
      remote = &c.dests[0];  // a connect in progress has no peer name yet
    if (c.call == SocketCall::kConnect && is_udp(after.protocol) && !ok) remote = nullptr;
    add_socket_rules(after, remote, added);
  }
  if (c.call != SocketCall::kBind && c.call != SocketCall::kListen) add_pending(c, -1, nullptr);
}

void CaptureRules::adopt(const SocketInfo& s, std::vector<RuleSpec>* added) {
  add_socket_rules(s, s.peer.valid() ? &s.peer : nullptr, added);
}

// Removes the inode's hold on its rules of `kind` (all kinds when kind is null); returns how
// many keys left the maps. mutex_ held.
int CaptureRules::drop(uint64_t inode, const RuleKind* only) {
  auto it = by_inode_.find(inode);
  if (it == by_inode_.end()) return 0;
  int removed = 0;
  auto& held = it->second;
  for (auto h = held.begin(); h != held.end();) {
    RuleKind kind = h->first;
    if (only && kind != *only) {
      ++h;
      continue;
    }
    Owners& owners = kind == RuleKind::kFlow ? flow_owners_ : bind_owners_;
    auto o = owners.find(h->second);
    if (o != owners.end()) {
      o->second.erase(inode);
      if (o->second.empty()) {
        int fd = kind == RuleKind::kFlow ? flows_.get() : binds_.get();
        if (fd >= 0) {
          stop_stats::Timed timed(stop_stats::kMapDelete, static_cast<uint32_t>(owners.size()));
          bpf::map_delete(fd, h->second.data());
        }
        owners.erase(o);
        removed++;
        note_present(flow_owners_, bind_owners_);
      }
    }
    h = held.erase(h);
  }
  if (held.empty()) by_inode_.erase(it);
  return removed;
}

void CaptureRules::drop_binds(uint64_t inode) {
  RuleKind bind = RuleKind::kBind;
  drop(inode, &bind);
}

int CaptureRules::release(uint64_t inode) {
  std::lock_guard<std::mutex> lock(mutex_);
  return drop(inode, nullptr);
}

uint64_t CaptureRules::failed() {
  std::lock_guard<std::mutex> lock(mutex_);
  return failed_;
}

size_t CaptureRules::rule_count() {
  std::lock_guard<std::mutex> lock(mutex_);
  return flow_owners_.size() + bind_owners_.size() + pending_count_.size() + lingering_.size();
}
