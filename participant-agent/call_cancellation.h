// CallCancellation: whether the Participant call a worker serves was cancelled (the coordinator
// gave up on it: its deadline passed, it was cancelled, or a Rollback of the same branch
// arrived), and a way to interrupt the database statement the call is running at that moment.
//
// A worker installs the call's cancellation for the current thread (Scope) while it serves the
// call; an adapter that runs a statement which may wait (a row lock, pg_sleep) registers how to
// interrupt it (Interruptible) for the duration of the statement, e.g. PQcancel on PostgreSQL.
// Cancel() runs that interrupt, so a cancelled call frees its worker and its connection instead
// of holding them until the database's lock timeout. A thread-local is used so that the
// interrupt reaches the statement without threading a token through every registry and adapter
// signature; it is set only by Scope, on lane workers.
//
// Thread-safe: Cancel() may run on any thread while the serving thread runs statements.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>

#include "absl/base/thread_annotations.h"

namespace txn::agent {

class CallCancellation : public std::enable_shared_from_this<CallCancellation> {
 public:
  // Marks the call cancelled and runs the interrupt registered now, if any. Idempotent.
  void Cancel();
  bool cancelled() const;

  // The cancellation of the call the current thread serves, or nullptr outside a Scope.
  static CallCancellation* Current();

  // When the coordinator gives up on the call (its gRPC deadline, or the timeout of a streamed
  // call); time_point::max() when it set none. Set before the call runs.
  void set_deadline(std::chrono::system_clock::time_point d) {
    std::lock_guard<std::mutex> lock(mu_);
    deadline_ = d;
  }
  // Milliseconds left until the current thread's call's deadline (at least 1), or nullopt when
  // no call is current or it has no deadline. Adapters derive their statement timeouts from it
  // (statement_timeout, max_statement_time), so that a statement ends in the database even
  // when the cancellation cannot reach it (the agent lost its coordinator, or died).
  static std::optional<int64_t> CurrentRemainingMs();

  // Makes `c` the current thread's cancellation until destroyed.
  class Scope {
   public:
    explicit Scope(CallCancellation* c);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    CallCancellation* const previous_;
  };

  // While alive, Cancel() of the current thread's cancellation runs `interrupt` (at most once).
  // `interrupted()` says whether the call was cancelled while or before the guard was alive:
  // checked right after construction it means "do not send the statement"; afterwards, the
  // statement may have been cut short, and the connection should not be reused (a late cancel
  // request could hit the next statement on it). Without a current cancellation it does
  // nothing.
  class Interruptible {
   public:
    explicit Interruptible(std::function<void()> interrupt);
    ~Interruptible();
    Interruptible(const Interruptible&) = delete;
    Interruptible& operator=(const Interruptible&) = delete;
    bool interrupted() const;

   private:
    CallCancellation* const owner_;
  };

 private:
  mutable std::mutex mu_;
  // Guarded by mu_.
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::function<void()> interrupt_ ABSL_GUARDED_BY(mu_);
  bool interrupted_ ABSL_GUARDED_BY(mu_) = false;
  std::chrono::system_clock::time_point deadline_ ABSL_GUARDED_BY(mu_) =
      std::chrono::system_clock::time_point::max();
};

}  // namespace txn::agent
