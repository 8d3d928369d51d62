// The tracer: forks the command under seccomp + ptrace and runs the waitpid loop on its own
// thread (ptrace requests are bound to the thread that attached). Mechanism only: which
// sockets count and what is done with them is decided by the SocketHook and the controller.
#pragma once
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "capture_gate.h"
#include "socket_hook.h"
#include "trace_event.h"
#include "unique_fd.h"

struct LaunchOptions {
  std::string path;               // resolved executable (bytes)
  std::vector<std::string> argv;  // argv[0] as the user gave it; bytes, not necessarily UTF-8
  std::vector<std::string> env;   // NAME=value entries, bytes
  std::string cwd;
  int stdio[3] = {0, 1, 2};       // fds of this process that become the command's 0, 1, 2
  std::vector<int> keep_fds;      // the caller's own fds (above 2): the command gets them, same numbers
  // Run as this user (setgroups/setgid/setuid after the seccomp filter is in place).
  bool set_credentials = false;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
  // The capture's gate (capture_gate.h): a closed one holds every seccomp stop until it opens.
  std::shared_ptr<CaptureGate> gate;
};

// A failure of the tracer itself, with the syscall and errno behind it.
struct TracerError {
  std::string syscall;
  int err = 0;
  std::string message;
  pid_t pid = 0;  // attach: the process that could not be traced
};

class Tracer {
 public:
  Tracer(std::shared_ptr<EventQueue> events, std::shared_ptr<SocketHook> hook);
  ~Tracer();
  Tracer(const Tracer&) = delete;
  Tracer& operator=(const Tracer&) = delete;

  // Starts the tracer thread, which forks and seizes the command. Returns its pid once it is
  // traced; on failure returns -1 and fills *error. The command's program runs after this.
  pid_t launch(const LaunchOptions& options, TracerError* error);

  // Attach mode: seizes every thread of these running processes, adopts the sockets they
  // already have, and traces them with syscall stops (a running process cannot be given a
  // seccomp filter from outside). Returns 0, or -1 with *error naming the pid.
  int attach(const std::vector<pid_t>& pids, TracerError* error);

  // Attach mode: stops tracing; every tracee is detached and runs on as before. Returns once
  // the tracer thread has started detaching (the kDone event follows when it is over).
  void request_detach();

  // Socket events do not wake the controller: it polls for them (before judging each packet
  // batch, and on its tick). Saves a cross-CPU wake-up, paid on the tracer thread between
  // stops, per event. Set before launch() or attach().
  void set_socket_events_polled(bool polled) { socket_events_polled_ = polled; }

  // Asks the tracer thread to search every traced process's fd table for sockets no traced
  // call showed (received over a Unix socket, made by io_uring...). Any thread; the search
  // runs on the tracer thread at once if it is waiting, else after the stop it handles.
  void request_sweep();

  // Send calls on this socket take an exit stop from now on, so that the controller knows when
  // each one ended (a port another process shares: only the program's own datagrams count).
  // Any thread.
  void stop_at_send_exits(uint64_t inode);

  // Sends a signal to the launched command (race-free through its pidfd). Returns -errno or 0.
  int signal_root(int sig);

  bool finished() const { return finished_.load(); }
  // Joins the tracer thread if it has finished; detaches it otherwise (process teardown).
  void release_thread();

 private:
  struct Tracee {
    pid_t tid = 0;
    pid_t tgid = 0;           // 0 until known
    bool expect_exit = false; // resumed with PTRACE_SYSCALL to see the exit of `pending`
    SocketCallInfo pending;
    // The socket of `pending`, duplicated at the entry stop and kept until the exit stop (or
    // the tracee's end): the exit asks it for the endpoints only. Invalid: not kept.
    UniqueFd pending_dup;
    // `pending` is a connect to the address it names (not the any-address, which the kernel
    // replaces): if it succeeds, that address is its peer.
    bool connect_as_named = false;
    // Stopped at the exit of a call that can bring sockets in (fd_source_syscalls): the
    // process's fd table is searched then.
    bool sweep_at_exit = false;
    bool sweep_quick = false;
  };
  struct Process {
    UniqueFd pidfd;
    std::string comm;
    bool warned_abi = false;
    // At its last search for late sockets (find_late_sockets): how many fds it had, and its
    // inet sockets that had no port yet (fd, inode).
    size_t fds = SIZE_MAX;
    std::vector<std::pair<int, uint64_t>> unbound;
    // io_uring_enter: when its fd table was last looked at, and whether nothing had changed
    // then (the next calls within kUringQuietNs are let run without a look).
    uint64_t uring_checked_ns = 0;
    bool uring_quiet = false;
  };

  void run_launch(LaunchOptions options);
  void run_attach(std::vector<pid_t> pids);
  int seize_process(pid_t pid, std::vector<pid_t>* seized);
  void adopt_sockets(pid_t tgid, std::set<uint64_t>* adopted, SocketCall call);
  // Emits kFound events for sockets in the fd tables (of `only`, or of every traced process
  // when 0) that no traced call showed, timed when found (their rules are in from then on).
  void find_late_sockets(pid_t only, bool quick = false);
  void consider_socket(Process& p, pid_t tgid, int fd, uint64_t ino, std::set<uint64_t>* adopted);
  // The socket on a tracee's fd, inspected through a duplicate (left open in *dup); false when
  // the fd cannot be taken or is no socket.
  bool inspect_tracee_fd(Process& p, pid_t tgid, int fd, SocketCall call, SocketCallInfo* c, UniqueFd* dup);
  // A socket that came without a traced call: its rules, and the event saying so (with the TCP
  // segments it had exchanged when asked: inherited and found ones).
  void adopt(const SocketCallInfo& c, UniqueFd dup, bool count_segments, double time_ms);
  void on_fd_source(Tracee& t, long nr, const uint64_t args[6]);
  pid_t wait_started(TracerError* error);  // caller side of the start handshake
  void start_succeeded(pid_t root);
  void start_failed(TracerError error);
  void loop();
  void detach_all();
  void on_syscall_stop(Tracee& t);
  void on_call_entry(Tracee& t, long nr, const uint64_t args[6]);
  void handle(pid_t tid, int status);
  void on_death(pid_t tid, int status);
  void on_seccomp(Tracee& t);
  void unsupported_abi(Tracee& t, pid_t pid);
  // known_result: the return value when the caller has it already (attach mode's syscall info).
  void on_syscall_exit(Tracee& t, const int64_t* known_result = nullptr);
  void on_spawn(Tracee& t, int event);
  void on_exec(Tracee& t);
  void resume(Tracee& t, int sig);

  Tracee& tracee(pid_t tid);
  pid_t tgid_of(Tracee& t);
  Process& process(pid_t tgid);
  // time_ms: the event's time when the caller says (a late find), else the stop's.
  void emit_socket_event(EventKind kind, const SocketCallInfo& c, const SocketInfo& after,
                         bool has_result, int64_t result, std::vector<RuleSpec> rules,
                         double time_ms = 0, int64_t exchanged_before = -1);
  void warn(pid_t pid, pid_t tid, std::string message);
  void read_launch_failure(TraceEvent* exit_event);

  std::shared_ptr<EventQueue> events_;
  std::shared_ptr<SocketHook> hook_;
  bool socket_events_polled_ = false;
  std::thread thread_;
  std::atomic<bool> finished_{false};

  // launch handshake between the caller and the tracer thread
  std::mutex start_mutex_;
  std::condition_variable start_cv_;
  bool start_done_ = false;
  TracerError start_error_;

  pid_t root_pid_ = -1;
  bool attach_mode_ = false;
  std::shared_ptr<CaptureGate> gate_;  // launch with a deferred capture ring: closed until it is live
  bool capture_live(Tracee& t);
  std::atomic<bool> detach_requested_{false};
  std::atomic<bool> detach_started_{false};
  std::atomic<pid_t> thread_tid_{0};
  double detached_at_ms_ = 0;  // tracer thread: when detach_all began
  UniqueFd root_pidfd_;     // for signal_root from other threads
  UniqueFd launch_report_;  // read end of the child's CLOEXEC error pipe

  std::atomic<bool> sweep_requested_{false};
  std::mutex send_exits_mutex_;
  std::unordered_set<uint64_t> send_exits_;  // stop_at_send_exits
  std::atomic<bool> any_send_exits_{false};
  std::atomic<bool> in_waitpid_{false};

  // tracer-thread state
  bool root_started_ = false;  // the launched command's first exec was seen
  // Socket inodes every traced process's fd table may hold without being late: the ones events
  // named, and ones that are not followed (AF_UNIX...). Pruned to the fd tables by each sweep.
  std::unordered_set<uint64_t> known_inodes_;
  // TCP ports the program listens on: a socket found with one of them was accepted (accept is
  // not traced: the listener's rule covers its connections).
  std::unordered_set<uint16_t> listen_ports_;
  std::unordered_map<pid_t, Tracee> tracees_;
  std::unordered_map<pid_t, Process> processes_;
  SocketFactsCache facts_;
  // A duplicate is kept across a call only below this fd number (half the fd limit), so that
  // threads blocked in calls never use up the fds the rest of tracedump needs.
  int keep_dup_below_ = 0;
  // Instrumentation (stop_stats.h): when waitpid() returned the stop being handled, and which
  // timing the resume that ends it is recorded as (-1: none).
  uint64_t stop_ns_ = 0;
  int timed_ = -1;
  // When waitpid() returned the stop being handled (realtime ms, the packets' clock; 0: none).
  // A call's events carry it: its packets leave after an entry stop and before an exit stop.
  double stop_ms_ = 0;
};
