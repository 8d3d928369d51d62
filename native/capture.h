// Live capture: one AF_PACKET socket on all interfaces (SOCK_DGRAM: packets start at the
// network header) with a TPACKET_V3 ring, read by its own thread, handed over a block at a time
// without copying (the controller reads the ring's memory, then gives the block back).
#pragma once
#include <linux/filter.h>
#include <linux/if_packet.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "capture_gate.h"
#include "unique_fd.h"

struct CaptureOptions {
  uint32_t block_size = 4 << 20;  // bytes, a multiple of the page size
  uint32_t block_count = 16;
  uint32_t retire_ms = 20;        // a partly filled block is handed over after this long
  std::vector<int> interfaces;            // -i: only packets of these ifindexes (empty: all)
  std::vector<sock_filter> user_filter;   // -f: a pcap-filter program over the IP packet
  // The ring is allocated by a helper process started by start() (after the filter is set: the
  // allocation holds the socket's lock), and mapped and bound when it is there; until then
  // gate() is closed. Allocating a large ring can take a second when the machine must back the
  // memory again; the command runs meanwhile, and waits only at its first socket call.
  bool defer_ring = false;
};

// One packet record in a batch (little endian), followed by caplen bytes of packet data:
//   u32 sec, u32 nsec, u32 caplen, u32 len, i32 ifindex, u16 protocol (ethertype),
//   u16 hatype (ARPHRD_*), u8 pkttype (PACKET_*), u8 flags, u16 gap
// flags bit 0 (kRecordSkip): not wanted (-i/-f), read past it. gap: bytes between the end of
// this record's data and the next record's header (0 when they follow each other).
constexpr size_t kRecordHeaderSize = 28;
constexpr uint8_t kRecordSkip = 1;

// A batch's memory: one block of the kernel ring, lent to the controller. The records are
// written in place (each 28-byte header right before its packet's data, over the frame's own
// header room), so nothing is copied; the block goes back to the kernel when the controller
// gives it back with Capture::recycle(). Moving it does not copy; dropping it without
// recycle() leaves the block to the ring's owner (only at teardown).
class Slab {
 public:
  Slab() = default;
  // A block of the ring, lent in place.
  Slab(uint8_t* p, uint32_t block) : ptr_(p), block_(block) {}
  // A copy of a block's records (a block retired by its timeout, mostly empty): the block went
  // back to the kernel at once, so slow moments of the controller do not use up the ring.
  Slab(std::unique_ptr<uint8_t[]> copy, size_t size)
      : ptr_(copy.get()), block_(kCopied), copy_(std::move(copy)), size_(size) {}
  Slab(Slab&& o) noexcept = default;
  Slab& operator=(Slab&& o) noexcept = default;
  Slab(const Slab&) = delete;
  Slab& operator=(const Slab&) = delete;
  uint8_t* get() const { return ptr_; }
  uint32_t block() const { return block_; }
  bool copied() const { return block_ == kCopied; }
  size_t copy_size() const { return size_; }
  explicit operator bool() const { return ptr_ != nullptr; }

  static constexpr uint32_t kCopied = UINT32_MAX;

 private:
  uint8_t* ptr_ = nullptr;
  uint32_t block_ = 0;
  std::unique_ptr<uint8_t[]> copy_;
  size_t size_ = 0;
};

// The controller must be done with a batch's memory when its callback returns, and gives it
// back with recycle(). Until then the kernel cannot fill that block again.
struct CaptureBatch {
  Slab slab;
  size_t size = 0;
  uint32_t packets = 0;
};

struct CaptureStats {
  uint64_t packets = 0;  // packets the kernel passed through the filter
  uint64_t drops = 0;    // packets lost because the ring was full
  uint64_t stalls = 0;   // times the reader found every block lent to the controller
  uint64_t waiting = 0;  // packets in the ring not handed over yet (in the block being filled)
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
  // Binds to all interfaces (defer_ring: starts the ring's helper); 0 or -errno, with the call.
  int start(Deliver deliver, const char** syscall_name);
  // Hands over every packet captured so far, then stops the reader thread.
  void stop();
  void recycle(Slab slab);  // the controller is done with a batch: its block goes back
  CaptureStats stats();
  // The ring's mapping (mapped until the Capture is destroyed): lent batches lie in it.
  uint8_t* ring() const { return ring_; }
  size_t ring_size() const { return ring_size_; }
  // Open once packets are received (at once without defer_ring); failed when the deferred ring
  // could not be made (ring_error() says why); given up when the capture stopped before. With
  // defer_ring its owner opens it once live() (after putting the files in place), open_gate().
  std::shared_ptr<CaptureGate> gate() const { return gate_; }
  void open_gate() {
    if (live_) gate_->open();
  }
  bool live() const { return live_.load(); }
  // The deferred ring's failure: the call and errno (0: none).
  int ring_error(std::string* syscall_name) const;
  // This process's CPU time (s) when the capture went live.
  double live_cpu_seconds() const { return live_cpu_seconds_.load(); }

 private:
  Capture() = default;
  int map_ring(const char** syscall_name);
  int bind_all();
  int start_ring_helper();
  void run_deferred();
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
  tpacket_req3 req_{};
  std::shared_ptr<CaptureGate> gate_ = std::make_shared<CaptureGate>(false);
  std::atomic<bool> live_{false};
  std::atomic<double> live_cpu_seconds_{0};
  UniqueFd ring_result_;  // defer_ring: the helper writes its errno here (0: the ring is there)
  mutable std::mutex error_mutex_;
  std::string ring_error_syscall_;
  int ring_errno_ = 0;

  void release_block(uint32_t block);

  std::mutex mutex_;  // guards lent_, lent_count_, copied_bytes_, stats_, placed_ and handed_
  size_t copied_bytes_ = 0;  // bytes of copied batches the controller holds
  std::condition_variable room_;  // a block came back (or stop)
  std::vector<uint8_t> lent_;     // per block: handed to the controller, not back yet
  uint32_t lent_count_ = 0;
  // The controller's thread (the one that calls start()), raised in priority while a backlog
  // of lent blocks builds up, so that it drains the ring before the traced program fills it.
  int consumer_tid_ = 0;
  int consumer_nice_ = 0;  // its own priority, restored when the backlog is gone
  bool boosted_ = false;
  int boost_nice_ = -10;
  CaptureStats stats_;
  uint64_t placed_ = 0;  // packets the kernel put in the ring (its statistics)
  uint64_t handed_ = 0;  // packets of the blocks handed over (or given back unwanted)
};
