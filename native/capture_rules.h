// The capture side of the stop path: while a tracee is held at a socket call, the rules that
// let its packets through the kernel filter are put in the eBPF maps — before the first
// packet can leave. Rules belong to sockets (by inode); the controller releases a socket's
// rules when it decides the socket is gone (after its grace period).
#pragma once
#include <map>
#include <mutex>
#include <set>
#include <vector>

#include "filter_keys.h"
#include "socket_hook.h"
#include "unique_fd.h"

class CaptureRules : public SocketHook {
 public:
  // Takes ownership of the three map fds (FlowKey, EndpointKey local, EndpointKey remote).
  CaptureRules(int flows_fd, int binds_fd, int pending_fd);

  void before_call(const SocketCallInfo& call, bool need_exit,
                   std::vector<RuleSpec>* added) override;
  void after_call(const SocketCallInfo& call, int64_t result, const SocketInfo& after,
                  std::vector<RuleSpec>* added) override;

  // Removes every rule held by the socket with this inode; returns how many map keys went.
  int release(uint64_t inode);
  // Adds the rules of a socket that already exists (attach mode, inherited sockets).
  void adopt(const SocketInfo& socket, std::vector<RuleSpec>* added);
  size_t rule_count();

 private:
  using Owners = std::map<std::vector<uint8_t>, std::set<uint64_t>>;
  // The rules that let the packets of a socket with a known local endpoint through.
  void add_socket_rules(const SocketInfo& s, const Endpoint* remote, std::vector<RuleSpec>* added);
  void add_pending(const SocketCallInfo& call, int delta, std::vector<RuleSpec>* added);
  void put(int fd, Owners& owners, const void* key, size_t size, uint64_t inode);

  UniqueFd flows_, binds_, pending_;
  std::mutex mutex_;
  // key bytes -> the sockets holding it; a key leaves the map when its last socket releases it
  Owners flow_owners_, bind_owners_;
  std::map<uint64_t, std::vector<std::pair<RuleKind, std::vector<uint8_t>>>> by_inode_;
  std::map<EndpointKey, int> pending_count_;
};
