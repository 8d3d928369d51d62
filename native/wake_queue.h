// A producer thread -> JS queue: wake() runs once per delivery, for the first item that asks for
// it, so one delivery drains everything that arrived meanwhile (batches, never one JS call per
// item). A quiet item waits for a delivery something else asks for, or for the consumer's poll.
#pragma once
#include <functional>
#include <mutex>
#include <utility>
#include <vector>

template <typename T>
class WakeQueue {
 public:
  explicit WakeQueue(std::function<void()> wake) : wake_(std::move(wake)) {}
  void push(T&& item, bool quiet = false) {
    bool wake;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      wake = !quiet && !woken_;
      woken_ = woken_ || wake;
      items_.push_back(std::move(item));
    }
    if (wake) wake_();
  }
  std::vector<T> drain() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<T> out;
    out.swap(items_);
    woken_ = false;
    // room for as many again: the producer (the tracer thread, between stops) grows no vector
    items_.reserve(out.size());
    return out;
  }

 private:
  std::function<void()> wake_;
  std::mutex mutex_;
  std::vector<T> items_;
  bool woken_ = false;  // a delivery was asked for since the last drain
};
