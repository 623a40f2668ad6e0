// TransactionDriver: the coordinator's transactions, whatever their protocol. It owns one driver
// per protocol, which runs that protocol's pure core against the real world on the shared
// skeleton (driver_skeleton.h): TwoPhaseDriver (2PC, Run and interactive), ThreePhaseDriver
// (PROTOCOL_THREE_PHASE, Run only) and SagaDriver (PROTOCOL_SAGA, Run only). Around them it is
//   the front end (transaction_front_end.cc): routing by protocol, admission (fail closed,
//     in-flight limits, participants), idempotency keys, ids, interactive sessions;
//   the catalog (transaction_catalog.cc): GetTransaction, GetDecision (also for ids of other
//     incarnations), the admin list / resolve / stats / GC, metrics;
//   recovery (transaction_driver.cc): Recover() must run once before serving: it takes a new
//     epoch for transaction ids, restores idempotency keys, and hands every unfinished record of
//     the log to its protocol's driver (a logged COMMIT is re-sent and a committing last
//     resource asked; a saga goes on forward or compensating; a 3PC record is re-driven: START
//     only, a termination round; a decision, re-sent).
//
// Thread-safe.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "common/backoff.h"
#include "common/clock.h"
#include "common/ids.h"
#include "common/lifetime_guard.h"
#include "common/metrics.h"
#include "common/random.h"
#include "common/timers.h"
#include "coordinator/core/two_phase.h"
#include "coordinator/core/wait_for_graph.h"
#include "coordinator/driver/deadlock_detector.h"
#include "coordinator/driver/driver_skeleton.h"
#include "coordinator/driver/finished_transactions.h"
#include "coordinator/driver/idempotency_table.h"
#include "coordinator/driver/other_incarnations.h"
#include "coordinator/driver/principal_in_flight.h"
#include "coordinator/driver/saga_driver.h"
#include "coordinator/driver/three_phase_driver.h"
#include "coordinator/driver/two_phase_driver.h"
#include "coordinator/log/decision_log.h"
#include "coordinator/log/decision_writer.h"
#include "coordinator/transport/participant_channel.h"
#include "txn/v1/coordinator.pb.h"

namespace txn::driver {

struct DriverOptions {
  std::string node_id = "n1";
  int64_t prepare_timeout_ms = 10'000;
  int64_t rpc_timeout_ms = 5'000;
  // 3PC: how long pre-commit ACKs may take before the coordinator runs a termination round.
  int64_t termination_timeout_ms = 2'000;
  // Deadline of an interactive transaction when Begin gives no timeout_ms.
  int64_t default_txn_timeout_ms = 60'000;
  common::BackoffPolicy retry_backoff;
  // How long a finished COMMIT record stays queryable before it is deleted.
  int64_t retention_ms = 24 * 3600 * 1000;
  // Finished transactions (also aborted ones, which are never logged)
  // remembered in memory.
  size_t finished_cache_size = 100'000;
  // Transactions in flight at once; beyond it new ones get RESOURCE_EXHAUSTED.
  size_t max_active = 10'000;
  // Of those, at most this many per named principal (PrincipalInFlight); 0: no such limit.
  size_t max_active_per_principal = 5'000;
  // Single-branch transactions without an idempotency key commit in one phase; false only to
  // measure what that saves.
  bool one_phase = true;
  // Idempotency keys remembered at most, and how long each is kept after its transaction
  // finished (IdempotencyTable).
  IdempotencyOptions idempotency;
};

struct DriverDeps {
  log::DecisionLog* log = nullptr;
  log::DecisionWriter* group_log = nullptr;
  transport::ParticipantDirectory* participants = nullptr;
  common::Clock* clock = nullptr;
  common::Timers* timers = nullptr;
  // Retry jitter; nullptr: the driver draws from its own std::random_device-seeded source.
  common::RandomSource* random = nullptr;
};

class TransactionDriver final : public DeadlockTarget {
 public:
  using OutcomeReply = std::function<void(absl::StatusOr<v1::Outcome>)>;

  TransactionDriver(DriverDeps deps, DriverOptions options);
  ~TransactionDriver() override;

  // See above. Returns the log's error.
  [[nodiscard]] absl::Status Recover();

  // Client API. Each reply runs exactly once, possibly on another thread. `principal` is the
  // caller (auth/call_authorizer.h; "" without tokens): a transaction belongs to the principal
  // that started it, its idempotency key is scoped by it, and for another principal it does not
  // exist (NOT_FOUND). The principal "" may see every transaction (no tokens configured).
  void Run(const v1::RunRequest& req, OutcomeReply reply, const std::string& principal = "");
  [[nodiscard]] absl::StatusOr<v1::BeginResponse> Begin(const v1::BeginRequest& req,
                                                        const std::string& principal = "");
  void Execute(const v1::ExecuteRequest& req,
               std::function<void(absl::StatusOr<v1::ExecuteResult>)> reply,
               const std::string& principal = "");
  void Commit(const v1::CommitRequest& req, OutcomeReply reply, const std::string& principal = "");
  void Rollback(const v1::RollbackRequest& req, OutcomeReply reply,
                const std::string& principal = "");
  [[nodiscard]] absl::StatusOr<v1::Transaction> GetTransaction(const std::string& txn_id,
                                                               const std::string& principal = "");
  // COMMIT / ABORT / UNKNOWN (still deciding). Presumed abort: no record, not
  // in flight = ABORT.
  [[nodiscard]] absl::StatusOr<v1::Decision> GetDecision(const std::string& txn_id);
  // 3PC: a decision agents reached by themselves. NOT_FOUND for a transaction that is not a
  // running three-phase commit here; FAILED_PRECONDITION for a decision other than COMMIT/ABORT.
  [[nodiscard]] absl::Status ReportDecision(const v1::ReportDecisionRequest& req);

  // Deadlock detection (deadlock_detector.h). What edge.waiter is doing now: executing means
  // undecided, with a branch that still runs statements or has not voted, and the call that
  // waits (edge.waiter_call at edge.participant) still in flight; nullopt when it is not a
  // two-phase or three-phase transaction in flight here (ThreePhaseDriver answers for 3PC: its
  // vote phase only).
  [[nodiscard]] std::optional<core::MemberStanding> DeadlockStanding(
      const core::WaitEdge& edge) override;
  // Aborts `txn_id` as a deadlock victim, with `reason` as its outcome's reason, if it is
  // still executing: checked under its lock, so one that has a decision (or is fully prepared)
  // is never aborted. Returns whether it was.
  bool AbortDeadlockVictim(const std::string& txn_id, const std::string& reason) override;

  // Admin API.
  // Transactions in memory and in the log, filtered by state, in id order (oldest first), paged.
  [[nodiscard]] absl::StatusOr<v1::ListTransactionsResponse> ListTransactions(
      const v1::ListTransactionsRequest& req);
  // An operator's decision (see core::CheckResolve for what is allowed). Answers with the
  // transaction's outcome as it stands once the resolution has started.
  void ResolveTransaction(const v1::ResolveTransactionRequest& req, OutcomeReply reply);
  [[nodiscard]] absl::StatusOr<v1::Stats> GetStats();
  // Transactions in memory now, by the state GetTransaction shows.
  std::map<v1::TxnState, uint64_t> ActiveByState() const;
  // Gauges refreshed at each scrape: transactions by state, in doubt, accepting.
  void RegisterMetrics(common::MetricsRegistry* registry);

  // Deletes finished records older than the retention window (never HEURISTIC_MIXED ones: an
  // operator must see those). Returns how many.
  [[nodiscard]] absl::StatusOr<int> CollectGarbage();

  // False after a decision write failed: the coordinator then fails closed (Run and Begin answer
  // UNAVAILABLE) until ProbeLog succeeds.
  bool accepting() const { return !log_failing_.load(); }
  // When not accepting: tries a synced write (it bumps the start counter, the one key the log owns
  // besides decisions) and accepts again if it succeeds. Returns the write's status.
  absl::Status ProbeLog();

  size_t active_count() const;
  // Whether `name` is one of the configured participants.
  bool IsParticipant(const std::string& name) const {
    return deps_.participants->Find(name) != nullptr;
  }

 private:
  using TxnContext = TwoPhaseContext;

  std::shared_ptr<TxnContext> NewContext(v1::Protocol protocol, bool interactive,
                                         RequestIdentity identity);
  std::shared_ptr<TxnContext> FindActive(const std::string& txn_id) const {
    return two_phase_->FindContext(txn_id);
  }
  // FindActive, or nullptr when `principal` may not see it (it then does not exist for them).
  std::shared_ptr<TxnContext> FindActiveFor(const std::string& txn_id,
                                            const std::string& principal) const;
  // LookupFinished, NOT_FOUND when `principal` may not see it.
  absl::StatusOr<v1::Transaction> LookupFinishedFor(const std::string& txn_id,
                                                    const std::string& principal);
  // Requires ctx->mu held. Answers now if the client was already answered, else
  // queues `reply`.
  void AttachOrReply(TxnContext& ctx, OutcomeReply reply, std::vector<Action>* actions);

  struct LastResourcePlan {
    std::optional<uint32_t> last_resource;
    std::vector<uint32_t> heuristic_resources;  // allow_heuristic: further non-preparable ones
    int64_t max_lifetime_ms = 0;
  };
  // Which branches of a Run cannot prepare, from the agents' descriptions: the first is the last
  // resource, any others need allow_heuristic. FAILED_PRECONDITION for two or more without
  // allow_heuristic, or a timeout longer than the last resource's
  // transaction lifetime. An agent not described yet counts as able to prepare.
  absl::StatusOr<LastResourcePlan> PlanLastResource(const v1::RunRequest& req) const;
  static absl::Status MultipleLastResources();
  // Requires ctx.mu held. Checks a participant an interactive transaction is about to touch, and
  // marks it the last resource if it cannot prepare.
  absl::Status AdmitInteractiveBranch(TxnContext& ctx, const std::string& participant);
  // `fn` wrapped so that it does nothing once this driver is destroyed.
  Action Guard(Action fn) const { return lifetime_.Wrap(std::move(fn)); }
  template <typename Arg>
  std::function<void(Arg)> GuardReply(std::type_identity_t<std::function<void(Arg)>> fn) const {
    return lifetime_.Wrap(std::move(fn));
  }
  void Remember(const v1::Transaction& finished);
  absl::StatusOr<v1::Transaction> LookupFinished(const std::string& txn_id);
  // Reserves a Run's idempotency key for `txn_id`. False when the Run must not start: `reply` has
  // then been answered (a refusal, or the outcome of the transaction the key started before).
  bool ReserveForRun(const RequestIdentity& identity, const std::string& txn_id,
                     OutcomeReply& reply);
  void ReplyExisting(const std::string& txn_id, OutcomeReply reply);

  // PROTOCOL_SAGA: Run with a saga protocol goes to the saga driver.
  void RunSaga(const v1::RunRequest& req, RequestIdentity identity, OutcomeReply reply);
  void RunThreePhase(const v1::RunRequest& req, RequestIdentity identity, OutcomeReply reply);
  // FAILED_PRECONDITION naming the participant that cannot hold a prepared transaction.
  absl::Status CheckThreePhaseParticipants(const v1::RunRequest& req) const;
  // FAILED_PRECONDITION when `txn_id` is a running saga or 3PC of `principal`'s (only Run and
  // GetTransaction apply).
  absl::Status RefuseSaga(const std::string& txn_id, const char* what,
                          const std::string& principal) const;
  void NoteLogFailure(const absl::Status& s);
  // True for ids this driver's log made: its incarnation, or none if the log predates them.
  bool MadeByThisLog(const common::TxnIdParts& id) const;
  // GetDecision for an id of this node that is not in this log and carries another incarnation.
  v1::Decision UnknownIncarnation(const std::string& txn_id, const std::string& its_incarnation);
  // ResolveTransaction for such an id: logs the operator's decision so agents learn it.
  void ResolveOtherIncarnation(const std::string& txn_id, v1::Decision decision,
                               OutcomeReply reply);

  const DriverDeps deps_;
  const DriverOptions options_;
  std::unique_ptr<TwoPhaseDriver> two_phase_;
  std::unique_ptr<SagaDriver> sagas_;
  std::unique_ptr<ThreePhaseDriver> three_phase_;
  // The decision log's: part of every id this driver makes.
  const std::string incarnation_;
  uint64_t epoch_ = 0;
  std::atomic<uint64_t> next_seq_{1};
  OtherIncarnations other_incarnations_;
  std::mutex resolve_other_mu_;  // serializes ResolveOtherIncarnation's check and write

  // Every protocol's finished transactions. A finishing transaction is added here before it
  // leaves its driver's running table, so that GetDecision, which reads the running tables
  // first, never finds it in neither.
  FinishedTransactions finished_;
  IdempotencyTable idempotency_;
  PrincipalInFlight in_flight_;

  std::atomic<bool> log_failing_{false};
  int64_t started_unix_ms_ = 0;

  common::SeededRandom own_random_;
  common::RandomSource* const random_;  // deps_.random or &own_random_

  // Guards the front end's own callbacks (interactive deadlines, the metrics refresher); each
  // protocol driver guards its own. Declared last so it is destroyed (closed) first.
  common::LifetimeGuard lifetime_;
};

}  // namespace txn::driver
