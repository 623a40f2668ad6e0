// CircuitBreaker: per-participant fail-fast. After `failure_threshold` consecutive failed calls
// (the agent did not answer: UNAVAILABLE, DEADLINE_EXCEEDED) the circuit OPENs and new
// transactions that would touch the participant are refused at once with UNAVAILABLE instead of
// each waiting out a prepare timeout. After the open period it is HALF_OPEN: new work is let
// through as a trial, and the first success closes it, the first failure re-opens it for twice
// as long (capped). The coordinator's health prober counts as a caller, so a circuit recovers
// even when no client tries.
//
// Only admission is gated: commits and rollbacks of transactions already under way are retried
// whatever the circuit says (a logged decision is never given up).
//
// Pure bookkeeping: time comes in as arguments. Not thread-safe; the owner locks.
#pragma once

#include <cstdint>
#include <string>

namespace txn::transport {

enum class CircuitState { kClosed, kOpen, kHalfOpen };

struct CircuitOptions {
  int failure_threshold = 5;
  int64_t open_ms = 1000;
  int64_t max_open_ms = 30'000;
};

class CircuitBreaker {
 public:
  explicit CircuitBreaker(CircuitOptions options = {}) : options_(options) {}

  // May new work go to the participant now? Moves OPEN to HALF_OPEN once the open period passed.
  bool AllowNewWork(int64_t now_ms);
  void RecordSuccess();
  void RecordFailure(int64_t now_ms, std::string error);

  // The state as of `now_ms` (an OPEN circuit whose period passed reads HALF_OPEN).
  CircuitState StateAt(int64_t now_ms) const;
  int consecutive_failures() const { return consecutive_failures_; }
  const std::string& last_error() const { return last_error_; }
  // While OPEN: when new work will be tried again.
  int64_t open_until_ms() const { return open_until_ms_; }

 private:
  const CircuitOptions options_;
  CircuitState state_ = CircuitState::kClosed;
  int consecutive_failures_ = 0;
  int64_t open_until_ms_ = 0;
  int64_t current_open_ms_ = 0;
  std::string last_error_;
};

const char* CircuitStateName(CircuitState s);

}  // namespace txn::transport
