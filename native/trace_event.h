// The events the tracer loop reports to the controller, and the queue that carries them.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "socket_hook.h"
#include "sockets.h"
#include "wake_queue.h"

enum class EventKind : uint8_t {
  kSocket,   // a traced socket call (connect, bind, listen, sendto, sendmsg, sendmmsg)
  kPending,  // a socket call entered whose local endpoint is known only at its exit
  kAttach,   // attach mode: a running process is now traced (all its threads)
  kSpawn,    // a tracee created a process (fork/vfork/clone) or a thread (clone)
  kExec,     // a tracee replaced its program
  kExit,     // a tracee thread or process ended
  kWarning,  // something the tracer could not follow; tracing goes on
  kDone,     // no tracee is left; the last event of a tracer
};

// Child-side failures before the command's program ran (reported with the root's exit).
enum class LaunchStage : uint8_t { kNone, kStdio, kChdir, kSync, kSeccomp, kCredentials, kExec };

struct TraceEvent {
  EventKind kind = EventKind::kWarning;
  double time_ms = 0;  // CLOCK_REALTIME, milliseconds since the epoch
  pid_t pid = 0;       // thread-group id
  pid_t tid = 0;

  // kSocket
  SocketCall call = SocketCall::kConnect;
  int fd = -1;
  SocketInfo socket;               // local endpoint after the call when it had an exit stop
  std::vector<Endpoint> remotes;   // destinations named by the call, else the peer
  bool has_result = false;         // false: the call was let run without an exit stop
  int64_t result = 0;              // return value, -errno on failure
  std::vector<RuleSpec> rules;     // kernel filter rules the hook added for this call
  uint64_t rule_generation = 0;    // the hook's generation after this call's rules
  // The call's kPending event, merged into this kSocket one (merge_pending_events): its time
  // and rules. has_entry false: not merged.
  bool has_entry = false;
  double entry_ms = 0;
  std::vector<RuleSpec> entry_rules;
  // kFound/kInherited: packets the socket had exchanged when it was found (TCP's own count;
  // -1: unknown, a UDP socket). Those of them before the find are not in the capture.
  int64_t exchanged_before = -1;

  // kSpawn
  pid_t child = 0;
  bool thread = false;
  int spawn_event = 0;  // PTRACE_EVENT_FORK / VFORK / CLONE

  int threads = 0;  // kAttach: threads attached

  // kExec (comm also names the process on kSocket events)
  pid_t former_tid = 0;
  std::string comm, exe, thread_name;

  // kExit
  bool exited = false;  // true: exit code; false: killed by signal
  int code = 0;
  int signal = 0;
  bool core = false;
  LaunchStage failed_stage = LaunchStage::kNone;  // root only: the command never ran
  int failed_errno = 0;

  std::string message;  // kWarning

  double detached_at_ms = 0;  // kDone after a detach: when detaching began (0: not detached)
};

using EventQueue = WakeQueue<TraceEvent>;
