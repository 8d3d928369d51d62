#include "file_guard.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <initializer_list>

namespace {

void close_range_sys(unsigned first, unsigned last) {
  if (first <= last) syscall(SYS_close_range, first, last, 0);
}

// The guardian: only async-signal-safe calls (it is forked from a multi-threaded process).
[[noreturn]] void guard(int file_fd, int wait_fd, std::atomic<uint64_t>* whole,
                        std::atomic<uint64_t>* target, std::atomic<bool>* keep,
                        const std::vector<std::string>& remove) {
  // Hold nothing of tracedump's but the file and the pipe (no capture socket, no terminal).
  int lo = file_fd < wait_fd ? file_fd : wait_fd, hi = file_fd < wait_fd ? wait_fd : file_fd;
  close_range_sys(0, lo - 1);
  close_range_sys(lo + 1, hi - 1);
  close_range_sys(hi + 1, ~0U);
  setsid();  // out of tracedump's process group: a Ctrl-C or a group kill does not reach it
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU, SIGPIPE})
    signal(s, SIG_IGN);
  prctl(PR_SET_NAME, "tracedump-guard");
  char c;
  ssize_t n;
  while ((n = read(wait_fd, &c, 1)) < 0 && errno == EINTR) {
  }
  if (n == 1) _exit(0);  // released: the file is finished
  // tracedump is gone. Its last write either completed (the file has the target size) or
  // stopped part way: then back to the last whole record.
  uint64_t w = whole->load(), t = target->load();
  struct stat st;
  if (fstat(file_fd, &st) == 0 && static_cast<uint64_t>(st.st_size) != w &&
      static_cast<uint64_t>(st.st_size) != t)
    ftruncate(file_fd, static_cast<off_t>(w));
  if (!keep->load())
    for (const std::string& path : remove)
      if (unlink(path.c_str()) < 0 && errno == EISDIR) rmdir(path.c_str());
  _exit(0);
}

}  // namespace

std::unique_ptr<FileGuard> FileGuard::start(int fd, const std::vector<std::string>& remove_on_death,
                                            int* err) {
  void* mem = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    *err = errno;
    return nullptr;
  }
  Shared* shared = new (mem) Shared();
  struct stat st;
  uint64_t size = fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  shared->whole = size;
  shared->target = size;
  shared->keep = false;
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) {
    *err = errno;
    munmap(mem, sizeof(Shared));
    return nullptr;
  }
  pid_t pid = fork();
  if (pid < 0) {
    *err = errno;
    close(p[0]);
    close(p[1]);
    munmap(mem, sizeof(Shared));
    return nullptr;
  }
  if (pid == 0) guard(fd, p[0], &shared->whole, &shared->target, &shared->keep, remove_on_death);
  close(p[0]);
  return std::unique_ptr<FileGuard>(new FileGuard(shared, pid, p[1]));
}

void FileGuard::writing(uint64_t size_after) { shared_->target = size_after; }

void FileGuard::written(uint64_t size) {
  shared_->whole = size;
  shared_->target = size;
}

void FileGuard::keep() {
  if (shared_) shared_->keep = true;
}

void FileGuard::release() {
  if (release_fd_ < 0) return;
  ssize_t ignored = write(release_fd_, "r", 1);
  (void)ignored;
  close(release_fd_);
  release_fd_ = -1;
  int status;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  munmap(shared_, sizeof(Shared));
  shared_ = nullptr;
}

FileGuard::~FileGuard() { release(); }
