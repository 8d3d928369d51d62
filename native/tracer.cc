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

#include <dirent.h>
#include <grp.h>
#include <linux/audit.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>

#include "clock.h"
#include "seccomp.h"
#include "stop_stats.h"

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
// Attached programs must outlive tracedump (no EXITKILL) and have no filter of ours.
constexpr int kAttachOptions = PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACEFORK |
                               PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC;

// Wakes the tracer thread out of waitpid (EINTR) when a detach is requested.
const int kWakeSignal = SIGRTMIN + 4;

void install_wake_handler() {
  static bool installed = false;
  if (installed) return;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = [](int) {};
  sa.sa_flags = 0;  // no SA_RESTART: waitpid must return
  sigaction(kWakeSignal, &sa, nullptr);
  installed = true;
}

// An io_uring user whose fd table did not change at the last look is looked at again after this.
constexpr uint64_t kUringQuietNs = 5'000'000;

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

// TCP (and MPTCP) streams, UDP (and UDP-Lite) datagrams and ICMP echoes of datagram ("ping")
// sockets over IPv4/IPv6 are what we follow.
bool is_followed(const SocketInfo& s) {
  if (s.domain != AF_INET && s.domain != AF_INET6) return false;
  int type = s.type & 0xf;
  if (type == SOCK_STREAM) return s.protocol == IPPROTO_TCP || s.protocol == 262 /*MPTCP*/;
  if (type == SOCK_DGRAM) return is_udp(s.protocol) || is_ping(s);
  return false;
}

// A raw socket of the inet families: its packets are the program's, but nothing ties them to it
// (no port): reported, not captured.
bool is_raw_inet(const SocketInfo& s) {
  return (s.domain == AF_INET || s.domain == AF_INET6) && (s.type & 0xf) == SOCK_RAW;
}

bool is_fd_source(long nr) {
  for (const auto& s : seccomp::fd_source_syscalls())
    if (s.nr == nr) return true;
  return false;
}

bool same_endpoint(const Endpoint& a, const Endpoint& b) {
  return a.family == b.family && a.port == b.port && memcmp(a.addr, b.addr, 16) == 0;
}

// At the exit of a connect() that succeeded or is in progress, the socket talks only with its
// destination, and the pending rule put in at entry already lets everything to and from that
// destination through (the hook takes it out only after the exact rule is in). So the exact
// rule can wait until the tracee runs on: its packets are in the kernel filter either way.
// Elsewhere (a bind, a send that bound a port: anyone may send to it) the rules go in first.
bool rules_can_follow(const SocketCallInfo& c, int64_t result, const SocketInfo& after) {
  if (c.call != SocketCall::kConnect || !(result == 0 || result == -EINPROGRESS)) return false;
  if (c.dests.size() != 1 || after.local.port == 0) return false;
  return !after.peer.valid() || same_endpoint(after.peer, c.dests[0]);
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

  // The descriptors tracedump's caller gave it (a jobserver, LISTEN_FDS sockets, a pipe from a
  // parent): Node made them close-on-exec; the command gets them open, at the same numbers.
  for (int fd : o.keep_fds)
    if (fd > 2) fcntl(fd, F_SETFD, 0);

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
  // Drop to the user last: installing the filter without no_new_privs needed root.
  if (o.set_credentials) {
    if (setgroups(o.groups.size(), o.groups.data()) < 0 || setgid(o.gid) < 0 || setuid(o.uid) < 0)
      fail(LaunchStage::kCredentials, errno);
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
  install_wake_handler();
  thread_ = std::thread(&Tracer::run_launch, this, options);
  return wait_started(error);
}

int Tracer::attach(const std::vector<pid_t>& pids, TracerError* error) {
  install_wake_handler();
  attach_mode_ = true;
  thread_ = std::thread(&Tracer::run_attach, this, pids);
  return wait_started(error) < 0 ? -1 : 0;
}

pid_t Tracer::wait_started(TracerError* error) {
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

void Tracer::start_succeeded(pid_t root) {
  std::lock_guard<std::mutex> lock(start_mutex_);
  root_pid_ = root;
  start_done_ = true;
  start_cv_.notify_all();
}

void Tracer::start_failed(TracerError error) {
  std::lock_guard<std::mutex> lock(start_mutex_);
  start_error_ = std::move(error);
  start_done_ = true;
  finished_ = true;
  start_cv_.notify_all();
}

void Tracer::request_detach() {
  detach_requested_ = true;
  // The flag may be read just before waitpid blocks: signal until the thread has seen it.
  for (int i = 0; i < 500 && !detach_started_.load() && !finished_.load(); i++) {
    pid_t tid = thread_tid_.load();
    if (tid > 0) syscall(SYS_tgkill, getpid(), tid, kWakeSignal);
    usleep(1000);
  }
}

void Tracer::stop_at_send_exits(uint64_t inode) {
  std::lock_guard<std::mutex> lock(send_exits_mutex_);
  send_exits_.insert(inode);
  any_send_exits_ = true;
}

void Tracer::request_sweep() {
  sweep_requested_ = true;
  // Only a thread waiting in waitpid is woken: elsewhere the flag is read after its stop.
  pid_t tid = thread_tid_.load();
  if (tid > 0 && in_waitpid_.load()) syscall(SYS_tgkill, getpid(), tid, kWakeSignal);
}

int Tracer::signal_root(int sig) {
  if (!root_pidfd_.valid()) return -ESRCH;
  if (syscall(SYS_pidfd_send_signal, root_pidfd_.get(), sig, nullptr, 0) < 0) return -errno;
  return 0;
}

void Tracer::run_launch(LaunchOptions o) {
  gate_ = o.gate;
  auto fail_start = [&](const char* syscall_name, int err, std::string message) {
    start_failed({syscall_name, err, std::move(message), 0});
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
  thread_tid_ = static_cast<pid_t>(syscall(SYS_gettid));
  setpriority(PRIO_PROCESS, static_cast<id_t>(thread_tid_.load()), -10);
  pthread_setname_np(pthread_self(), "td-tracer");  // after the fork: the child keeps its name
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
  start_succeeded(pid);
  loop();
}

// Seizes every thread of pid (re-reading the task list until no new thread shows up: one may
// be created while we seize) and interrupts each, so that it stops and can be resumed with
// syscall stops. Returns 0, or -errno when not even the first thread could be seized.
int Tracer::seize_process(pid_t pid, std::vector<pid_t>* seized) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  std::set<pid_t> done;
  for (bool grew = true; grew;) {
    grew = false;
    DIR* d = opendir(dir.c_str());
    if (!d) return done.empty() ? -ESRCH : 0;
    std::vector<pid_t> tids;
    while (dirent* ent = readdir(d))
      if (ent->d_name[0] != '.') tids.push_back(static_cast<pid_t>(atoi(ent->d_name)));
    closedir(d);
    for (pid_t tid : tids) {
      if (done.count(tid)) continue;
      if (ptrace(PTRACE_SEIZE, tid, nullptr, reinterpret_cast<void*>(kAttachOptions)) < 0) {
        if (errno == ESRCH) continue;  // the thread ended meanwhile
        if (done.empty()) return -errno;
        warn(pid, tid, std::string("cannot attach to this thread: ") + strerror(errno));
        done.insert(tid);
        continue;
      }
      ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr);
      tracees_[tid] = Tracee{tid, pid, false, {}};
      done.insert(tid);
      seized->push_back(tid);
      grew = true;
    }
  }
  return seized->empty() ? -ESRCH : 0;
}

void Tracer::run_attach(std::vector<pid_t> pids) {
  // The stops held through the attach happened after this (their events' time: a bound).
  const double attach_started_ms = now_ms();
  thread_tid_ = static_cast<pid_t>(syscall(SYS_gettid));
  setpriority(PRIO_PROCESS, static_cast<id_t>(thread_tid_.load()), -10);
  pthread_setname_np(pthread_self(), "td-tracer");
  std::vector<pid_t> seized;
  std::vector<std::pair<pid_t, int>> attached;  // pid, threads
  for (pid_t pid : pids) {
    size_t before = seized.size();
    int r = seize_process(pid, &seized);
    if (r < 0) {
      // Leave every process we took as it was.
      for (pid_t tid : seized) ptrace(PTRACE_DETACH, tid, nullptr, nullptr);
      tracees_.clear();
      return start_failed({"ptrace(PTRACE_SEIZE)", -r, "cannot attach to process " + std::to_string(pid), pid});
    }
    attached.push_back({pid, static_cast<int>(seized.size() - before)});
  }
  // Wait until every thread is stopped: the sockets read now are all there are, since no
  // socket call can run before the first syscall stop. Stops seen meanwhile are handled after.
  std::set<pid_t> running(seized.begin(), seized.end());
  std::vector<std::pair<pid_t, int>> held;
  while (!running.empty()) {
    int status;
    pid_t tid = waitpid(-1, &status, __WALL | __WNOTHREAD);
    if (tid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    running.erase(tid);
    held.push_back({tid, status});
  }
  // Traced from now on: every thread is stopped, and no socket call went unseen.
  for (auto& [pid, threads] : attached) {
    Process& p = process(pid);
    TraceEvent e;
    e.kind = EventKind::kAttach;
    e.time_ms = now_ms();
    e.pid = pid;
    e.tid = pid;
    e.comm = p.comm;
    e.exe = read_link("/proc/" + std::to_string(pid) + "/exe");
    e.threads = threads;
    events_->push(std::move(e));
  }
  std::set<uint64_t> adopted;  // a socket shared by several processes is adopted once
  for (pid_t pid : pids) adopt_sockets(pid, &adopted, SocketCall::kExisting);
  start_succeeded(pids.empty() ? -1 : pids[0]);
  stop_ns_ = 0;  // these stops were held through the attach: not timed
  stop_ms_ = attach_started_ms;
  for (auto& [tid, status] : held) handle(tid, status);
  loop();
}

// The sockets a process already has (from /proc/PID/fd) go into the filter: at an attach, and
// at the launched command's first exec (the ones its caller passed on).
void Tracer::adopt_sockets(pid_t tgid, std::set<uint64_t>* adopted, SocketCall call) {
  Process& p = process(tgid);
  const std::string dir = "/proc/" + std::to_string(tgid) + "/fd";
  DIR* d = opendir(dir.c_str());
  if (!d) return;
  std::vector<int> fds;
  while (dirent* ent = readdir(d)) {
    if (ent->d_name[0] == '.') continue;
    if (read_link(dir + "/" + ent->d_name).rfind("socket:[", 0) == 0) fds.push_back(atoi(ent->d_name));
  }
  closedir(d);
  for (int fd : fds) {
    SocketCallInfo c;
    UniqueFd dup;
    if (!inspect_tracee_fd(p, tgid, fd, call, &c, &dup) || !is_followed(c.socket)) continue;
    if (c.socket.local.port == 0) continue;  // unbound: its first call will tell
    if (!adopted->insert(c.socket.inode).second) continue;
    adopt(c, std::move(dup), call == SocketCall::kInherited, 0);
  }
}

bool Tracer::inspect_tracee_fd(Process& p, pid_t tgid, int fd, SocketCall call, SocketCallInfo* c, UniqueFd* dup) {
  c->pid = tgid;
  c->tid = tgid;
  c->call = call;
  c->fd = fd;
  int d = dup_tracee_fd(p.pidfd.get(), fd);
  if (d < 0) return false;
  *dup = UniqueFd(d);
  return inspect_dup(dup->get(), &c->socket, &facts_) >= 0;
}

void Tracer::adopt(const SocketCallInfo& c, UniqueFd dup, bool count_segments, double time_ms) {
  int64_t exchanged = count_segments ? tcp_segments(dup.get()) : -1;
  dup.reset();
  std::vector<RuleSpec> rules;
  if (hook_) hook_->adopt(c.socket, &rules);
  emit_socket_event(EventKind::kSocket, c, c.socket, false, 0, std::move(rules), time_ms, exchanged);
}

// Sockets that came without a traced call. The fd tables are read (readlink of each fd), and
// a socket inode no event named is inspected: an AF_INET/AF_INET6 socket with a local port gets
// its rules now, and a kFound event. Packets it exchanged before are not in the capture.
// quick (io_uring_enter, which may run often): when the process has as many fds as at its last
// search, only its sockets that had no port then are looked at again (a listing of the fd
// directory costs an eighth of a search: no readlink).
void Tracer::find_late_sockets(pid_t only, bool quick) {
  std::unordered_set<uint64_t> present;
  std::set<uint64_t> adopted;
  for (auto& [tgid, proc] : processes_) {
    if (only && tgid != only) continue;
    Process& p = process(tgid);
    const std::string dir = "/proc/" + std::to_string(tgid) + "/fd";
    DIR* d = opendir(dir.c_str());
    if (!d) continue;
    if (quick) {
      size_t count = 0;
      while (dirent* ent = readdir(d)) count += ent->d_name[0] != '.';
      p.uring_checked_ns = monotonic_ns();
      p.uring_quiet = count == p.fds && p.unbound.empty();
      if (count == p.fds) {
        closedir(d);
        std::vector<std::pair<int, uint64_t>> unbound;
        unbound.swap(p.unbound);
        for (auto& [fd, ino] : unbound) consider_socket(p, tgid, fd, ino, &adopted);
        continue;
      }
      rewinddir(d);
    }
    std::vector<std::pair<int, uint64_t>> fresh;
    char link[64];
    size_t count = 0;
    while (dirent* ent = readdir(d)) {
      if (ent->d_name[0] == '.') continue;
      count++;
      ssize_t n = readlinkat(dirfd(d), ent->d_name, link, sizeof link - 1);
      if (n < 9 || memcmp(link, "socket:[", 8) != 0) continue;
      link[n] = 0;
      uint64_t ino = strtoull(link + 8, nullptr, 10);
      present.insert(ino);
      if (!known_inodes_.count(ino)) fresh.push_back({atoi(ent->d_name), ino});
    }
    closedir(d);
    p.fds = count;
    p.unbound.clear();
    for (auto& [fd, ino] : fresh) consider_socket(p, tgid, fd, ino, &adopted);
  }
  if (only) return;
  // Closed since (or passed away): an inode number seen again later is looked at again.
  for (auto it = known_inodes_.begin(); it != known_inodes_.end();)
    it = present.count(*it) ? std::next(it) : known_inodes_.erase(it);
}

// A socket of process tgid on fd, with inode ino, that no event named: adopted (kFound) if it
// is an inet socket with a port; remembered in p.unbound while it has none.
void Tracer::consider_socket(Process& p, pid_t tgid, int fd, uint64_t ino, std::set<uint64_t>* adopted) {
  SocketCallInfo c;
  UniqueFd dup;
  if (!inspect_tracee_fd(p, tgid, fd, SocketCall::kFound, &c, &dup) || c.socket.inode != ino) return;
  if (known_inodes_.count(ino)) return;  // an event named it since
  if (!is_followed(c.socket)) {
    known_inodes_.insert(ino);  // a Unix or netlink socket: never looked at again
    if (is_raw_inet(c.socket)) emit_socket_event(EventKind::kSocket, c, c.socket, false, 0, {}, now_ms());
    return;
  }
  if (c.socket.local.port == 0) {  // unbound: looked at again until it is
    p.unbound.push_back({fd, ino});
    return;
  }
  if (is_stream(c.socket.protocol) && c.socket.peer.valid() &&
      listen_ports_.count(c.socket.local.port)) {
    known_inodes_.insert(ino);  // accepted by a listener of the program: its rule holds
    return;
  }
  if (!adopted->insert(ino).second) return;
  adopt(c, std::move(dup), true, now_ms());
}

// io_uring_setup, io_uring_enter, pidfd_getfd: whatever sockets the call brings in are found at
// its exit. An io_uring_enter that submits nothing (a wait for completions) is let run: what an
// earlier submission does later (an async connect) is found by the next one, or by the search
// every 500 ms.
void Tracer::on_fd_source(Tracee& t, long nr, const uint64_t args[6]) {
  if (nr == SYS_io_uring_enter && args[1] == 0) return resume(t, 0);
  if (!capture_live(t)) return;  // (a ring's operations, or another's socket, can send)
  if (nr == SYS_io_uring_enter) {
    // A program that submits often with an fd table that does not change (file I/O) is looked
    // at every kUringQuietNs only; once a look sees a change, at every call again.
    Process& p = process(tgid_of(t));
    if (p.uring_quiet && monotonic_ns() - p.uring_checked_ns < kUringQuietNs) return resume(t, 0);
  }
  t.sweep_at_exit = true;
  t.sweep_quick = nr == SYS_io_uring_enter;
  resume(t, 0);
}

void Tracer::loop() {
  while (!tracees_.empty()) {
    if (detach_requested_.load()) {
      detach_all();
      break;
    }
    if (sweep_requested_.exchange(false)) find_late_sockets(0);
    int status;
    in_waitpid_ = true;
    pid_t tid = waitpid(-1, &status, __WALL | __WNOTHREAD);
    int err = errno;
    in_waitpid_ = false;
    if (tid < 0) {
      if (err == EINTR) continue;
      if (err != ECHILD) warn(0, 0, std::string("waitpid: ") + strerror(err));
      break;
    }
    if (stop_stats::on()) stop_ns_ = monotonic_ns();
    stop_ms_ = now_ms();
    handle(tid, status);
  }
  TraceEvent done;
  done.kind = EventKind::kDone;
  done.time_ms = now_ms();
  done.detached_at_ms = detached_at_ms_;
  finished_ = true;
  events_->push(std::move(done));
}

// Attach mode's end: every tracee is interrupted and detached at its next stop, with the signal
// of a signal-delivery-stop passed on; children born meanwhile are detached too.
void Tracer::detach_all() {
  detach_started_ = true;
  // Packets after this moment are no longer all seen: new sockets are not traced any more.
  detached_at_ms_ = now_ms();
  std::set<pid_t> waiting, detached;
  for (auto& [tid, t] : tracees_) {
    ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr);
    waiting.insert(tid);
  }
  while (!waiting.empty()) {
    int status;
    pid_t tid = waitpid(-1, &status, __WALL | __WNOTHREAD);
    if (tid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (WIFEXITED(status) || WIFSIGNALED(status)) {
      on_death(tid, status);
      waiting.erase(tid);
      continue;
    }
    if (!WIFSTOPPED(status)) continue;
    int sig = WSTOPSIG(status);
    int event = static_cast<unsigned>(status) >> 16;
    unsigned long msg = 0;
    if (event == PTRACE_EVENT_FORK || event == PTRACE_EVENT_VFORK || event == PTRACE_EVENT_CLONE) {
      ptrace(PTRACE_GETEVENTMSG, tid, nullptr, &msg);
      pid_t child = static_cast<pid_t>(msg);
      if (!detached.count(child)) waiting.insert(child);  // its first stop is still to come
    } else if (event == PTRACE_EVENT_EXEC) {
      ptrace(PTRACE_GETEVENTMSG, tid, nullptr, &msg);
      if (static_cast<pid_t>(msg) != tid) waiting.erase(static_cast<pid_t>(msg));  // gone silently
    }
    int inject = (event == 0 && sig != (SIGTRAP | 0x80) && sig != SIGTRAP) ? sig : 0;
    ptrace(PTRACE_DETACH, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(inject)));
    detached.insert(tid);
    waiting.erase(tid);
  }
  tracees_.clear();
  processes_.clear();
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
  ptrace(t.expect_exit || t.sweep_at_exit || attach_mode_ ? PTRACE_SYSCALL : PTRACE_CONT, t.tid, nullptr,
         reinterpret_cast<void*>(static_cast<long>(sig)));
  if (timed_ >= 0) {  // held from waitpid()'s return until the resume request returned
    if (stop_ns_)
      stop_stats::record(static_cast<stop_stats::Kind>(timed_), monotonic_ns() - stop_ns_,
                         stop_stats::g_rules_present.load(std::memory_order_relaxed));
    timed_ = -1;
  }
}

void Tracer::handle(pid_t tid, int status) {
  timed_ = -1;
  if (WIFEXITED(status) || WIFSIGNALED(status)) return on_death(tid, status);
  if (!WIFSTOPPED(status)) return;
  Tracee& t = tracee(tid);
  int sig = WSTOPSIG(status);
  int event = static_cast<unsigned>(status) >> 16;
  if (sig == (SIGTRAP | 0x80)) return attach_mode_ ? on_syscall_stop(t) : on_syscall_exit(t);
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
  n.pending = {};
  n.pending_dup.reset();
  Process& p = processes_[tid];
  p.comm = read_first_line("/proc/" + std::to_string(tid) + "/comm");
  std::string exe = read_link("/proc/" + std::to_string(tid) + "/exe");
  // The command's first exec: the sockets its caller passed on get their rules before its
  // program runs (close-on-exec ones are gone by now).
  const bool first = !attach_mode_ && tid == root_pid_ && !root_started_;
  root_started_ = root_started_ || first;
  if (!first) resume(n, 0);

  TraceEvent e;
  e.kind = EventKind::kExec;
  e.time_ms = now_ms();
  e.pid = tid;
  e.tid = tid;
  e.former_tid = static_cast<pid_t>(former);
  e.comm = p.comm;
  e.exe = exe;
  events_->push(std::move(e));
  if (!first) return;
  std::set<uint64_t> adopted;
  adopt_sockets(tid, &adopted, SocketCall::kInherited);
  resume(tracee(tid), 0);
}

void Tracer::unsupported_abi(Tracee& t, pid_t pid) {
  Process& p = process(pid);
  bool first = !p.warned_abi;
  p.warned_abi = true;
  resume(t, 0);
  if (first)
    warn(pid, t.tid,
         "uses the 32-bit (i386/x32) socket ABI, which tracedump does not follow; its "
         "sockets are not captured");
}

// The capture is not live yet (its ring is still being made): a call that could make the
// program's packets waits for it here. If it cannot be made, every process is killed (none may
// exchange a packet the file would miss) and false is returned, the tracee resumed to die.
bool Tracer::capture_live(Tracee& t) {
  if (!gate_ || gate_->is_open() || gate_->wait() != CaptureGate::kFailed) return true;
  for (auto& [pid, proc] : processes_) kill(pid, SIGKILL);
  resume(t, 0);
  return false;
}

void Tracer::on_seccomp(Tracee& t) {
  // One request tells the call, its arguments and the filter's SECCOMP_RET_DATA (Linux 5.3+);
  // GETEVENTMSG + GETREGS where it is refused.
  __ptrace_syscall_info info;
  memset(&info, 0, sizeof info);
  if (ptrace(PTRACE_GET_SYSCALL_INFO, t.tid, sizeof info, &info) > 0 &&
      info.op == PTRACE_SYSCALL_INFO_SECCOMP) {
    if (info.seccomp.ret_data == seccomp::kStopUnsupportedAbi) return unsupported_abi(t, tgid_of(t));
    if (info.seccomp.ret_data == seccomp::kStopFdSource) {
      uint64_t args[6];
      for (int i = 0; i < 6; i++) args[i] = info.seccomp.args[i];
      return on_fd_source(t, static_cast<long>(info.seccomp.nr), args);
    }
    uint64_t args[6];
    for (int i = 0; i < 6; i++) args[i] = info.seccomp.args[i];
    return on_call_entry(t, static_cast<long>(info.seccomp.nr), args);
  }
  unsigned long reason = 0;
  ptrace(PTRACE_GETEVENTMSG, t.tid, nullptr, &reason);
  if (reason == seccomp::kStopUnsupportedAbi) return unsupported_abi(t, tgid_of(t));
  user_regs_struct regs;
  if (ptrace(PTRACE_GETREGS, t.tid, nullptr, &regs) < 0) return resume(t, 0);
  if (reason == seccomp::kStopFdSource) {
    const uint64_t args[6] = {regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9};
    return on_fd_source(t, static_cast<long>(regs.orig_rax), args);
  }
  const uint64_t args[6] = {regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9};
  on_call_entry(t, static_cast<long>(regs.orig_rax), args);
}

// Attach mode: every syscall stops at entry and exit (no seccomp filter to pick them).
void Tracer::on_syscall_stop(Tracee& t) {
  __ptrace_syscall_info info;
  memset(&info, 0, sizeof info);
  if (ptrace(PTRACE_GET_SYSCALL_INFO, t.tid, sizeof info, &info) <= 0) return resume(t, 0);
  if (info.op == PTRACE_SYSCALL_INFO_EXIT) {
    const int64_t result = info.exit.rval;  // the same as rax (-errno on failure)
    return on_syscall_exit(t, &result);
  }
  if (info.op != PTRACE_SYSCALL_INFO_ENTRY) return resume(t, 0);
  long nr = static_cast<long>(info.entry.nr);
  if (info.arch != AUDIT_ARCH_X86_64 || (nr & 0x40000000)) return unsupported_abi(t, tgid_of(t));
  if (is_fd_source(nr)) {
    uint64_t args[6];
    for (int i = 0; i < 6; i++) args[i] = info.entry.args[i];
    return on_fd_source(t, nr, args);
  }
  SocketCall call;
  // The calls the launch-mode seccomp filter stops at, and no others.
  if (!call_of(nr, &call) || (call == SocketCall::kSendto && info.entry.args[4] == 0))
    return resume(t, 0);
  uint64_t args[6];
  for (int i = 0; i < 6; i++) args[i] = info.entry.args[i];
  on_call_entry(t, nr, args);
}

void Tracer::on_call_entry(Tracee& t, long nr, const uint64_t args[6]) {
  SocketCall call;
  if (!call_of(nr, &call)) return resume(t, 0);
  pid_t pid = tgid_of(t);
  SocketCallInfo c;
  c.pid = pid;
  c.tid = t.tid;
  c.call = call;
  c.fd = static_cast<int>(args[0]);
  Process& p = process(pid);
  // Not a socket, a closed fd, AF_UNIX, AF_NETLINK...: the call runs on, nothing to follow.
  int d = dup_tracee_fd(p.pidfd.get(), c.fd);
  if (d < 0) return resume(t, 0);
  UniqueFd dup(d);
  if (inspect_dup(dup.get(), &c.socket, &facts_) < 0 || !is_followed(c.socket)) {
    dup.reset();  // every duplicate is closed before the tracee runs on (sockets.h)
    resume(t, 0);
    // a raw socket is said once (its packets are not captured), by an event without rules
    if (is_raw_inet(c.socket) && c.socket.inode && !known_inodes_.count(c.socket.inode))
      emit_socket_event(EventKind::kSocket, c, c.socket, false, 0, {});
    return;
  }
  if (!capture_live(t)) return;
  if (stop_stats::on()) timed_ = call == SocketCall::kConnect ? stop_stats::kConnectEntry : stop_stats::kOtherEntry;
  c.dests = call_destinations(t.tid, nr, args, kMaxDestinations);
  if (is_ping(c.socket))
    for (Endpoint& d : c.dests) d.port = 0;
  bool as_named = call == SocketCall::kConnect && c.dests.size() == 1 && !is_wildcard(c.dests[0]);
  for (Endpoint& d : c.dests) resolve_any_destination(&d, c.socket);

  // The exit stop is taken only where entry cannot tell the socket's local endpoint:
  // an unbound socket gets its port inside the call; bind can fail (EADDRINUSE); a socket
  // bound to the any-address gets its real local address when it connects.
  bool need_exit = call == SocketCall::kBind || c.socket.local.port == 0 ||
                   (call == SocketCall::kConnect && is_wildcard(c.socket.local));
  if (!need_exit && any_send_exits_.load(std::memory_order_relaxed) && call != SocketCall::kConnect &&
      call != SocketCall::kListen) {
    std::lock_guard<std::mutex> lock(send_exits_mutex_);
    need_exit = send_exits_.count(c.socket.inode) > 0;
  }
  std::vector<RuleSpec> rules;
  if (hook_) hook_->before_call(c, need_exit, &rules);
  t.expect_exit = need_exit;
  if (need_exit) {
    t.pending = c;
    t.connect_as_named = as_named;
    // Kept for the exit stop: the call holds the socket meanwhile anyway.
    if (keep_dup_below_ == 0) {
      rlimit rl;
      keep_dup_below_ = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                            ? static_cast<int>(std::min<rlim_t>(rl.rlim_cur / 2, 1 << 20))
                            : 512;
      if (keep_dup_below_ < 64) keep_dup_below_ = 64;
    }
    if (dup.get() < keep_dup_below_)
      t.pending_dup = std::move(dup);
    else
      dup.reset();
    // Queued before the call runs: a sweep that sees the port the call picks (and then takes
    // the events) knows whose call it is.
    emit_socket_event(EventKind::kPending, c, c.socket, false, 0, std::move(rules));
    return resume(t, 0);
  }
  dup.reset();
  resume(t, 0);
  emit_socket_event(EventKind::kSocket, c, c.socket, false, 0, std::move(rules));
}

void Tracer::on_syscall_exit(Tracee& t, const int64_t* known_result) {
  if (t.sweep_at_exit) {
    t.sweep_at_exit = false;
    find_late_sockets(tgid_of(t), t.sweep_quick);
  }
  if (!t.expect_exit) return resume(t, 0);
  if (stop_stats::on())
    timed_ = t.pending.call == SocketCall::kConnect ? stop_stats::kConnectExit : stop_stats::kOtherExit;
  int64_t result = 0;
  if (known_result) {
    result = *known_result;
  } else {
    user_regs_struct regs;
    if (ptrace(PTRACE_GETREGS, t.tid, nullptr, &regs) == 0) result = static_cast<int64_t>(regs.rax);
  }
  t.expect_exit = false;
  SocketCallInfo c = std::move(t.pending);
  t.pending = {};
  SocketInfo after = c.socket;
  if (t.pending_dup.valid()) {
    // The same socket as at entry (even if the fd was closed and reused meanwhile): only what
    // the call can change is asked again.
    // A connect that succeeded has the peer it named; one in progress has none yet (the
    // kernel answers getpeername with ENOTCONN until the handshake is done).
    const Endpoint none;
    const Endpoint* peer = nullptr;
    if (t.connect_as_named && result == 0) peer = &c.dests[0];
    if (t.connect_as_named && result == -EINPROGRESS) peer = &none;
    refresh_socket(t.pending_dup.get(), &after, &facts_, peer);
    t.pending_dup.reset();
  } else {
    Process& p = process(c.pid);
    SocketInfo now;
    if (inspect_socket(p.pidfd.get(), c.fd, &now, &facts_) == 0) after = now;
  }
  std::vector<RuleSpec> rules;
  if (rules_can_follow(c, result, after)) {
    resume(t, 0);
    if (hook_) {
      hook_->after_call(c, result, after, &rules);
      hook_->after_resume();
    }
    return emit_socket_event(EventKind::kSocket, c, after, true, result, std::move(rules));
  }
  if (hook_) hook_->after_call(c, result, after, &rules);
  resume(t, 0);
  if (hook_) hook_->after_resume();
  // Interrupted by a signal: the call is re-entered afterwards (and stops again there).
  if (is_restart(result)) return;
  emit_socket_event(EventKind::kSocket, c, after, true, result, std::move(rules));
}

void Tracer::emit_socket_event(EventKind kind, const SocketCallInfo& c, const SocketInfo& after,
                               bool has_result, int64_t result, std::vector<RuleSpec> rules,
                               double time_ms, int64_t exchanged_before) {
  TraceEvent e;
  e.kind = kind;
  // the stop's time, not now: the tracee was resumed before this and may have sent already
  const bool no_call = c.call == SocketCall::kExisting || c.call == SocketCall::kInherited;
  e.time_ms = time_ms > 0 ? time_ms : stop_ms_ > 0 && !no_call ? stop_ms_ : now_ms();
  e.exchanged_before = exchanged_before;
  if (after.inode) known_inodes_.insert(after.inode);
  // A TCP socket with a port and no peer that listens (or may: adopted ones) accepts
  // connections on that port: accept is not traced.
  const bool may_listen = c.call == SocketCall::kListen || c.call == SocketCall::kExisting ||
                          c.call == SocketCall::kInherited || c.call == SocketCall::kFound;
  // (a ping socket's "port" is its echo identifier: it accepts nothing)
  if (may_listen && is_stream(after.protocol) && after.local.port && !after.peer.valid())
    listen_ports_.insert(after.local.port);
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
  events_->push(std::move(e), socket_events_polled_);
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
