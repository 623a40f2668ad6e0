// BranchRegistry: the participant side of the protocol, independent of gRPC and of the database.
// It keeps one entry per (txn id, branch) this agent has seen, makes every Participant call
// idempotent, and maps the calls onto a ResourceAdapter, following the branch state machine of
// branch_state.h (which decides, from a branch's state, what a call answers or which database
// step it needs).
//
// A three-phase-commit branch (Prepare with three_phase_members) also has a record in the agent's
// 3PC table (ThreePhaseRecords): written W after the database PREPARE and before the YES vote,
// C / A before COMMIT PREPARED / ROLLBACK. A branch a termination round aborted before it voted
// rolls its prepared transaction back and votes NO. That part is branch_three_phase.cc.
//
// Finished entries are kept as tombstones for `tombstone_ttl_ms`, so duplicates and reordered
// calls get the same answer. After an agent restart the registry is empty: the database is the
// memory then (IsPrepared, native ids), and the reconciler resolves what is left prepared.
//
// An `expect_rows_affected` mismatch is a NO vote: during Prepare/CommitOnePhase it rolls the
// branch back and answers NO / ABORTED with the reason; during Execute it answers ABORTED and the
// branch later votes NO.
//
// Thread-safe: calls on different branches run in parallel, calls on one branch in turn, except
// that a Rollback first interrupts a statement that a call on the same branch is running (see
// CallCancellation), so that it need not wait for that statement's lock wait to end.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "absl/base/thread_annotations.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "participant-agent/branch_state.h"
#include "participant-agent/call_cancellation.h"
#include "participant-agent/resource_adapter.h"
#include "participant-agent/session_budget.h"
#include "participant-agent/statement_allow_list.h"
#include "protocol/decision.h"
#include "txn/v1/participant.pb.h"

namespace txn::agent {

class ThreePhaseRecords;

struct BranchRegistryOptions {
  // An ACTIVE branch untouched this long is rolled back (its coordinator is gone).
  int64_t idle_timeout_ms = 60'000;
  // How long a finished branch is remembered for duplicate calls.
  int64_t tombstone_ttl_ms = 600'000;
  // An operation whose result has more rows, or more bytes, aborts its branch with
  // RESOURCE_EXHAUSTED naming the limit (--max-result-rows / --max-result-bytes).
  int64_t max_result_rows = 10'000;
  int64_t max_result_bytes = 1 << 20;
  // The node id of the coordinator this agent serves (--coordinator-node-id): a branch of any
  // other node's transaction is refused before it starts, since no coordinator would ever
  // resolve it (it would stay prepared, holding its locks). Empty: any node.
  std::string coordinator_node;
  // The agent's allow-list (--statements), or nullptr: operations go through ResolveOperation.
  const StatementAllowList* statements = nullptr;
  // Database sessions open branches may hold at once (--max-db-connections; SessionBudget),
  // 0 = no limit, and the longest a new branch waits for one.
  size_t max_sessions = 0;
  int64_t session_wait_ms = 10'000;
};

class BranchRegistry {
 public:
  BranchRegistry(ResourceAdapter* adapter, common::Clock* clock, BranchRegistryOptions options);
  ~BranchRegistry();

  [[nodiscard]] absl::Status Begin(const v1::BranchRef& ref);
  [[nodiscard]] absl::StatusOr<v1::ExecuteBranchResponse> Execute(
      const v1::ExecuteBranchRequest& req);
  [[nodiscard]] absl::StatusOr<v1::PrepareBranchResponse> Prepare(
      const v1::PrepareBranchRequest& req);
  // Three-phase commit (three_phase_members on Prepare, three_phase on Commit / Rollback) needs
  // the record keeper; without one such calls are FAILED_PRECONDITION. Set before serving.
  void set_three_phase(ThreePhaseRecords* records) { tpc_ = records; }
  [[nodiscard]] absl::StatusOr<v1::CommitBranchResponse> Commit(const v1::CommitBranchRequest& req);
  [[nodiscard]] absl::StatusOr<v1::RollbackBranchResponse> Rollback(
      const v1::RollbackBranchRequest& req);
  [[nodiscard]] absl::StatusOr<v1::CommitOnePhaseResponse> CommitOnePhase(
      const v1::CommitOnePhaseRequest& req);
  [[nodiscard]] absl::StatusOr<v1::ListInDoubtResponse> ListInDoubt();

  // Rolls back idle ACTIVE branches and forgets expired tombstones. Call periodically. Looks
  // only at entries that may have expired (ordered by when they may), so its cost does not grow
  // with the number of tombstones kept.
  void Sweep();

  // Number of entries (for tests and metrics).
  size_t size() const;

  // Every branch with an open database session now, with how long its current call has run:
  // what the lock-wait reporter (lock_wait_reporter.h) asks the database about.
  std::vector<LiveBranch> LiveBranches() const;
  // The connection budget of open branches (--max-db-connections), for metrics.
  const SessionBudget& sessions() const { return sessions_; }

 private:
  using State = BranchState;  // the rules: branch_state.h
  struct Entry {
    std::mutex mu;  // serializes calls on this branch
    std::string gid;
    bool initialized = false;
    State state = State::kActive;
    std::unique_ptr<BranchSession> session;  // set while ACTIVE
    bool holds_session_slot = false;         // session counts against sessions_
    std::string native_id;
    std::string reason;   // why it aborted, or why it will vote NO
    bool doomed = false;  // an expectation failed during Execute: Prepare votes NO
    // kAborted only as far as this agent knows: its one-phase COMMIT's answer was lost.
    bool one_phase_unknown = false;
    int64_t last_used_ms = 0;
    // The cancellation of the work call running on this branch now (Execute, Prepare,
    // CommitOnePhase), or empty. Guarded by BranchRegistry::mu_, not by `mu`: a Rollback
    // reads it while that call holds `mu`, to interrupt a statement waiting for a lock.
    std::weak_ptr<CallCancellation> running;
    // Guarded by BranchRegistry::mu_ as well: when the running call started (monotonic ms, 0
    // when none runs), and the database's id of the open session (0 when none).
    int64_t running_since_ms = 0;
    uint64_t running_call_number = 0;  // the coordinator's number of that call
    int64_t db_session = 0;
    // The last Execute call run on this branch (the coordinator's call_number; 0: none) and its
    // answer, for a duplicate of that call.
    uint64_t last_execute_call = 0;
    absl::StatusOr<v1::ExecuteBranchResponse> last_execute_answer;
  };

  // Requires e.mu held: what the branch state machine reads of `e`.
  static BranchFacts FactsOf(const Entry& e) {
    return BranchFacts{e.state, e.native_id, e.reason, e.doomed, e.one_phase_unknown};
  }

  // Requires e.mu held. Carries out what a rule decided without the database: its answer, its
  // refusal (FAILED_PRECONDITION), or rolling the open transaction back, then its answer.
  // nullopt: the call's database step comes next.
  template <typename Resp>
  std::optional<absl::StatusOr<Resp>> Settle(Next<Resp> next, Entry& e);

  // Marks `e` as served by the current thread's call (CallCancellation::Current()) until
  // destroyed. Requires e.mu held for its whole life.
  class RunningCall {
   public:
    RunningCall(BranchRegistry* registry, Entry* e, uint64_t call_number);
    ~RunningCall();
    RunningCall(const RunningCall&) = delete;
    RunningCall& operator=(const RunningCall&) = delete;

   private:
    BranchRegistry* const registry_;
    Entry* const entry_;
  };
  // Interrupts the work call running on `e`, if any (a Rollback arrived: the coordinator gave
  // up on the branch, so its statement need not finish first).
  void InterruptRunning(Entry& e);

  // Execute's work, once per call. Requires entry.mu held.
  absl::StatusOr<v1::ExecuteBranchResponse> ExecuteOnce(Entry& entry, const std::string& gid,
                                                        const v1::ExecuteBranchRequest& req);
  absl::StatusOr<v1::PrepareBranchResponse> PrepareLocal(const v1::PrepareBranchRequest& req,
                                                         const std::string& gid);
  // Whether the database holds `gid` prepared, asked by a Prepare of a branch this agent does
  // not know (an earlier Prepare may have prepared it before a restart). A first send
  // (req.first_send) cannot have been preceded by one, in this process or an earlier one: unless
  // the gid was among those prepared when this process first looked (prepared_when_started_),
  // the answer is no without a query. That list is the net under a duplicated message
  // crossing a restart, which gRPC never delivers (a call dies with its connection) but the
  // simulation's network can.
  absl::StatusOr<bool> PreparedEarlier(const v1::PrepareBranchRequest& req, const std::string& gid);
  // The three-phase participant (branch_three_phase.cc): FAILED_PRECONDITION when this agent
  // keeps no 3PC records.
  absl::Status CheckThreePhase() const;
  // A 3PC Prepare: PrepareLocal, with the YES recorded before it is sent (a termination round
  // that aborted the branch first turns it into NO).
  absl::StatusOr<v1::PrepareBranchResponse> PrepareThreePhase(const v1::PrepareBranchRequest& req,
                                                              const std::string& gid);
  // The answer to a Prepare of a branch the members' termination round already finished here,
  // or nullopt when it did not.
  absl::StatusOr<std::optional<v1::PrepareBranchResponse>> FinishedByARound(const std::string& gid);
  // Records a 3PC decision before it is carried out. For kCommit, returns whether the record
  // said COMMIT already (an earlier attempt or a termination round); false for kAbort.
  absl::StatusOr<bool> RecordThreePhaseDecision(const std::string& gid,
                                                protocol::Decision decision);
  std::shared_ptr<Entry> GetOrCreate(const std::string& gid);
  std::shared_ptr<Entry> Find(const std::string& gid);
  // Requires e.mu held. Closes e's session (if any) and forgets it in live_.
  void DropSession(Entry& e);
  // Requires e.mu held and e in ACTIVE. Rolls back and records `reason`.
  void AbortActive(Entry& e, const std::string& reason);
  // Requires e.mu held and e new: a call that should continue a branch found none. Makes it an
  // aborted tombstone.
  void MarkLost(Entry& e);
  // Requires e.mu held. Opens the session if e is new. Errors: the adapter's.
  absl::Status EnsureActive(Entry& e, const std::string& gid);
  // Why `r` is over the result limits, or "" (branch_operations.cc).
  std::string OverResultLimits(const v1::ExecuteResult& r) const;
  // Runs ops on an ACTIVE entry (branch_operations.cc). On an expectation mismatch or a database
  // error the branch is rolled back and `*failure` says why (the call still returns OK).
  // INVALID_ARGUMENT for a refused statement; RESOURCE_EXHAUSTED for a result over the limits
  // (the branch rolled back too).
  absl::Status RunOperations(Entry& e, const google::protobuf::RepeatedPtrField<v1::Operation>& ops,
                             v1::ExecuteBranchResponse* results, std::string* failure);

  // Records a call on `e` (its last use) and when Sweep should look at it.
  void Touch(const std::string& gid, Entry& e);

  struct SweepItem {
    std::string gid;
    int64_t touched_ms = 0;  // e.last_used_ms when queued; stale once the entry is touched again
  };

  // What each step of a branch costs in the database (txagent_branch_step_seconds{step}): the
  // split behind a transaction's latency, to see where an optimisation would pay.
  struct StepTimes {
    common::Histogram* begin;            // connection checkout + BEGIN / XA START
    common::Histogram* statement;        // one client statement
    common::Histogram* prepare;          // xid read + PREPARE TRANSACTION / marker + XA PREPARE
    common::Histogram* commit_prepared;  // COMMIT PREPARED / XA COMMIT
    common::Histogram* rollback_prepared;
    common::Histogram* commit_one_phase;  // marker + COMMIT
  };
  static StepTimes MakeStepTimes();

  ResourceAdapter* const adapter_;
  const StepTimes steps_ = MakeStepTimes();
  ThreePhaseRecords* tpc_ = nullptr;
  common::Clock* const clock_;
  const BranchRegistryOptions options_;
  SessionBudget sessions_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<Entry>> entries_ ABSL_GUARDED_BY(mu_);
  // The entries that have an open session (a subset of entries_).
  std::unordered_map<Entry*, std::shared_ptr<Entry>> live_ ABSL_GUARDED_BY(mu_);
  // When each touched entry may next be idle or expired (monotonic ms).
  std::multimap<int64_t, SweepItem> sweep_due_ ABSL_GUARDED_BY(mu_);
  // The gids the database held prepared at this process's first first-send Prepare (read once;
  // nullopt until a read succeeded). Stale only towards asking the database again.
  std::mutex prepared_when_started_mu_;
  std::optional<std::unordered_set<std::string>> prepared_when_started_
      ABSL_GUARDED_BY(prepared_when_started_mu_);
};

// The gid of a branch (txc_<txn id>_<branch>); INVALID_ARGUMENT naming a malformed ref.
absl::StatusOr<std::string> GidOf(const v1::BranchRef& ref);

// The reason an operation's result breaks its expect_* field, or "" when it does not.
std::string ExpectationFailure(const v1::Operation& op, const v1::ExecuteResult& result);

}  // namespace txn::agent
