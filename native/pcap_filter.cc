#include "pcap_filter.h"

#include <dlfcn.h>

#include <cstring>
#include <mutex>
#include <type_traits>

namespace {

// The few declarations of <pcap/pcap.h> used here (stable libpcap ABI since 0.8).
struct pcap;
struct bpf_program {
  unsigned int bf_len;
  sock_filter* bf_insns;
};
constexpr uint32_t kNetmaskUnknown = 0xffffffff;  // PCAP_NETMASK_UNKNOWN
constexpr int kDltRaw = 12;                        // DLT_RAW on Linux

struct LibPcap {
  pcap* (*open_dead)(int linktype, int snaplen);
  int (*compile)(pcap*, bpf_program*, const char*, int optimize, uint32_t netmask);
  char* (*geterr)(pcap*);
  void (*freecode)(bpf_program*);
  void (*close)(pcap*);
  unsigned int (*filter)(const sock_filter*, const uint8_t*, unsigned int wirelen, unsigned int caplen);
};

std::mutex load_mutex;
const LibPcap* loaded = nullptr;
std::string load_error;

// Debian/Ubuntu name the runtime library libpcap.so.0.8; Fedora, Arch and Alpine libpcap.so.1.
const LibPcap* load(std::string* error) {
  std::lock_guard<std::mutex> lock(load_mutex);
  if (loaded) return loaded;
  if (!load_error.empty()) {
    *error = load_error;
    return nullptr;
  }
  void* h = nullptr;
  for (const char* name : {"libpcap.so.0.8", "libpcap.so.1", "libpcap.so"})
    if ((h = dlopen(name, RTLD_NOW | RTLD_LOCAL))) break;
  if (!h) {
    load_error = "libpcap is not installed (tried libpcap.so.0.8, libpcap.so.1, libpcap.so)";
    *error = load_error;
    return nullptr;
  }
  static LibPcap lib;
  bool ok = true;
  auto sym = [&](auto& fn, const char* name) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(h, name));
    if (!fn) ok = false;
  };
  sym(lib.open_dead, "pcap_open_dead");
  sym(lib.compile, "pcap_compile");
  sym(lib.geterr, "pcap_geterr");
  sym(lib.freecode, "pcap_freecode");
  sym(lib.close, "pcap_close");
  sym(lib.filter, "bpf_filter");
  if (!ok) {
    dlclose(h);
    load_error = "the installed libpcap lacks pcap_compile or bpf_filter";
    *error = load_error;
    return nullptr;
  }
  loaded = &lib;  // the library stays loaded for the life of the process
  return loaded;
}

}  // namespace

bool compile_pcap_filter(const std::string& expr, int linktype, int snaplen, std::vector<sock_filter>* out,
                         std::string* error, bool* missing) {
  *missing = false;
  const LibPcap* lib = load(error);
  if (!lib) {
    *missing = true;
    return false;
  }
  // pcap_compile is not thread-safe in older libpcap releases.
  static std::mutex compile_mutex;
  std::lock_guard<std::mutex> lock(compile_mutex);
  pcap* dead = lib->open_dead(linktype == kLinktypeRaw ? kDltRaw : linktype, snaplen);
  if (!dead) {
    *error = "libpcap: cannot make a compiler handle";
    return false;
  }
  bpf_program prog{};
  if (lib->compile(dead, &prog, expr.c_str(), 1, kNetmaskUnknown) < 0) {
    *error = lib->geterr(dead);
    lib->close(dead);
    return false;
  }
  out->assign(prog.bf_insns, prog.bf_insns + prog.bf_len);
  lib->freecode(&prog);
  lib->close(dead);
  return true;
}

bool pcap_filter_loaded() {
  std::lock_guard<std::mutex> lock(load_mutex);
  return loaded != nullptr;
}

bool pcap_filter_accepts(const sock_filter* program, const uint8_t* packet,
                         uint32_t wire_len, uint32_t caplen) {
  return loaded->filter(program, packet, wire_len, caplen) != 0;
}
