#include "tests/sim/sim_scheduler.h"

#include <algorithm>

namespace txn::sim {

void SimScheduler::After(int64_t delay_ms, std::function<void()> fn) {
  events_.push(Event{now() + std::max<int64_t>(delay_ms, 0), next_seq_++, std::move(fn)});
}

void SimScheduler::RunUntil(int64_t until_ms) {
  while (!events_.empty() && events_.top().due <= until_ms) {
    // Moved out before running: the event may schedule others.
    Event e = std::move(const_cast<Event&>(events_.top()));
    events_.pop();
    if (e.due > now()) clock_.Advance(e.due - now());
    e.fn();
  }
  if (until_ms > now()) clock_.Advance(until_ms - now());
}

bool SimScheduler::Chance(double p) { return p > 0 && Unit() < p; }

int64_t SimScheduler::Between(int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(engine_);
}

double SimScheduler::Unit() { return std::uniform_real_distribution<double>(0.0, 1.0)(engine_); }

}  // namespace txn::sim
