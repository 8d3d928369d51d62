// pcap-filter expressions (tcpdump's -f syntax), compiled by libpcap for packets that start at
// their IP header (DLT_RAW), and run by libpcap's classic BPF interpreter.
#pragma once
#include <linux/filter.h>

#include <cstdint>
#include <string>
#include <vector>

// The program for expr; false with *error set (libpcap's message) for a bad expression.
bool compile_pcap_filter(const std::string& expr, int snaplen, std::vector<sock_filter>* out,
                         std::string* error);

bool pcap_filter_accepts(const std::vector<sock_filter>& program, const uint8_t* packet,
                         uint32_t wire_len, uint32_t caplen);
