// Builds the seccomp program from the syscall table; jumps are resolved from labels and checked.
#include "seccomp.h"

#include <linux/audit.h>
#include <linux/seccomp.h>
#include <sys/syscall.h>

#include <cstddef>
#include <map>
#include <sstream>
#include <stdexcept>

namespace seccomp {
namespace {

constexpr uint32_t kX32Bit = 0x40000000;

// x86-64 numbers of the calls that decide which packets belong to the program.
const std::vector<TracedSyscall> kTraced = {
    {SYS_connect, "connect"}, {SYS_bind, "bind"},       {SYS_listen, "listen"},
    {SYS_sendto, "sendto"},   {SYS_sendmsg, "sendmsg"}, {SYS_sendmmsg, "sendmmsg"},
};

// Rare calls that bring sockets in: io_uring ops (IORING_OP_SOCKET, CONNECT, SEND...) run
// inside io_uring_enter; pidfd_getfd copies another process's socket.
const std::vector<TracedSyscall> kFdSources = {
    {SYS_io_uring_setup, "io_uring_setup"}, {SYS_io_uring_enter, "io_uring_enter"},
    {SYS_pidfd_getfd, "pidfd_getfd"},
};

// i386 socket calls: socketcall(2) and the direct calls added in Linux 4.3.
const std::vector<int> kI386Network = {102 /*socketcall*/, 361 /*bind*/,    362 /*connect*/,
                                       363 /*listen*/,     369 /*sendto*/,  370 /*sendmsg*/,
                                       345 /*sendmmsg*/};
// x32 uses x86-64 numbers with bit 30 set; sendmsg/sendmmsg have x32-only numbers.
const std::vector<int> kX32Network = {SYS_connect, SYS_bind, SYS_listen, SYS_sendto, 518, 538};

// A tiny assembler: conditional jumps name labels, resolved to 8-bit offsets at the end.
class Assembler {
 public:
  void load_abs(uint32_t off) { emit(BPF_LD | BPF_W | BPF_ABS, off); }
  void ret(uint32_t k) { emit(BPF_RET | BPF_K, k); }
  void jump(uint16_t op, uint32_t k, const std::string& jt, const std::string& jf) {
    insns_.push_back({static_cast<uint16_t>(BPF_JMP | op | BPF_K), k, jt, jf});
  }
  void label(const std::string& name) { labels_[name] = insns_.size(); }

  std::vector<sock_filter> finish() const {
    std::vector<sock_filter> out;
    for (size_t i = 0; i < insns_.size(); i++) {
      const Insn& in = insns_[i];
      out.push_back({in.code, offset(i, in.jt), offset(i, in.jf), in.k});
    }
    if (out.size() > BPF_MAXINSNS) throw std::runtime_error("seccomp program too long");
    return out;
  }

 private:
  struct Insn {
    uint16_t code;
    uint32_t k;
    std::string jt, jf;  // empty: fall through
  };
  void emit(uint16_t code, uint32_t k) { insns_.push_back({code, k, "", ""}); }
  uint8_t offset(size_t from, const std::string& to) const {
    if (to.empty()) return 0;
    auto it = labels_.find(to);
    if (it == labels_.end()) throw std::runtime_error("seccomp: undefined label " + to);
    if (it->second <= from || it->second - from - 1 > 255)
      throw std::runtime_error("seccomp: jump out of range to " + to);
    return static_cast<uint8_t>(it->second - from - 1);
  }
  std::vector<Insn> insns_;
  std::map<std::string, size_t> labels_;
};

constexpr uint32_t arg_lo(int i) { return offsetof(seccomp_data, args) + 8 * i; }
constexpr uint32_t arg_hi(int i) { return arg_lo(i) + 4; }

}  // namespace

const std::vector<TracedSyscall>& traced_syscalls() { return kTraced; }
const std::vector<TracedSyscall>& fd_source_syscalls() { return kFdSources; }

std::vector<sock_filter> build_program() {
  Assembler a;
  a.load_abs(offsetof(seccomp_data, arch));
  a.jump(BPF_JEQ, AUDIT_ARCH_X86_64, "", "other_arch");
  a.load_abs(offsetof(seccomp_data, nr));
  a.jump(BPF_JGE, kX32Bit, "x32", "");
  for (const auto& s : kTraced) {
    a.jump(BPF_JEQ, s.nr, s.nr == SYS_sendto ? "sendto" : "trace", "");
  }
  for (const auto& s : kFdSources) a.jump(BPF_JEQ, s.nr, s.nr == SYS_io_uring_enter ? "uring_enter" : "fd_source", "");
  a.ret(SECCOMP_RET_ALLOW);

  // sendto(fd, buf, len, flags, dest_addr, addrlen): a NULL dest_addr is a connected socket.
  a.label("sendto");
  a.load_abs(arg_lo(4));
  a.jump(BPF_JEQ, 0, "", "trace");
  a.load_abs(arg_hi(4));
  a.jump(BPF_JEQ, 0, "allow", "trace");

  // io_uring_enter(fd, to_submit, ...): a call that submits nothing only waits: let it run.
  a.label("uring_enter");
  a.load_abs(arg_lo(1));
  a.jump(BPF_JEQ, 0, "", "fd_source");
  a.load_abs(arg_hi(1));
  a.jump(BPF_JEQ, 0, "allow", "fd_source");

  a.label("x32");
  for (int nr : kX32Network) a.jump(BPF_JEQ, kX32Bit | nr, "unsupported", "");
  a.ret(SECCOMP_RET_ALLOW);

  a.label("other_arch");
  a.jump(BPF_JEQ, AUDIT_ARCH_I386, "", "allow");
  a.load_abs(offsetof(seccomp_data, nr));
  for (int nr : kI386Network) a.jump(BPF_JEQ, nr, "unsupported", "");
  a.label("allow");
  a.ret(SECCOMP_RET_ALLOW);
  a.label("trace");
  a.ret(SECCOMP_RET_TRACE | kStopSocketCall);
  a.label("fd_source");
  a.ret(SECCOMP_RET_TRACE | kStopFdSource);
  a.label("unsupported");
  a.ret(SECCOMP_RET_TRACE | kStopUnsupportedAbi);
  return a.finish();
}

std::string dump_program(const std::vector<sock_filter>& prog) {
  std::ostringstream os;
  for (size_t i = 0; i < prog.size(); i++) {
    const sock_filter& f = prog[i];
    os << i << ": ";
    switch (BPF_CLASS(f.code)) {
      case BPF_LD:
        os << "ld [" << f.k << "]";
        break;
      case BPF_RET:
        os << "ret 0x" << std::hex << f.k << std::dec;
        break;
      case BPF_JMP: {
        const char* op = BPF_OP(f.code) == BPF_JEQ ? "jeq" : BPF_OP(f.code) == BPF_JGE ? "jge" : "j?";
        os << op << " 0x" << std::hex << f.k << std::dec << " ? " << (i + 1 + f.jt) << " : "
           << (i + 1 + f.jf);
        break;
      }
      default:
        os << "op 0x" << std::hex << f.code << std::dec;
    }
    os << "\n";
  }
  return os.str();
}

}  // namespace seccomp
