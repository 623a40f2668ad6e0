// ThreePhaseDriver: runs the pure 3PC machine (coordinator/core/three_phase.h) against the real
// world, the way SagaDriver runs sagas: effects planned under the transaction's lock and carried
// out after it; START, ballots and decisions written synced through the group-commit log before
// anything that depends on them is sent; PREPARE / PRE_COMMIT / ELECT / COMMIT / ABORT through
// the transport; timers for the vote phase and for stalled pre-commits (which start a
// termination round). TransactionDriver owns one and hands it Run requests with
// PROTOCOL_THREE_PHASE and, at start, the unfinished 3PC records (START only: a termination
// round; a decision: re-sent). Thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
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
#include "coordinator/core/three_phase.h"
#include "coordinator/core/wait_for_graph.h"
#include "coordinator/driver/driver_skeleton.h"
#include "coordinator/driver/request_identity.h"
#include "coordinator/log/decision_log.h"
#include "coordinator/log/decision_writer.h"
#include "coordinator/transport/participant_channel.h"
#include "txn/v1/coordinator.pb.h"

namespace txn::driver {

struct ThreePhaseTimeouts {
  int64_t prepare_timeout_ms = 10'000;
  // How long pre-commit ACKs (or a termination round) may take before the coordinator starts a
  // (new) termination round; on each retry the retry backoff's delay (with jitter, up to its
  // cap) is added to it.
  int64_t termination_timeout_ms = 2'000;
};

// A running three-phase commit (three_phase_driver.cc).
struct ThreePhaseContext;

class ThreePhaseDriver final : public ProtocolDriverBase<ThreePhaseDriver, ThreePhaseContext> {
 public:
  ThreePhaseDriver(ProtocolDriverDeps deps, ThreePhaseTimeouts timeouts);
  ~ThreePhaseDriver();

  // Starts transaction `txn_id` for a validated Run request. `reply` runs once: when the outcome
  // is known (COMMITTED once the decision is durable, unless wait_for_completion; ABORTED), or
  // IN_DOUBT when a decision could not be written. `start_order` is the sequence part of its id
  // (larger = younger: deadlock victims are the youngest).
  void Start(const std::string& txn_id, uint64_t start_order, const v1::RunRequest& req,
             RequestIdentity identity, OutcomeReply reply);
  // Takes up an unfinished 3PC record after a restart.
  void Resume(const log::DecisionRecord& record);

  // A decision the participants reached by themselves. NOT_FOUND when `txn_id` is not running
  // here, INVALID_ARGUMENT when `participant` is not one of its members.
  absl::Status Report(const std::string& txn_id, const std::string& participant, core::Decision d);

  // Deadlock detection, as TwoPhaseDriver's for 2PC: a three-phase transaction may be on a
  // cycle only in its vote phase (no PRE_COMMIT sent, no decision) while the Prepare call the
  // edge names (edge.waiter_call at edge.participant) is still in flight; nullopt when
  // edge.waiter is not running here.
  std::optional<core::MemberStanding> DeadlockStanding(const core::WaitEdge& edge) const;
  // Aborts `txn_id` (its ABORT logged, then its branches rolled back, which interrupts the
  // statement that waits) if it is still in its vote phase; false otherwise.
  bool AbortDeadlockVictim(const std::string& txn_id, const std::string& reason);

  // For ProtocolDriverBase's Find / Snapshot / Attach (the context held locked).
  static v1::Transaction ShownAs(const ThreePhaseContext& ctx);
  static std::optional<v1::Outcome> AnsweredWith(const ThreePhaseContext& ctx);

 private:
  using Context = ThreePhaseContext;
  void Dispatch(const std::shared_ptr<Context>& ctx, const core::ThreePhaseEvent& event);
  std::vector<Action> Plan(const std::shared_ptr<Context>& ctx,
                           const std::vector<core::ThreePhaseEffect>& effects);
  // Requires ctx->mu held. The record of the transaction as it stands, with `decision`.
  log::DecisionRecord RecordOf(const Context& ctx, v1::Decision decision) const;
  void Write(const std::shared_ptr<Context>& ctx, log::DecisionRecord record,
             std::function<void(absl::Status)> done);

  const ThreePhaseTimeouts timeouts_;
};

extern template class ProtocolDriverBase<ThreePhaseDriver, ThreePhaseContext>;

}  // namespace txn::driver
