// Clock: the one way code outside coordinator/core reads time, so tests can drive it.
// Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace txn::common {

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch, for records a person reads.
  virtual int64_t NowUnixMs() = 0;
  // Monotonic milliseconds, for deadlines and timers.
  virtual int64_t NowMonotonicMs() = 0;
};

class SystemClock final : public Clock {
 public:
  int64_t NowUnixMs() override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  int64_t NowMonotonicMs() override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};

// A clock that moves only when told to.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_ms = 1'700'000'000'000) : now_(start_ms) {}
  int64_t NowUnixMs() override { return now_.load(); }
  int64_t NowMonotonicMs() override { return now_.load(); }
  void Advance(int64_t ms) { now_ += ms; }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace txn::common
