#include "common/timer_queue.h"

namespace txn::common {

TimerQueue::TimerQueue() {
  thread_ = std::thread([this] { Loop(); });
}

TimerQueue::~TimerQueue() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void TimerQueue::After(int64_t delay_ms, std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    timers_.push(Timer{std::chrono::steady_clock::now() + std::chrono::milliseconds(delay_ms),
                       next_seq_++, std::move(fn)});
  }
  cv_.notify_all();
}

void TimerQueue::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    if (timers_.empty()) {
      cv_.wait(lock);
      continue;
    }
    auto due = timers_.top().due;
    if (std::chrono::steady_clock::now() < due) {
      cv_.wait_until(lock, due);
      continue;
    }
    std::function<void()> fn = std::move(const_cast<Timer&>(timers_.top()).fn);
    timers_.pop();
    lock.unlock();
    fn();
    lock.lock();
  }
}

}  // namespace txn::common
