// Capped exponential backoff with full jitter, as a pure function of the attempt number and a
// uniform random draw, so it can be tested without a clock or a random source.
#pragma once

#include <algorithm>
#include <cstdint>

namespace txn::common {

struct BackoffPolicy {
  int64_t initial_ms = 50;
  int64_t max_ms = 5000;
  double multiplier = 2.0;
};

// Delay before retry number `attempt` (1 = first retry): uniform in [cap/2, cap] where
// cap = min(max_ms, initial_ms * multiplier^(attempt-1)). `unit_random` is in [0, 1).
inline int64_t BackoffDelayMs(const BackoffPolicy& p, int attempt, double unit_random) {
  if (attempt <= 0) return 0;
  double cap = static_cast<double>(p.initial_ms);
  for (int i = 1; i < attempt && cap < p.max_ms; ++i) cap *= p.multiplier;
  cap = std::min(cap, static_cast<double>(p.max_ms));
  return static_cast<int64_t>(cap / 2 + unit_random * (cap / 2));
}

}  // namespace txn::common
