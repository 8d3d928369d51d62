// The monotonic clock in nanoseconds: for intervals (cache ages, lingering rules, stop timings).
#pragma once
#include <time.h>

#include <cstdint>

inline uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}
