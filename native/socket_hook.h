// The native stop-path hook: what must happen while a tracee is held at a socket call (e.g.
// a capture filter rule inserted before the SYN leaves) runs here, never in JavaScript.
#pragma once
#include <sys/types.h>

#include <vector>

#include "sockets.h"

// No call behind these: kExisting, a socket the process had when tracedump attached;
// kInherited, one the launched command got from its caller (found at its first exec);
// kFound, one that appeared in a traced process's fd table without a traced call (received
// over a Unix socket, made by io_uring, taken with pidfd_getfd): found late, by a sweep.
enum class SocketCall : uint8_t {
  kConnect, kBind, kListen, kSendto, kSendmsg, kSendmmsg, kExisting, kInherited, kFound
};

struct SocketCallInfo {
  pid_t pid = 0;
  pid_t tid = 0;
  SocketCall call = SocketCall::kConnect;
  int fd = -1;
  SocketInfo socket;             // as inspected at entry
  std::vector<Endpoint> dests;   // addresses named by the call's arguments
};

enum class RuleKind : uint8_t {
  kFlow,     // exact local+remote endpoints (a connected socket)
  kBind,     // a local endpoint, any remote (listening or unconnected sockets)
  kPending,  // a remote endpoint while the call that picks the local port runs
};

// A rule the hook put in the kernel filter, reported to the controller with the event.
struct RuleSpec {
  RuleKind kind;
  int proto;  // wire protocol
  Endpoint local;
  Endpoint remote;
};

class SocketHook {
 public:
  virtual ~SocketHook() = default;
  // At syscall entry, before the tracee may run the call. need_exit: an exit stop follows.
  virtual void before_call(const SocketCallInfo& call, bool need_exit,
                           std::vector<RuleSpec>* added) = 0;
  // At syscall exit (only for calls that took an exit stop): before the tracee runs on, or
  // just after for a connect in progress whose pending rule still matches its traffic.
  // `after` is the socket as inspected after the call; result is the return value or -errno.
  virtual void after_call(const SocketCallInfo& call, int64_t result, const SocketInfo& after,
                          std::vector<RuleSpec>* added) = 0;
  // Just after the tracee was resumed from an exit stop: work the stop need not hold it for.
  virtual void after_resume() {}
  // A socket that existed before tracing began (attach mode): its rules as they stand.
  virtual void adopt(const SocketInfo& socket, std::vector<RuleSpec>* added) = 0;
  // A number that grows with every rule added; events carry it so the controller knows
  // which rules a filter it builds reflects.
  virtual uint64_t generation() { return 0; }
};
