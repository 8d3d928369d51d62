// A producer thread -> JS queue: wake() runs when the queue turns non-empty, so one delivery
// drains everything that arrived meanwhile (batches, never one JS call per item).
#pragma once
#include <functional>
#include <mutex>
#include <utility>
#include <vector>

template <typename T>
class WakeQueue {
 public:
  explicit WakeQueue(std::function<void()> wake) : wake_(std::move(wake)) {}
  void push(T&& item) {
    bool was_empty;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      was_empty = items_.empty();
      items_.push_back(std::move(item));
    }
    if (was_empty) wake_();
  }
  std::vector<T> drain() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<T> out;
    out.swap(items_);
    // room for as many again: the producer (the tracer thread, between stops) grows no vector
    items_.reserve(out.size());
    return out;
  }

 private:
  std::function<void()> wake_;
  std::mutex mutex_;
  std::vector<T> items_;
};
