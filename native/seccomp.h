// The seccomp-bpf program installed in a launched command: only the socket calls that decide
// which packets belong to the program stop in the tracer; everything else runs at full speed.
#pragma once
#include <linux/filter.h>
#include <cstdint>
#include <string>
#include <vector>

namespace seccomp {

// SECCOMP_RET_DATA values the tracer reads back with PTRACE_GETEVENTMSG.
enum StopReason : uint16_t {
  kStopSocketCall = 0,       // an x86-64 socket call from the table below
  kStopUnsupportedAbi = 1,   // an i386 / x32 socket call: the tracer reports it cannot follow it
  kStopFdSource = 2,         // a call that can bring sockets in without a socket call (io_uring, pidfd_getfd)
};

// x86-64 syscall numbers that stop. sendto stops only with a non-NULL destination address.
struct TracedSyscall {
  int nr;
  const char* name;
};
const std::vector<TracedSyscall>& traced_syscalls();
// Calls after which the process's fd table is searched for sockets no traced call showed.
const std::vector<TracedSyscall>& fd_source_syscalls();

std::vector<sock_filter> build_program();
// Human-readable listing of the program (for --dump-seccomp and tests).
std::string dump_program(const std::vector<sock_filter>& prog);

}  // namespace seccomp
