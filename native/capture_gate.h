// Holds the traced program back until the capture is live. With its ring allocated in the
// background (capture.h, CaptureOptions::defer_ring), the command starts before the ring is
// there; every stop the seccomp filter makes (the calls that make, bind, connect, send on or
// receive sockets) waits here until the capture is bound, so that no packet of the program
// comes before it. Opened once; or failed (the ring could not be made: the program is killed);
// or given up (the run is stopping before the capture was live: the program goes on, uncaptured,
// to the stop it was asked to make).
#pragma once
#include <atomic>
#include <condition_variable>
#include <mutex>

class CaptureGate {
 public:
  static constexpr int kClosed = 0, kOpen = 1, kFailed = -1, kGivenUp = -2;
  explicit CaptureGate(bool open) : state_(open ? kOpen : kClosed) {}
  bool is_open() const { return state_.load(std::memory_order_acquire) == kOpen; }
  void open() { set(kOpen); }
  void fail() { set(kFailed); }
  void give_up() { set(kGivenUp); }
  // Waits until it is no longer closed: kOpen, kFailed or kGivenUp.
  int wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return state_ != kClosed; });
    return state_;
  }

 private:
  void set(int s) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (state_ != kClosed) return;
      state_ = s;
    }
    changed_.notify_all();
  }
  std::mutex mutex_;
  std::condition_variable changed_;
  std::atomic<int> state_;
};
