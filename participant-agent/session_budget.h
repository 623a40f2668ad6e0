// SessionBudget: how many database sessions (connections) the agent's branches may hold at once
// (--max-db-connections), with a queue.
//
// A branch holds its connection from its first statement until it is prepared, committed in
// one phase or rolled back, also while its interactive client thinks between calls: the work
// lane's worker count (--max-connections) bounds calls running at once, not these. A branch
// that would open a session beyond the budget waits for one to be given back (first come, first
// served) until its call's deadline or cancellation, bounded by `max_wait_ms`; then it is
// RESOURCE_EXHAUSTED naming the limit, before anything reached the database. Commits, rollbacks,
// the reconciler and the lock-wait reporter do not take from this budget: a finish must never
// wait for connections that the branches it would release are holding. Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"

namespace txn::agent {

class SessionBudget {
 public:
  // `max_sessions` 0: no limit.
  SessionBudget(size_t max_sessions, int64_t max_wait_ms)
      : max_sessions_(max_sessions), max_wait_ms_(max_wait_ms) {}

  // Takes one session slot, waiting while all are held: at most `max_wait_ms`, and no longer
  // than the current call has left (CallCancellation), nor after the call is cancelled.
  [[nodiscard]] absl::Status Acquire();
  // Gives a slot back (the session closed).
  void Release();
  size_t held() const;
  size_t waiting() const;

 private:
  const size_t max_sessions_;
  const int64_t max_wait_ms_;
  mutable std::mutex mu_;
  std::condition_variable freed_;
  size_t held_ ABSL_GUARDED_BY(mu_) = 0;
  // Tickets of waiting callers, in arrival order: the slot goes to the front one.
  std::deque<uint64_t> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t next_ticket_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace txn::agent
