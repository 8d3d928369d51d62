// The native stop-path hook: what must happen while a tracee is held at a socket call (e.g.
// a capture filter rule inserted before the SYN leaves) runs here, never in JavaScript.
#pragma once
#include <sys/types.h>

#include <vector>

#include "sockets.h"
#include "trace_event.h"

struct SocketCallInfo {
  pid_t pid = 0;
  pid_t tid = 0;
  SocketCall call = SocketCall::kConnect;
  int fd = -1;
  SocketInfo socket;             // as inspected at entry
  std::vector<Endpoint> dests;   // addresses named by the call's arguments
};

class SocketHook {
 public:
  virtual ~SocketHook() = default;
  // At syscall entry, before the tracee may run the call.
  virtual void before_call(const SocketCallInfo& call) = 0;
  // At syscall exit (only for calls that took an exit stop), before the tracee runs on.
  // `after` is the socket as inspected after the call; result is the return value or -errno.
  virtual void after_call(const SocketCallInfo& call, int64_t result, const SocketInfo& after) = 0;
};
