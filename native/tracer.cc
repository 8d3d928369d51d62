// The ptrace loop: one waitpid status becomes one handled event (strace's shape:
// handle(next stop)). All ptrace requests for a tracer happen on its own thread.
#include "tracer.h"

#include <fcntl.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "seccomp.h"

#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef PTRACE_EVENT_STOP
#define PTRACE_EVENT_STOP 128
#endif

namespace {

constexpr int kPtraceOptions = PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACESECCOMP |
                               PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE |
                               PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL;

// At most this many distinct destinations are reported for one sendmmsg.
constexpr size_t kMaxDestinations = 64;

// Kernel-internal restart codes: the call will be re-entered (and stop again).
bool is_restart(int64_t r) { return r == -512 || r == -513 || r == -514 || r == -516; }

double now_ms() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

std::string read_first_line(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  return line;
}

std::string read_link(const std::string& path) {
  char buf[4096];
  ssize_t n = readlink(path.c_str(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, n) : std::string();
}

bool call_of(long nr, SocketCall* out) {
  switch (nr) {
    case SYS_connect: *out = SocketCall::kConnect; return true;
    case SYS_bind: *out = SocketCall::kBind; return true;
    case SYS_listen: *out = SocketCall::kListen; return true;
    case SYS_sendto: *out = SocketCall::kSendto; return true;
    case SYS_sendmsg: *out = SocketCall::kSendmsg; return true;
    case SYS_sendmmsg: *out = SocketCall::kSendmmsg; return true;
  }
  return false;
}

// TCP (and MPTCP) streams and UDP (and UDP-Lite) datagrams over IPv4/IPv6 are what we follow.
bool is_followed(const SocketInfo& s) {
  if (s.domain != AF_INET && s.domain != AF_INET6) return false;
  int type = s.type & 0xf;
  if (type == SOCK_STREAM) return s.protocol == IPPROTO_TCP || s.protocol == 262 /*MPTCP*/;
  if (type == SOCK_DGRAM) return s.protocol == IPPROTO_UDP || s.protocol == IPPROTO_UDPLITE;
  return false;
}

struct ChildReport {
  LaunchStage stage;
  int err;
};

// Runs in the forked child: only async-signal-safe calls until execve.
[[noreturn]] void child_exec(const LaunchOptions& o, char* const argv[], char* const envp[],
                             const sock_fprog* prog, int sync_fd, int sync_write_end,
                             int report_fd) {
  auto fail = [&](LaunchStage stage, int err) {
    ChildReport r{stage, err};
    ssize_t ignored = write(report_fd, &r, sizeof r);
    (void)ignored;
    _exit(stage == LaunchStage::kExec ? (err == ENOENT ? 127 : 126) : 125);
  };
  close(sync_write_end);

  // Default dispositions and an empty mask, as child_process.spawn gives its children.
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; s++)
    if (s != SIGKILL && s != SIGSTOP) sigaction(s, &sa, nullptr);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);

  // stdio: move sources out of the way first so that a permutation works.
  int src[3];
  for (int i = 0; i < 3; i++) {
    src[i] = o.stdio[i];
    if (src[i] != i) {
      src[i] = fcntl(o.stdio[i], F_DUPFD_CLOEXEC, 3);
      if (src[i] < 0) fail(LaunchStage::kStdio, errno);
    }
  }
  for (int i = 0; i < 3; i++) {
    if (src[i] != i && dup2(src[i], i) < 0) fail(LaunchStage::kStdio, errno);
    // Node marks its own stdio close-on-exec: the command must get them open.
    if (src[i] == i) fcntl(i, F_SETFD, 0);
    // A stream Node opened on a shared pipe made it non-blocking; programs expect blocking
    // stdio (libuv clears the flag the same way for every child it spawns).
    int fl = fcntl(i, F_GETFL);
    if (fl >= 0 && (fl & O_NONBLOCK)) fcntl(i, F_SETFL, fl & ~O_NONBLOCK);
  }

  if (!o.cwd.empty() && chdir(o.cwd.c_str()) < 0) fail(LaunchStage::kChdir, errno);

  // Wait until the tracer has seized us: a socket call before that would fail with ENOSYS.
  char go;
  if (read(sync_fd, &go, 1) != 1) fail(LaunchStage::kSync, EPIPE);

  // With CAP_SYS_ADMIN no_new_privs is not needed (setuid programs keep working); without it
  // the kernel demands it.
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, prog) < 0) {
    if (errno != EACCES || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
        syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, prog) < 0)
      fail(LaunchStage::kSeccomp, errno);
  }
  execve(o.path.c_str(), argv, envp);
  fail(LaunchStage::kExec, errno);
  _exit(127);
}

}  // namespace

Tracer::Tracer(std::shared_ptr<EventQueue> events, std::shared_ptr<SocketHook> hook)
    : events_(std::move(events)), hook_(std::move(hook)) {}

Tracer::~Tracer() { release_thread(); }

void Tracer::release_thread() {
  if (!thread_.joinable()) return;
  if (finished_.load())
    thread_.join();
  else
    thread_.detach();  // process teardown: EXITKILL ends the tracees with us
}

pid_t Tracer::launch(const LaunchOptions& options, TracerError* error) {
  thread_ = std::thread(&Tracer::run_launch, this, options);
  std::unique_lock<std::mutex> lock(start_mutex_);
  start_cv_.wait(lock, [this] { return start_done_; });
  if (root_pid_ < 0) {
    *error = start_error_;
    lock.unlock();
    thread_.join();
    return -1;
  }
  return root_pid_;
}

int Tracer::signal_root(int sig) {
  if (!root_pidfd_.valid()) return -ESRCH;
  if (syscall(SYS_pidfd_send_signal, root_pidfd_.get(), sig, nullptr, 0) < 0) return -errno;
  return 0;
}

void Tracer::run_launch(LaunchOptions o) {
  auto fail_start = [&](const char* syscall_name, int err, std::string message) {
    std::lock_guard<std::mutex> lock(start_mutex_);
    start_error_ = {syscall_name, err, std::move(message)};
    start_done_ = true;
    finished_ = true;
    start_cv_.notify_all();
  };

  // Everything the child needs is prepared before fork: after it, only syscalls.
  std::vector<sock_filter> filter = seccomp::build_program();
  sock_fprog prog{static_cast<unsigned short>(filter.size()), filter.data()};
  std::vector<char*> argv, envp;
  for (auto& s : o.argv) argv.push_back(&s[0]);
  argv.push_back(nullptr);
  for (auto& s : o.env) envp.push_back(&s[0]);
  envp.push_back(nullptr);

  int sync[2], report[2];
  if (pipe2(sync, O_CLOEXEC) < 0) return fail_start("pipe2", errno, "cannot create a pipe");
  if (pipe2(report, O_CLOEXEC) < 0) {
    int e = errno;
    close(sync[0]);
    close(sync[1]);
    return fail_start("pipe2", e, "cannot create a pipe");
  }
  UniqueFd sync_read(sync[0]), sync_write(sync[1]), report_write(report[1]);
  launch_report_.reset(report[0]);

  pid_t pid = fork();
  if (pid < 0) return fail_start("fork", errno, "cannot fork the command");
  if (pid == 0) child_exec(o, argv.data(), envp.data(), &prog, sync[0], sync[1], report[1]);
  sync_read.reset();
  report_write.reset();
  // A tracee held at a stop waits for this thread: let it run ahead of tracedump's other
  // threads (JavaScript, capture) when the CPUs are busy. Only after the fork, so the command
  // keeps the priority it would have had. Needs CAP_SYS_NICE; without it nothing changes.
  setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), -10);
  fcntl(launch_report_.get(), F_SETFL, O_NONBLOCK);

  if (ptrace(PTRACE_SEIZE, pid, nullptr, reinterpret_cast<void*>(kPtraceOptions)) < 0) {
    int e = errno;
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, __WALL);
    return fail_start("ptrace(PTRACE_SEIZE)", e, "cannot trace the command");
  }
  root_pidfd_.reset(pidfd_open_checked(pid));
  tracees_[pid] = Tracee{pid, pid, false, {}};
  Process& p = processes_[pid];
  p.pidfd.reset(pidfd_open_checked(pid));
  p.comm = o.argv.empty() ? o.path : o.argv[0].substr(o.argv[0].rfind('/') + 1);
  if (write(sync_write.get(), "g", 1) != 1) {
    int e = errno;
    kill(pid, SIGKILL);
    return fail_start("write", e, "cannot release the command");
  }
  sync_write.reset();
  {
    std::lock_guard<std::mutex> lock(start_mutex_);
    root_pid_ = pid;
    start_done_ = true;
    start_cv_.notify_all();
  }
  loop();
}

void Tracer::loop() {
  while (!tracees_.empty()) {
    int status;
    pid_t tid = waitpid(-1, &status, __WALL | __WNOTHREAD);
    if (tid < 0) {
      if (errno == EINTR) continue;
      if (errno != ECHILD) warn(0, 0, std::string("waitpid: ") + strerror(errno));
      break;
    }
    handle(tid, status);
  }
  TraceEvent done;
  done.kind = EventKind::kDone;
  done.time_ms = now_ms();
  finished_ = true;
  events_->push(std::move(done));
}

Tracer::Tracee& Tracer::tracee(pid_t tid) {
  auto it = tracees_.find(tid);
  if (it != tracees_.end()) return it->second;
  Tracee& t = tracees_[tid];  // a new child whose stop arrived before its parent's event
  t.tid = tid;
  return t;
}

pid_t Tracer::tgid_of(Tracee& t) {
  if (t.tgid) return t.tgid;
  std::ifstream f("/proc/" + std::to_string(t.tid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("Tgid:", 0) == 0) {
      t.tgid = static_cast<pid_t>(std::stol(line.substr(5)));
      break;
    }
  if (!t.tgid) t.tgid = t.tid;
  return t.tgid;
}

Tracer::Process& Tracer::process(pid_t tgid) {
  Process& p = processes_[tgid];
  if (!p.pidfd.valid()) p.pidfd.reset(pidfd_open_checked(tgid));
  if (p.comm.empty()) p.comm = read_first_line("/proc/" + std::to_string(tgid) + "/comm");
  return p;
}

void Tracer::resume(Tracee& t, int sig) {
  ptrace(t.expect_exit ? PTRACE_SYSCALL : PTRACE_CONT, t.tid, nullptr,
         reinterpret_cast<void*>(static_cast<long>(sig)));
}

void Tracer::handle(pid_t tid, int status) {
  if (WIFEXITED(status) || WIFSIGNALED(status)) return on_death(tid, status);
  if (!WIFSTOPPED(status)) return;
  Tracee& t = tracee(tid);
  int sig = WSTOPSIG(status);
  int event = static_cast<unsigned>(status) >> 16;
  if (sig == (SIGTRAP | 0x80)) return on_syscall_exit(t);
  switch (event) {
    case PTRACE_EVENT_SECCOMP:
      return on_seccomp(t);
    case PTRACE_EVENT_FORK:
    case PTRACE_EVENT_VFORK:
    case PTRACE_EVENT_CLONE:
      return on_spawn(t, event);
    case PTRACE_EVENT_EXEC:
      return on_exec(t);
    case PTRACE_EVENT_STOP:
      // Group-stop: keep it stopped without running it until SIGCONT (job control works).
      if (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU) {
        ptrace(PTRACE_LISTEN, tid, nullptr, nullptr);
        return;
      }
      return resume(t, 0);  // a new tracee's first stop, or the wake-up after LISTEN
    case 0:
      return resume(t, sig);  // signal-delivery-stop: the signal is re-injected, never lost
    default:
      return resume(t, 0);
  }
}

void Tracer::on_death(pid_t tid, int status) {
  auto it = tracees_.find(tid);
  TraceEvent e;
  e.kind = EventKind::kExit;
  e.time_ms = now_ms();
  e.tid = tid;
  e.pid = it != tracees_.end() ? tgid_of(it->second) : tid;
  e.exited = WIFEXITED(status);
  e.code = e.exited ? WEXITSTATUS(status) : 0;
  e.signal = e.exited ? 0 : WTERMSIG(status);
  e.core = !e.exited && WCOREDUMP(status);
  if (it != tracees_.end()) {
    // Killed inside a call we were waiting on: its pending rule goes.
    if (it->second.expect_exit && hook_) {
      std::vector<RuleSpec> ignored;
      hook_->after_call(it->second.pending, -ESRCH, it->second.pending.socket, &ignored);
    }
    tracees_.erase(it);
  }
  auto pit = processes_.find(e.pid);
  if (pit != processes_.end()) e.comm = pit->second.comm;
  if (tid == e.pid) processes_.erase(tid);
  if (tid == root_pid_) read_launch_failure(&e);
  events_->push(std::move(e));
}

void Tracer::read_launch_failure(TraceEvent* e) {
  if (!launch_report_.valid()) return;
  ChildReport r;
  if (read(launch_report_.get(), &r, sizeof r) == sizeof r) {
    e->failed_stage = r.stage;
    e->failed_errno = r.err;
  }
  launch_report_.reset();
}

void Tracer::on_spawn(Tracee& parent, int event) {
  unsigned long msg = 0;
  const pid_t ptid = parent.tid;
  ptrace(PTRACE_GETEVENTMSG, ptid, nullptr, &msg);
  pid_t child = static_cast<pid_t>(msg);
  pid_t ptgid = tgid_of(parent);
  // A clone is a thread when the new task lives in the parent's thread group.
  struct stat st;
  bool thread = event == PTRACE_EVENT_CLONE &&
                stat(("/proc/" + std::to_string(ptgid) + "/task/" + std::to_string(child)).c_str(),
                     &st) == 0;
  Tracee& c = tracee(child);
  Tracee& p = parent;  // element references survive the insert (unordered_map rehash keeps them)
  c.tgid = thread ? ptgid : child;
  std::string comm = processes_.count(ptgid) ? processes_[ptgid].comm : std::string();
  if (!thread) processes_[child].comm = comm;
  resume(p, 0);

  TraceEvent e;
  e.kind = EventKind::kSpawn;
  e.time_ms = now_ms();
  e.pid = ptgid;
  e.tid = p.tid;
  e.child = child;
  e.thread = thread;
  e.spawn_event = event;
  e.comm = comm;
  events_->push(std::move(e));
}

void Tracer::on_exec(Tracee& t) {
  unsigned long former = 0;
  ptrace(PTRACE_GETEVENTMSG, t.tid, nullptr, &former);
  pid_t tid = t.tid;
  // A non-leader thread that execs takes over the leader's tid; its old tid is gone, and so is
  // the old leader, silently (a call it was inside of never returns: its pending rule goes).
  if (static_cast<pid_t>(former) != tid) tracees_.erase(static_cast<pid_t>(former));
  Tracee& n = tracee(tid);
  if (static_cast<pid_t>(former) != tid && n.expect_exit && hook_) {
    std::vector<RuleSpec> ignored;
    hook_->after_call(n.pending, -ESRCH, n.pending.socket, &ignored);
  }
  n.tgid = tid;
  n.expect_exit = false;
  Process& p = processes_[tid];
  p.comm = read_first_line("/proc/" + std::to_string(tid) + "/comm");
  std::string exe = read_link("/proc/" + std::to_string(tid) + "/exe");
  resume(n, 0);

  TraceEvent e;
  e.kind = EventKind::kExec;
  e.time_ms = now_ms();
  e.pid = tid;
  e.tid = tid;
  e.former_tid = static_cast<pid_t>(former);
  e.comm = p.comm;
  e.exe = exe;
  events_->push(std::move(e));
}

void Tracer::on_seccomp(Tracee& t) {
  unsigned long reason = 0;
  ptrace(PTRACE_GETEVENTMSG, t.tid, nullptr, &reason);
  pid_t pid = tgid_of(t);
  if (reason == seccomp::kStopUnsupportedAbi) {
    Process& p = process(pid);
    bool first = !p.warned_abi;
    p.warned_abi = true;
    resume(t, 0);
    if (first)
      warn(pid, t.tid,
           "uses the 32-bit (i386/x32) socket ABI, which tracedump does not follow; its "
           "sockets are not captured");
    return;
  }
  user_regs_struct regs;
  SocketCall call;
  if (ptrace(PTRACE_GETREGS, t.tid, nullptr, &regs) < 0 ||
      !call_of(static_cast<long>(regs.orig_rax), &call))
    return resume(t, 0);
  const uint64_t args[6] = {regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9};

  SocketCallInfo c;
  c.pid = pid;
  c.tid = t.tid;
  c.call = call;
  c.fd = static_cast<int>(args[0]);
  Process& p = process(pid);
  // Not a socket, a closed fd, AF_UNIX, AF_NETLINK...: the call runs on, nothing to follow.
  if (inspect_socket(p.pidfd.get(), c.fd, &c.socket) < 0 || !is_followed(c.socket))
    return resume(t, 0);
  c.dests = call_destinations(t.tid, static_cast<long>(regs.orig_rax), args, kMaxDestinations);

  // The exit stop is taken only where entry cannot tell the socket's local endpoint:
  // an unbound socket gets its port inside the call; bind can fail (EADDRINUSE); a socket
  // bound to the any-address gets its real local address when it connects.
  bool need_exit = call == SocketCall::kBind || c.socket.local.port == 0 ||
                   (call == SocketCall::kConnect && is_wildcard(c.socket.local));
  std::vector<RuleSpec> rules;
  if (hook_) hook_->before_call(c, need_exit, &rules);
  t.expect_exit = need_exit;
  if (need_exit) {
    t.pending = c;
    resume(t, 0);
    return emit_socket_event(EventKind::kPending, c, c.socket, false, 0, std::move(rules));
  }
  resume(t, 0);
  emit_socket_event(EventKind::kSocket, c, c.socket, false, 0, std::move(rules));
}

void Tracer::on_syscall_exit(Tracee& t) {
  if (!t.expect_exit) return resume(t, 0);
  user_regs_struct regs;
  int64_t result = 0;
  if (ptrace(PTRACE_GETREGS, t.tid, nullptr, &regs) == 0) result = static_cast<int64_t>(regs.rax);
  t.expect_exit = false;
  SocketCallInfo c = std::move(t.pending);
  t.pending = {};
  SocketInfo after = c.socket;
  Process& p = process(c.pid);
  SocketInfo now;
  if (inspect_socket(p.pidfd.get(), c.fd, &now) == 0) after = now;
  std::vector<RuleSpec> rules;
  if (hook_) hook_->after_call(c, result, after, &rules);
  // Interrupted by a signal: the call is re-entered afterwards (and stops again there).
  if (is_restart(result)) return resume(t, 0);
  resume(t, 0);
  emit_socket_event(EventKind::kSocket, c, after, true, result, std::move(rules));
}

void Tracer::emit_socket_event(EventKind kind, const SocketCallInfo& c, const SocketInfo& after,
                               bool has_result, int64_t result, std::vector<RuleSpec> rules) {
  TraceEvent e;
  e.kind = kind;
  e.time_ms = now_ms();
  e.pid = c.pid;
  e.tid = c.tid;
  e.call = c.call;
  e.fd = c.fd;
  e.socket = after;
  e.remotes = c.dests;
  if (e.remotes.empty() && after.peer.valid() && c.call != SocketCall::kBind &&
      c.call != SocketCall::kListen)
    e.remotes.push_back(after.peer);
  e.has_result = has_result;
  e.result = result;
  e.rules = std::move(rules);
  if (hook_) e.rule_generation = hook_->generation();
  auto pit = processes_.find(c.pid);
  if (pit != processes_.end()) e.comm = pit->second.comm;
  if (c.tid != c.pid)
    e.thread_name = read_first_line("/proc/" + std::to_string(c.pid) + "/task/" +
                                    std::to_string(c.tid) + "/comm");
  events_->push(std::move(e));
}

void Tracer::warn(pid_t pid, pid_t tid, std::string message) {
  TraceEvent e;
  e.kind = EventKind::kWarning;
  e.time_ms = now_ms();
  e.pid = pid;
  e.tid = tid;
  e.message = std::move(message);
  events_->push(std::move(e));
}
