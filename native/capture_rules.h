// The capture side of the stop path: while a tracee is held at a socket call, the rules that
// let its packets through the kernel filter are put in the eBPF maps — before the first
// packet can leave. Rules belong to sockets (by inode); the controller releases a socket's
// rules when it decides the socket is gone (after its grace period).
#pragma once
#include <map>
#include <mutex>
#include <set>
#include <vector>

#include <linux/filter.h>

#include <memory>

#include "capture.h"
#include "filter_keys.h"
#include "socket_hook.h"
#include "unique_fd.h"

// Classic-BPF fallback (no eBPF maps): the stop path cannot rebuild a program, so any new
// rule swaps in the prebuilt "wide" program at once; the controller later offers an exact
// program built from its rule table, attached only if no rule came since and no call is
// pending. The kernel filter stays a superset; userspace decides exactly.
class ClassicSwitch {
 public:
  ClassicSwitch(std::shared_ptr<Capture> capture, std::vector<sock_filter> wide)
      : capture_(std::move(capture)), wide_(std::move(wide)) {}
  // The rule set grew: make sure the wide program is attached. Returns the new generation.
  uint64_t rules_added();
  // Attaches `exact` if it reflects every rule (generation) and nothing is pending.
  // Returns 1 attached, 0 not now (stale or pending), -errno on failure.
  int offer(const std::vector<sock_filter>& exact, uint64_t generation, bool pending);
  uint64_t generation() const { return generation_; }
  bool wide_attached() const { return wide_attached_; }
  uint64_t swaps() const { return swaps_; }

 private:
  std::shared_ptr<Capture> capture_;
  std::vector<sock_filter> wide_;
  uint64_t generation_ = 0;
  bool wide_attached_ = false;
  uint64_t swaps_ = 0;  // wide attaches done in the stop path
};

class CaptureRules : public SocketHook {
 public:
  // Takes ownership of the three map fds (FlowKey, EndpointKey local, EndpointKey remote).
  CaptureRules(int flows_fd, int binds_fd, int pending_fd);
  // Classic mode: no maps; rule changes go through the switch.
  explicit CaptureRules(std::shared_ptr<ClassicSwitch> classic);

  void before_call(const SocketCallInfo& call, bool need_exit,
                   std::vector<RuleSpec>* added) override;
  void after_call(const SocketCallInfo& call, int64_t result, const SocketInfo& after,
                  std::vector<RuleSpec>* added) override;

  // Removes every rule held by the socket with this inode; returns how many map keys went.
  int release(uint64_t inode);
  // Takes out the pending keys whose linger has ended (see kPendingLingerNs), or with `all`
  // every pending key (tracing has ended: no call is in flight any more); returns how many.
  int expire_pending(bool all = false);
  // Takes out the pending keys whose last call just ended (see kPendingLingerNs).
  void after_resume() override;
  // Adds the rules of a socket that already exists (attach mode, inherited sockets).
  void adopt(const SocketInfo& socket, std::vector<RuleSpec>* added) override;
  size_t rule_count();
  // Rules the kernel map refused (full): their packets may be missing.
  uint64_t failed();
  // Classic mode: see ClassicSwitch::offer.
  int offer_classic(const std::vector<sock_filter>& exact, uint64_t generation);
  // The rule generation an event reflects (classic mode; 0 otherwise).
  uint64_t generation() override;
  ClassicSwitch* classic() { return classic_.get(); }

 private:
  using Owners = std::map<std::vector<uint8_t>, std::set<uint64_t>>;
  // The rules that let the packets of a socket with a known local endpoint through.
  void add_socket_rules(const SocketInfo& s, const Endpoint* remote, std::vector<RuleSpec>* added);
  void add_pending(const SocketCallInfo& call, int delta, std::vector<RuleSpec>* added);
  void put(int fd, Owners& owners, const void* key, size_t size, uint64_t inode);
  int drop(uint64_t inode, const RuleKind* only);
  void drop_binds(uint64_t inode);

  void changed();  // a rule was added (mutex held)
  void flush_unpend();  // takes the keys of unpend_ out of the map (mutex held)

  UniqueFd flows_, binds_, pending_;
  std::shared_ptr<ClassicSwitch> classic_;
  std::mutex mutex_;
  // key bytes -> the sockets holding it; a key leaves the map when its last socket releases it
  Owners flow_owners_, bind_owners_;
  std::map<uint64_t, std::vector<std::pair<RuleKind, std::vector<uint8_t>>>> by_inode_;
  std::map<EndpointKey, int> pending_count_;
  // Pending keys no call holds any more, still in the map until the time given (ns).
  std::map<EndpointKey, uint64_t> lingering_;
  // When each pending key's last call ended (ns), kept for the linger: a key called again
  // within it lingers (see kPendingLingerNs).
  std::map<EndpointKey, uint64_t> released_;
  // Pending keys to take out of the map once the tracee is resumed (after_resume).
  std::vector<EndpointKey> unpend_;
  uint64_t failed_ = 0;
};
