// Keeps a capture file whole when tracedump dies in the middle of a write (a SIGKILL stops a
// write() between two pages): a small guardian process holds the file and, when tracedump is
// gone without releasing it, cuts the file back to its last whole record, and removes the
// paths it was given (a private TLS key log must not outlive tracedump).
#pragma once
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

class FileGuard {
 public:
  // Forks the guardian for fd (a regular file). remove_on_death: files, then directories,
  // removed in this order if tracedump dies. nullptr with *err = errno on failure.
  static std::unique_ptr<FileGuard> start(int fd, const std::vector<std::string>& remove_on_death,
                                          int* err);
  ~FileGuard();
  FileGuard(const FileGuard&) = delete;
  FileGuard& operator=(const FileGuard&) = delete;

  // Before a write: the size the file will have once it completed.
  void writing(uint64_t size_after);
  // After it (or after cutting a failed write back): the size of the whole records in the file.
  void written(uint64_t size);
  // The paths given to start() are to stay: the guardian no longer removes them.
  void keep();
  // The file is finished: the guardian exits without touching it.
  void release();

 private:
  struct Shared {
    std::atomic<uint64_t> whole;   // bytes of whole records
    std::atomic<uint64_t> target;  // whole + the write in progress, if any
    std::atomic<bool> keep;        // keep() was called
  };
  FileGuard(Shared* shared, pid_t pid, int release_fd)
      : shared_(shared), pid_(pid), release_fd_(release_fd) {}

  Shared* shared_;
  pid_t pid_;
  int release_fd_;  // write end of the pipe the guardian waits on; EOF without a byte = died
};
