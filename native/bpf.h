// Thin wrappers over bpf(2): hash maps, socket-filter programs (with the verifier's log),
// and BPF_PROG_TEST_RUN so programs can be tested on crafted packets by the kernel itself.
#pragma once
#include <linux/bpf.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace bpf {

// Each returns a new fd or -errno.
int create_hash_map(uint32_t key_size, uint32_t value_size, uint32_t max_entries, const char* name);
int load_socket_filter(const bpf_insn* insns, size_t count, std::string* verifier_log);

int map_update(int map_fd, const void* key, const void* value);  // 0 or -errno
int map_delete(int map_fd, const void* key);                      // 0 or -errno (ENOENT)
int map_lookup(int map_fd, const void* key, void* value);         // 0 or -errno (ENOENT)

// Runs a socket filter on one packet that starts at its network header; *retval is the
// number of bytes the filter keeps (0: rejected).
int test_run(int prog_fd, const void* packet, size_t len, uint32_t* retval);

}  // namespace bpf
