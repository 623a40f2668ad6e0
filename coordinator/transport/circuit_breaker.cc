#include "coordinator/transport/circuit_breaker.h"

#include <algorithm>

namespace txn::transport {

bool CircuitBreaker::AllowNewWork(int64_t now_ms) {
  if (state_ == CircuitState::kOpen && now_ms >= open_until_ms_) state_ = CircuitState::kHalfOpen;
  return state_ != CircuitState::kOpen;
}

void CircuitBreaker::RecordSuccess() {
  state_ = CircuitState::kClosed;
  consecutive_failures_ = 0;
  current_open_ms_ = 0;
}

void CircuitBreaker::RecordFailure(int64_t now_ms, std::string error) {
  ++consecutive_failures_;
  last_error_ = std::move(error);
  if (state_ == CircuitState::kOpen && now_ms >= open_until_ms_) state_ = CircuitState::kHalfOpen;
  switch (state_) {
    case CircuitState::kClosed:
      if (consecutive_failures_ < options_.failure_threshold) return;
      current_open_ms_ = options_.open_ms;
      break;
    case CircuitState::kHalfOpen:  // the trial failed
      current_open_ms_ =
          std::min(options_.max_open_ms, std::max<int64_t>(options_.open_ms, current_open_ms_ * 2));
      break;
    case CircuitState::kOpen:  // calls that were already under way: the period stands
      return;
  }
  state_ = CircuitState::kOpen;
  open_until_ms_ = now_ms + current_open_ms_;
}

CircuitState CircuitBreaker::StateAt(int64_t now_ms) const {
  if (state_ == CircuitState::kOpen && now_ms >= open_until_ms_) return CircuitState::kHalfOpen;
  return state_;
}

const char* CircuitStateName(CircuitState s) {
  switch (s) {
    case CircuitState::kClosed:
      return "CLOSED";
    case CircuitState::kOpen:
      return "OPEN";
    case CircuitState::kHalfOpen:
      return "HALF_OPEN";
  }
  return "?";
}

}  // namespace txn::transport
