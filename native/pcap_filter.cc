#include "pcap_filter.h"

#include <pcap/pcap.h>

#include <cstring>
#include <mutex>

bool compile_pcap_filter(const std::string& expr, int snaplen, std::vector<sock_filter>* out,
                         std::string* error) {
  // pcap_compile is not thread-safe in older libpcap releases.
  static std::mutex compile_mutex;
  std::lock_guard<std::mutex> lock(compile_mutex);
  pcap_t* dead = pcap_open_dead(DLT_RAW, snaplen);
  if (!dead) {
    *error = "libpcap: cannot make a compiler handle";
    return false;
  }
  bpf_program prog;
  if (pcap_compile(dead, &prog, expr.c_str(), 1, PCAP_NETMASK_UNKNOWN) < 0) {
    *error = pcap_geterr(dead);
    pcap_close(dead);
    return false;
  }
  static_assert(sizeof(bpf_insn) == sizeof(sock_filter), "classic BPF instructions");
  out->resize(prog.bf_len);
  memcpy(out->data(), prog.bf_insns, prog.bf_len * sizeof(bpf_insn));
  pcap_freecode(&prog);
  pcap_close(dead);
  return true;
}

bool pcap_filter_accepts(const std::vector<sock_filter>& program, const uint8_t* packet,
                         uint32_t wire_len, uint32_t caplen) {
  return bpf_filter(reinterpret_cast<const bpf_insn*>(program.data()), packet, wire_len, caplen) != 0;
}
