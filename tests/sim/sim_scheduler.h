// SimScheduler: the simulation's only source of time, order and chance. Events run one at a
// time, in order of their due time (ties in the order they were scheduled), and the clock jumps
// to each event's time; every random choice comes from one engine seeded by the run's seed. So
// a run is decided by its seed alone and replays exactly: no threads, no wall clock.
//
// NodeLife and NodeTimers model a process: when a node crashes, everything it had scheduled
// (timers, answers on their way to it) is dropped, as the process that waited for it is gone.
#pragma once

#include <cstdint>
#include <functional>
#include <queue>
#include <random>
#include <vector>

#include "common/clock.h"
#include "common/random.h"
#include "common/timers.h"

namespace txn::sim {

class SimScheduler {
 public:
  explicit SimScheduler(uint64_t seed) : engine_(seed) {}
  SimScheduler(const SimScheduler&) = delete;
  SimScheduler& operator=(const SimScheduler&) = delete;

  common::ManualClock* clock() { return &clock_; }
  int64_t now() { return clock_.NowMonotonicMs(); }

  // Runs `fn` `delay_ms` from now (negative counts as 0).
  void After(int64_t delay_ms, std::function<void()> fn);
  // Runs every event due at or before `until_ms`, then sets the clock to `until_ms`.
  void RunUntil(int64_t until_ms);
  size_t pending() const { return events_.size(); }

  // Chance, from the run's engine.
  bool Chance(double p);
  int64_t Between(int64_t lo, int64_t hi);  // uniform in [lo, hi]
  double Unit();                            // uniform in [0, 1)

 private:
  struct Event {
    int64_t due;
    uint64_t seq;
    std::function<void()> fn;
    bool operator>(const Event& o) const { return due != o.due ? due > o.due : seq > o.seq; }
  };
  common::ManualClock clock_{1'700'000'000'000};
  std::mt19937_64 engine_;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events_;
  uint64_t next_seq_ = 0;
};

// Whether a simulated process is up, and which of its lives is the current one.
class NodeLife {
 public:
  bool up() const { return up_; }
  void Crash() {
    up_ = false;
    ++generation_;
  }
  void Restart() { up_ = true; }
  // `fn`, made to do nothing unless this life is still the current one when it runs.
  std::function<void()> Bind(std::function<void()> fn) const {
    return [this, generation = generation_, fn = std::move(fn)] {
      if (up_ && generation_ == generation) fn();
    };
  }
  // The same for a callback that takes an argument.
  template <typename Arg>
  std::function<void(Arg)> BindReply(std::function<void(Arg)> fn) const {
    return [this, generation = generation_, fn = std::move(fn)](Arg arg) {
      if (up_ && generation_ == generation) fn(std::move(arg));
    };
  }

 private:
  bool up_ = true;
  uint64_t generation_ = 0;
};

// A node's timers: on the simulation's clock, dropped when the node crashes.
class NodeTimers final : public common::Timers {
 public:
  NodeTimers(SimScheduler* scheduler, const NodeLife* life) : scheduler_(scheduler), life_(life) {}
  void After(int64_t delay_ms, std::function<void()> fn) override {
    scheduler_->After(delay_ms, life_->Bind(std::move(fn)));
  }

 private:
  SimScheduler* const scheduler_;
  const NodeLife* const life_;
};

// The drivers' retry jitter, drawn from the run's engine.
class SimRandom final : public common::RandomSource {
 public:
  explicit SimRandom(SimScheduler* scheduler) : scheduler_(scheduler) {}
  double NextUnit() override { return scheduler_->Unit(); }

 private:
  SimScheduler* const scheduler_;
};

}  // namespace txn::sim
