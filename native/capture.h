// Live capture: one AF_PACKET socket on all interfaces (SOCK_DGRAM: packets start at the
// network header) with a TPACKET_V3 ring, read by its own thread, handed over a block at a time.
#pragma once
#include <linux/filter.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "unique_fd.h"

struct CaptureOptions {
  uint32_t block_size = 4 << 20;  // bytes, a multiple of the page size
  uint32_t block_count = 16;
  uint32_t retire_ms = 20;        // a partly filled block is handed over after this long
  uint64_t max_in_flight = 64ull << 20;  // bytes handed over but not yet consumed (slabs)
  uint32_t ready_slabs = 4;               // slabs made and touched before capture starts
  std::vector<int> interfaces;            // -i: only packets of these ifindexes (empty: all)
  std::vector<sock_filter> user_filter;   // -f: a pcap-filter program over the IP packet
};

// One packet record in a batch (little endian), followed by caplen bytes of packet data:
//   u32 sec, u32 nsec, u32 caplen, u32 len, i32 ifindex, u16 protocol (ethertype),
//   u16 hatype (ARPHRD_*), u8 pkttype (PACKET_*), u8[3] padding
constexpr size_t kRecordHeaderSize = 28;

// A batch lives in a reused slab (no allocation, no page faults per block): the controller
// must be done with it when its callback returns, and gives the slab back with recycle().
struct CaptureBatch {
  std::unique_ptr<uint8_t[]> slab;
  size_t size = 0;
  uint32_t packets = 0;
};

struct CaptureStats {
  uint64_t packets = 0;  // packets the kernel passed through the filter
  uint64_t drops = 0;    // packets lost because the ring was full
  uint64_t stalls = 0;   // times the reader waited for the controller (every slab handed over)
};

class Capture {
 public:
  using Deliver = std::function<void(CaptureBatch&&)>;

  // Opens the socket and maps the ring; no packet arrives before start(). Returns nullptr and
  // sets *syscall/*err on failure.
  static std::shared_ptr<Capture> open(const CaptureOptions& o, std::string* syscall, int* err);
  ~Capture();

  int attach_bpf(int prog_fd);                            // 0 or -errno
  int attach_classic(const std::vector<sock_filter>& p);  // 0 or -errno; atomic replacement
  int start(Deliver deliver);                             // binds to all interfaces
  // Hands over every packet captured so far, then stops the reader thread.
  void stop();
  void recycle(std::unique_ptr<uint8_t[]> slab);  // the controller is done with a batch
  CaptureStats stats();

 private:
  Capture() = default;
  void run();
  bool process_ready_blocks();
  void read_kernel_stats();
  bool wanted(int ifindex, const uint8_t* data, uint32_t len, uint32_t caplen) const;

  CaptureOptions options_;
  UniqueFd fd_;
  UniqueFd wake_fd_;  // eventfd: stop request
  uint8_t* ring_ = nullptr;
  size_t ring_size_ = 0;
  uint32_t next_block_ = 0;
  Deliver deliver_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};

  std::unique_ptr<uint8_t[]> take_slab();  // waits while every slab is handed over

  std::mutex mutex_;  // guards the slabs and stats_
  std::condition_variable room_;
  std::vector<std::unique_ptr<uint8_t[]>> free_slabs_;
  size_t slabs_made_ = 0;
  CaptureStats stats_;
};
