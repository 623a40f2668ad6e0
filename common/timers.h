// Timers: how code outside coordinator/core asks to be called back later, so that tests and the
// simulation (tests/sim) can run timers on their own clock instead of a thread's. TimerQueue
// (timer_queue.h) is the real one. Implementations must be thread-safe.
#pragma once

#include <cstdint>
#include <functional>

namespace txn::common {

class Timers {
 public:
  virtual ~Timers() = default;
  // Runs `fn` once after `delay_ms` (as soon as possible if <= 0). `fn` must not block. Timers
  // that have not fired when the implementation is destroyed are dropped.
  virtual void After(int64_t delay_ms, std::function<void()> fn) = 0;
};

}  // namespace txn::common
