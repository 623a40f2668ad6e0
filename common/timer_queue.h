// TimerQueue: the real Timers (timers.h): runs callbacks after a delay on one background thread. Callbacks must not block
// (they dispatch events). Thread-safe. The destructor drops timers that have not fired.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <queue>
#include <thread>
#include <vector>

#include "common/timers.h"

namespace txn::common {

class TimerQueue final : public Timers {
 public:
  TimerQueue();
  ~TimerQueue() override;
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;

  // Runs `fn` on the timer thread after `delay_ms` (at once if <= 0).
  void After(int64_t delay_ms, std::function<void()> fn) override;

 private:
  struct Timer {
    std::chrono::steady_clock::time_point due;
    uint64_t seq;
    std::function<void()> fn;
    bool operator>(const Timer& o) const { return due != o.due ? due > o.due : seq > o.seq; }
  };
  void Loop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_;  // guarded by mu_
  uint64_t next_seq_ = 0;                                                       // guarded by mu_
  bool stopping_ = false;                                                       // guarded by mu_
  std::thread thread_;
};

}  // namespace txn::common
