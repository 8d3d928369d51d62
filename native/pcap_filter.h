// pcap-filter expressions (tcpdump's -f syntax), compiled and run by libpcap, which is loaded at
// run time (dlopen): the addon builds without libpcap's headers, and only -f and `read` with a
// filter need the library installed.
#pragma once
#include <linux/filter.h>

#include <cstdint>
#include <string>
#include <vector>

// LINKTYPE_RAW in files; libpcap's compiler takes DLT_RAW (12 on Linux) for it.
constexpr int kLinktypeRaw = 101;

// The program for expr over frames of this link type (a LINKTYPE_ value; LINKTYPE_RAW: the
// packet starts at its IP header). false with *error set: libpcap's message for a bad
// expression, or why libpcap could not be loaded (*missing set then).
bool compile_pcap_filter(const std::string& expr, int linktype, int snaplen, std::vector<sock_filter>* out,
                         std::string* error, bool* missing);

// Whether libpcap was loaded (by a compile_pcap_filter call).
bool pcap_filter_loaded();

// Runs a program from compile_pcap_filter (so libpcap is loaded) on one frame.
bool pcap_filter_accepts(const sock_filter* program, const uint8_t* packet,
                         uint32_t wire_len, uint32_t caplen);
