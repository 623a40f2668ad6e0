// SagaDriver: runs the pure saga machine (coordinator/core/saga.h) against the real world, the
// way TransactionDriver runs 2PC: effects planned under the saga's lock and carried out after it,
// log writes through the group-commit log, ExecuteLocal / Compensate calls through the transport,
// retries after a capped exponential backoff with jitter. TransactionDriver owns one and hands it
// Run requests with PROTOCOL_SAGA and, at start, the unfinished saga records. Thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "common/backoff.h"
#include "common/clock.h"
#include "common/lifetime_guard.h"
#include "common/random.h"
#include "common/timers.h"
#include "coordinator/core/saga.h"
#include "coordinator/driver/driver_skeleton.h"
#include "coordinator/driver/request_identity.h"
#include "coordinator/log/decision_log.h"
#include "coordinator/log/decision_writer.h"
#include "coordinator/transport/participant_channel.h"
#include "txn/v1/coordinator.pb.h"

namespace txn::driver {

struct SagaDriverDeps {
  log::DecisionWriter* group_log = nullptr;
  transport::ParticipantDirectory* participants = nullptr;
  common::Clock* clock = nullptr;
  common::Timers* timers = nullptr;
  common::RandomSource* random = nullptr;  // retry jitter
  int64_t rpc_timeout_ms = 5'000;
  common::BackoffPolicy retry_backoff;
  // A saga finished (its final state); called once, outside any lock.
  std::function<void(const v1::Transaction&)> on_finished;
  // A log write failed (the coordinator fails closed).
  std::function<void(const absl::Status&)> on_log_failure;
};

class SagaDriver {
 public:
  using OutcomeReply = std::function<void(absl::StatusOr<v1::Outcome>)>;

  explicit SagaDriver(SagaDriverDeps deps);
  ~SagaDriver();

  // Starts saga `txn_id` for a validated Run request. `reply` runs once, when the saga finished
  // (COMMITTED, ABORTED after compensating, FAILED_COMPENSATION) or its outcome cannot be known
  // yet (IN_DOUBT).
  void Start(const std::string& txn_id, const v1::RunRequest& req, RequestIdentity identity,
             OutcomeReply reply);
  // Takes up a saga from its unfinished record after a restart.
  void Resume(const log::DecisionRecord& record);

  // A running saga, as GetTransaction shows it; nullopt when it is not running here.
  std::optional<v1::Transaction> Find(const std::string& txn_id) const;
  // Every running saga.
  std::vector<v1::Transaction> Snapshot() const;
  // Attaches `reply` to a running saga (an idempotent retry); false when it is not running.
  bool Attach(const std::string& txn_id, OutcomeReply reply);
  size_t active_count() const;

 private:
  struct SagaContext;

  void Dispatch(const std::shared_ptr<SagaContext>& ctx, const core::SagaEvent& event);
  std::vector<Action> Plan(const std::shared_ptr<SagaContext>& ctx,
                           const std::vector<core::SagaEffect>& effects);
  void Later(int attempt, Action fn) const {
    retries_.Later(deps_.retry_backoff, attempt, std::move(fn));
  }

  const SagaDriverDeps deps_;
  ContextTable<SagaContext> active_;
  // Closed first (the destructor's first step), so no callback runs against a half-destroyed
  // driver.
  common::LifetimeGuard lifetime_;
  const RetryScheduler retries_{deps_.timers, deps_.random, &lifetime_};
};

}  // namespace txn::driver
