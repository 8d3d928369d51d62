// Instrumentation of the stop path (TRACEDUMP_STATS_FILE, the benchmark): how long a tracee is
// held per socket-call stop, and what the kernel filter's updates cost. Off unless enabled;
// samples go into arrays made when it is enabled, so a stop allocates nothing. Writers are the
// tracer thread and the JS thread (rule releases, classic offers): a slot is taken with one
// atomic add. Read once the session is over.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "clock.h"

namespace stop_stats {

enum Kind : int {
  kConnectEntry,  // waitpid() returned a connect() entry stop -> the tracee resumed
  kConnectExit,   // the same for its exit stop
  kOtherEntry,    // other followed socket calls (sendto, sendmsg, bind, ...)
  kOtherExit,
  kMapInsert,     // bpf(BPF_MAP_UPDATE_ELEM) of a rule; present: keys in that map before
  kMapDelete,     // bpf(BPF_MAP_DELETE_ELEM); present: keys in that map before
  kClassicWide,   // classic mode, stop path: the wide program attached; present: instructions
  kClassicExact,  // classic mode, controller: an exact program attached; present: instructions
  kCount
};

struct Sample {
  uint32_t ns;       // saturates at ~4.29 s
  uint32_t present;  // what was there: see Kind
};

struct Series {
  std::unique_ptr<Sample[]> samples;
  size_t capacity = 0;
  std::atomic<size_t> next{0};
};

inline std::atomic<bool> g_on{false};
inline Series g_series[kCount];
// Flow and bind keys in the eBPF maps (kept by the rule set while stats are on).
inline std::atomic<uint32_t> g_rules_present{0};

inline bool on() { return g_on.load(std::memory_order_relaxed); }

inline void record(Kind k, uint64_t ns, uint32_t present) {
  Series& s = g_series[k];
  size_t i = s.next.fetch_add(1, std::memory_order_relaxed);
  if (i < s.capacity) s.samples[i] = {ns > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(ns), present};
}

// From now on, keep the first `capacity` samples of each kind (again: start over).
inline void enable(size_t capacity) {
  g_on = false;
  for (Series& s : g_series) {
    s.samples.reset(new Sample[capacity]);
    s.capacity = capacity;
    s.next = 0;
  }
  g_on = true;
}

// The samples of one kind in order, and how many did not fit.
inline std::vector<Sample> read(Kind k, uint64_t* overflow) {
  Series& s = g_series[k];
  size_t n = s.next.load();
  size_t kept = n < s.capacity ? n : s.capacity;
  *overflow = n - kept;
  return std::vector<Sample>(s.samples.get(), s.samples.get() + kept);
}

// Times a scope when stats are on: Timed t(kMapInsert, present); ... (recorded at scope end).
class Timed {
 public:
  Timed(Kind k, uint32_t present) : k_(k), present_(present), t0_(on() ? monotonic_ns() : 0) {}
  ~Timed() {
    if (t0_) record(k_, monotonic_ns() - t0_, present_);
  }
  Timed(const Timed&) = delete;
  Timed& operator=(const Timed&) = delete;

 private:
  Kind k_;
  uint32_t present_;
  uint64_t t0_;
};

}  // namespace stop_stats
