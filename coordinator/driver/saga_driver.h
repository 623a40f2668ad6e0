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

// A running saga (saga_driver.cc).
struct SagaContext;

class SagaDriver final : public ProtocolDriverBase<SagaDriver, SagaContext> {
 public:
  explicit SagaDriver(ProtocolDriverDeps deps);
  ~SagaDriver();

  // Starts saga `txn_id` for a validated Run request. `reply` runs once, when the saga finished
  // (COMMITTED, ABORTED after compensating, FAILED_COMPENSATION) or its outcome cannot be known
  // yet (IN_DOUBT).
  void Start(const std::string& txn_id, const v1::RunRequest& req, RequestIdentity identity,
             OutcomeReply reply);
  // Takes up a saga from its unfinished record after a restart.
  void Resume(const log::DecisionRecord& record);

  // For ProtocolDriverBase's Find / Snapshot / Attach (the context held locked).
  static v1::Transaction ShownAs(const SagaContext& ctx);
  static std::optional<v1::Outcome> AnsweredWith(const SagaContext& ctx);

 private:
  void Dispatch(const std::shared_ptr<SagaContext>& ctx, const core::SagaEvent& event);
  std::vector<Action> Plan(const std::shared_ptr<SagaContext>& ctx,
                           const std::vector<core::SagaEffect>& effects);
};

extern template class ProtocolDriverBase<SagaDriver, SagaContext>;

}  // namespace txn::driver
