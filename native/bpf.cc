// bpf(2) syscall wrappers; no libbpf.
#include "bpf.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace bpf {
namespace {

long sys_bpf(int cmd, bpf_attr* attr) { return syscall(SYS_bpf, cmd, attr, sizeof *attr); }
uint64_t ptr(const void* p) { return reinterpret_cast<uintptr_t>(p); }

}  // namespace

int create_hash_map(uint32_t key_size, uint32_t value_size, uint32_t max_entries, const char* name) {
  bpf_attr a;
  memset(&a, 0, sizeof a);
  a.map_type = BPF_MAP_TYPE_HASH;
  a.key_size = key_size;
  a.value_size = value_size;
  a.max_entries = max_entries;
  a.map_flags = BPF_F_NO_PREALLOC;  // memory follows the rules in use, not max_entries
  strncpy(a.map_name, name, sizeof a.map_name - 1);
  long fd = sys_bpf(BPF_MAP_CREATE, &a);
  return fd >= 0 ? static_cast<int>(fd) : -errno;
}

namespace {

long prog_load(const bpf_insn* insns, size_t count, std::vector<char>* log) {
  bpf_attr a;
  memset(&a, 0, sizeof a);
  a.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
  a.insns = ptr(insns);
  a.insn_cnt = static_cast<uint32_t>(count);
  a.license = ptr("GPL");
  if (log) {
    a.log_buf = ptr(log->data());
    a.log_size = static_cast<uint32_t>(log->size());
    a.log_level = 1;
  }
  strncpy(a.prog_name, "tracedump", sizeof a.prog_name - 1);
  // The verifier gives up with EAGAIN when a signal is pending (a profiler's SIGPROF, a
  // SIGCHLD); like libbpf, try again a few times.
  long fd;
  for (int tries = 0; tries < 5; tries++) {
    fd = sys_bpf(BPF_PROG_LOAD, &a);
    if (fd >= 0 || errno != EAGAIN) break;
  }
  return fd;
}

}  // namespace

int load_socket_filter(const bpf_insn* insns, size_t count, std::string* verifier_log) {
  // Without a log first: a verifier log costs time on every load and is only read on failure.
  long fd = prog_load(insns, count, nullptr);
  if (fd >= 0) return static_cast<int>(fd);
  int err = errno;
  if (verifier_log) {
    std::vector<char> log(1 << 20);
    fd = prog_load(insns, count, &log);
    if (fd >= 0) return static_cast<int>(fd);  // a transient failure the second try got past
    err = errno;
    *verifier_log = log.data();
  }
  return -err;
}

int map_update(int map_fd, const void* key, const void* value) {
  bpf_attr a;
  memset(&a, 0, sizeof a);
  a.map_fd = map_fd;
  a.key = ptr(key);
  a.value = ptr(value);
  a.flags = BPF_ANY;
  return sys_bpf(BPF_MAP_UPDATE_ELEM, &a) == 0 ? 0 : -errno;
}

int map_delete(int map_fd, const void* key) {
  bpf_attr a;
  memset(&a, 0, sizeof a);
  a.map_fd = map_fd;
  a.key = ptr(key);
  return sys_bpf(BPF_MAP_DELETE_ELEM, &a) == 0 ? 0 : -errno;
}

int map_lookup(int map_fd, const void* key, void* value) {
  bpf_attr a;
  memset(&a, 0, sizeof a);
  a.map_fd = map_fd;
  a.key = ptr(key);
  a.value = ptr(value);
  return sys_bpf(BPF_MAP_LOOKUP_ELEM, &a) == 0 ? 0 : -errno;
}

int test_run(int prog_fd, const void* packet, size_t len, uint32_t* retval) {
  // The kernel wants an Ethernet frame here: it strips the header and sets skb->protocol.
  std::vector<uint8_t> frame(14 + len);
  const uint8_t* p = static_cast<const uint8_t*>(packet);
  uint16_t ethertype = len > 0 && (p[0] >> 4) == 6 ? 0x86dd : 0x0800;
  frame[12] = ethertype >> 8;
  frame[13] = ethertype & 0xff;
  frame[0] = 0x02;  // a unicast, locally administered destination MAC
  memcpy(frame.data() + 14, packet, len);
  bpf_attr a;
  memset(&a, 0, sizeof a);
  a.test.prog_fd = prog_fd;
  a.test.data_in = ptr(frame.data());
  a.test.data_size_in = static_cast<uint32_t>(frame.size());
  a.test.repeat = 1;
  if (sys_bpf(BPF_PROG_TEST_RUN, &a) < 0) return -errno;
  *retval = a.test.retval;
  return 0;
}

}  // namespace bpf
