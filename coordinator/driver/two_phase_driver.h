// TwoPhaseDriver: runs the pure 2PC core (coordinator/core/two_phase.h) against the real world,
// the way ThreePhaseDriver and SagaDriver run theirs (driver_skeleton.h): it feeds the core
// events (client calls, participant replies, timer expiries, log completions) and carries out
// the effects the core returns (two_phase_effects.cc): RPCs to agents through the transport,
// writes to the decision log, timers, answers to waiting clients.
//
// Rules it keeps: the COMMIT record is durable (group-committed, synced) before any Commit RPC
// leaves or any client hears COMMITTED; nothing is logged on the abort path (presumed abort);
// effects are planned under the transaction's lock and carried out after it, so no lock is held
// across I/O; no call blocks a thread, completions arrive as callbacks.
//
// TransactionDriver owns one. Its front end makes the contexts (Run, and the interactive Begin /
// Execute / Commit / Rollback, which fill a context statement by statement) and hands them here;
// at start it hands over the 2PC records recovery found unfinished. Thread-safe.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "common/metrics.h"
#include "coordinator/core/two_phase.h"
#include "coordinator/core/wait_for_graph.h"
#include "coordinator/driver/driver_skeleton.h"
#include "coordinator/driver/proto_mapping.h"
#include "coordinator/driver/request_identity.h"
#include "coordinator/log/decision_log.h"
#include "txn/v1/coordinator.pb.h"

namespace txn::driver {

// One running 2PC transaction. The front end fills it before handing it over (and, for an
// interactive one, adds branches under `mu` while it runs).
struct TwoPhaseContext {
  std::mutex mu;
  core::TwoPhaseTxn txn ABSL_GUARDED_BY(mu);
  v1::Protocol protocol = v1::PROTOCOL_TWO_PHASE;
  bool interactive = false;
  // Run only: each branch's operations, sent with its Prepare / CommitOnePhase.
  std::vector<v1::Branch> run_branches ABSL_GUARDED_BY(mu);
  // Interactive only: branch index of each participant touched so far.
  std::unordered_map<std::string, uint32_t> branch_of ABSL_GUARDED_BY(mu);
  std::vector<OutcomeReply> waiters ABSL_GUARDED_BY(mu);
  bool commit_requested ABSL_GUARDED_BY(mu) = false;
  int executes_in_flight ABSL_GUARDED_BY(mu) = 0;
  // Execute / Prepare / CommitOnePhase calls in flight (the deadlock detector takes a reported
  // wait only while its call is here).
  CallsInFlight calls ABSL_GUARDED_BY(mu);
  int64_t prepare_timeout_ms = 0;
  TxnTimes times ABSL_GUARDED_BY(mu);
  RequestIdentity identity;
  // The sequence part of its id: larger = younger (deadlock victims are the youngest).
  uint64_t start_order = 0;
  // Begin's timeout_ms as the client asked (0: the default).
  int64_t requested_timeout_ms = 0;
  // Interactive: when its deadline passes (clock ms); an Execute call gets no more time than
  // is left, and the agent bounds the statement by it (statement_timeout / max_statement_time).
  int64_t deadline_unix_ms = 0;
  // For the phase latency metrics: since the commit was asked for, since the decision.
  std::optional<common::Stopwatch> since_commit_requested ABSL_GUARDED_BY(mu);
  std::optional<common::Stopwatch> since_decided ABSL_GUARDED_BY(mu);
};

class TwoPhaseDriver final : public ProtocolDriverBase<TwoPhaseDriver, TwoPhaseContext> {
 public:
  explicit TwoPhaseDriver(ProtocolDriverDeps deps);
  ~TwoPhaseDriver();

  // Makes `ctx` findable (its id, branches and waiters set); a Run then Dispatches
  // CommitRequested, an interactive transaction its statements' events as they come.
  void Insert(const std::shared_ptr<TwoPhaseContext>& ctx) { active_.Insert(ctx->txn.id, ctx); }
  std::shared_ptr<TwoPhaseContext> FindContext(const std::string& txn_id) const {
    return active_.Find(txn_id);
  }
  // Steps the core with `event` under ctx->mu and carries out its effects after unlocking.
  void Dispatch(const std::shared_ptr<TwoPhaseContext>& ctx, const core::TwoPhaseEvent& event);
  // Requires ctx->mu held: the core's `effects` as actions to run after unlocking (for a step a
  // caller must take together with its own checks under the same lock).
  std::vector<Action> Plan(const std::shared_ptr<TwoPhaseContext>& ctx,
                           const std::vector<core::TwoPhaseEffect>& effects);
  // Takes up a 2PC record recovery found unfinished: re-sends a logged COMMIT, or asks a last
  // resource that was committing.
  void Resume(const log::DecisionRecord& record, int64_t prepare_timeout_ms);

  // Deadlock detection (deadlock_detector.h): a two-phase transaction may be on a cycle while it
  // has no decision and a branch still runs statements or has not voted, and the call the edge
  // names (edge.waiter_call at edge.participant) is in flight; nullopt when edge.waiter is not
  // running here.
  std::optional<core::MemberStanding> DeadlockStanding(const core::WaitEdge& edge) const;
  // Aborts `txn_id` as a deadlock victim if it is still executing (checked under its lock, so
  // one that has a decision or is fully prepared is never aborted); false otherwise.
  bool AbortDeadlockVictim(const std::string& txn_id, const std::string& reason);

  // Requires ctx.mu held: numbers a call to `branch` and records it in flight.
  static uint64_t StartCall(TwoPhaseContext& ctx, uint32_t branch) {
    return ctx.calls.Start(branch);
  }
  // Takes ctx.mu: the call returned.
  static void EndCall(TwoPhaseContext& ctx, uint32_t branch, uint64_t call) {
    std::lock_guard<std::mutex> lock(ctx.mu);
    ctx.calls.End(branch, call);
  }

  // For ProtocolDriverBase's Find / Snapshot / Attach (the context held locked).
  static v1::Transaction ShownAs(const TwoPhaseContext& ctx);
  static std::optional<v1::Outcome> AnsweredWith(const TwoPhaseContext& ctx);
};

extern template class ProtocolDriverBase<TwoPhaseDriver, TwoPhaseContext>;

}  // namespace txn::driver
