#include "participant-agent/branch_registry.h"

#include <algorithm>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/failpoint.h"
#include "common/ids.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "participant-agent/three_phase_records.h"

namespace txn::agent {

absl::StatusOr<std::string> GidOf(const v1::BranchRef& ref) {
  if (!common::IsValidTxnId(ref.txn_id())) {
    return absl::InvalidArgumentError(
        absl::StrCat("ref.txn_id '", ref.txn_id().substr(0, 80), "' is not a transaction id"));
  }
  if (ref.branch() >= common::kMaxBranches) {
    return absl::InvalidArgumentError(
        absl::StrCat("ref.branch ", ref.branch(), " is out of range"));
  }
  return common::BranchGid(ref.txn_id(), ref.branch());
}

BranchRegistry::StepTimes BranchRegistry::MakeStepTimes() {
  auto step = [](const char* name) {
    return common::DefaultMetrics().GetHistogram(
        "txagent_branch_step_seconds",
        "Database time of each step of a branch (begin includes the connection checkout).",
        {{"step", name}},
        {0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 1, 10});
  };
  return StepTimes{step("begin"),           step("statement"),         step("prepare"),
                   step("commit_prepared"), step("rollback_prepared"), step("commit_one_phase")};
}

BranchRegistry::BranchRegistry(ResourceAdapter* adapter, common::Clock* clock,
                               BranchRegistryOptions options)
    : adapter_(adapter),
      clock_(clock),
      options_(options),
      sessions_(options_.max_sessions, options_.session_wait_ms) {}

BranchRegistry::~BranchRegistry() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [gid, e] : entries_) {
    std::lock_guard<std::mutex> el(e->mu);
    if (e->initialized && e->state == State::kActive && e->session) {
      (void)e->session->RollbackLocal();  // best effort at shutdown; the DB rolls back anyway
    }
  }
}

std::vector<LiveBranch> BranchRegistry::LiveBranches() const {
  const int64_t now = clock_->NowMonotonicMs();
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<LiveBranch> out;
  out.reserve(live_.size());
  for (const auto& [ptr, e] : live_) {
    out.push_back(LiveBranch{e->gid, e->db_session,
                             e->running_since_ms == 0 ? -1 : now - e->running_since_ms,
                             e->running_since_ms == 0 ? 0 : e->running_call_number});
  }
  return out;
}

void BranchRegistry::DropSession(Entry& e) {
  {
    // Forgotten first: once the session is closed its connection may serve another branch.
    std::lock_guard<std::mutex> lock(mu_);
    e.db_session = 0;
    live_.erase(&e);
  }
  e.session.reset();
  // The branch left ACTIVE: a duplicate Execute is refused as too late, so its rows need not stay.
  e.last_execute_answer = absl::StatusOr<v1::ExecuteBranchResponse>();
  if (e.holds_session_slot) {
    e.holds_session_slot = false;
    sessions_.Release();
  }
}

void BranchRegistry::InterruptRunning(Entry& e) {
  std::shared_ptr<CallCancellation> running;
  {
    std::lock_guard<std::mutex> lock(mu_);
    running = e.running.lock();
  }
  // Outside mu_: the interrupt (PQcancel) opens a connection to the database, and no other
  // branch should wait for that.
  if (running) running->Cancel();
}

void BranchRegistry::AbortActive(Entry& e, const std::string& reason) {
  if (e.session) {
    absl::Status s = e.session->RollbackLocal();
    if (!s.ok()) common::LogWarning(absl::StrCat("local rollback failed: ", s.message()));
    DropSession(e);
  }
  e.state = State::kAborted;
  e.reason = reason;
}

void BranchRegistry::MarkLost(Entry& e) {
  e.initialized = true;
  e.state = State::kAborted;
  e.reason = "its work was lost (agent restarted or the branch was rolled back)";
}

template <typename Resp>
std::optional<absl::StatusOr<Resp>> BranchRegistry::Settle(Next<Resp> next, Entry& e) {
  switch (next.move) {
    case Move::kAnswer:
      return absl::StatusOr<Resp>(std::move(next.answer));
    case Move::kRefuse:
      return absl::StatusOr<Resp>(absl::FailedPreconditionError(next.refusal));
    case Move::kAbortActive:
      AbortActive(e, e.reason);
      return absl::StatusOr<Resp>(std::move(next.answer));
    case Move::kProve:
    case Move::kProceed:
      break;
  }
  return std::nullopt;
}

absl::Status BranchRegistry::EnsureActive(Entry& e, const std::string& gid) {
  if (e.initialized) return absl::OkStatus();
  if (const std::string node = common::NodeOfGid(gid);
      !options_.coordinator_node.empty() && node != options_.coordinator_node) {
    return absl::FailedPreconditionError(absl::StrCat(
        "branch ", gid, " belongs to coordinator node '", node.substr(0, 20),
        "'; this agent serves node '", options_.coordinator_node,
        "' (--coordinator-node-id), and no other coordinator would ever resolve it"));
  }
  common::Stopwatch watch;
  TXN_RETURN_IF_ERROR(sessions_.Acquire());
  absl::StatusOr<std::unique_ptr<BranchSession>> session = adapter_->Begin(gid);
  steps_.begin->Observe(watch.Seconds());
  if (!session.ok()) {
    sessions_.Release();
    return session.status();
  }
  e.session = std::move(*session);
  e.holds_session_slot = true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    e.db_session = e.session->database_session_id();
    auto it = entries_.find(gid);
    if (it != entries_.end() && it->second.get() == &e) live_[&e] = it->second;
  }
  e.initialized = true;
  e.state = State::kActive;
  return absl::OkStatus();
}

absl::Status BranchRegistry::Begin(const v1::BranchRef& ref) {
  TXN_ASSIGN_OR_RETURN(std::string gid, GidOf(ref));
  auto e = GetOrCreate(gid);
  std::lock_guard<std::mutex> lock(e->mu);
  // A Begin may wait for a database connection (SessionBudget): a Rollback interrupts it.
  RunningCall running(this, e.get(), /*call_number=*/0);
  Touch(gid, *e);
  if (e->initialized && e->state != State::kActive) {
    return absl::FailedPreconditionError(absl::StrCat("branch ", gid, " is already finished"));
  }
  return EnsureActive(*e, gid);
}

absl::StatusOr<v1::ExecuteBranchResponse> BranchRegistry::Execute(
    const v1::ExecuteBranchRequest& req) {
  TXN_ASSIGN_OR_RETURN(std::string gid, GidOf(req.ref()));
  auto e = GetOrCreate(gid);
  std::lock_guard<std::mutex> lock(e->mu);
  // The same call again (a duplicated or re-sent message): its statements ran once, and this
  // gets the answer they gave. An older call than the last one run is refused: running it now
  // would apply its statements after later ones.
  if (req.call_number() != 0 && req.call_number() <= e->last_execute_call) {
    if (req.call_number() == e->last_execute_call) {
      if (e->initialized && e->state != State::kActive) {
        return absl::FailedPreconditionError(absl::StrCat("branch ", gid, " is no longer active"));
      }
      return e->last_execute_answer;
    }
    return absl::FailedPreconditionError(
        absl::StrCat("branch ", gid, ": Execute call ", req.call_number(),
                     " arrived after call ", e->last_execute_call, " ran"));
  }
  RunningCall running(this, e.get(), req.call_number());
  absl::StatusOr<v1::ExecuteBranchResponse> answer = ExecuteOnce(*e, gid, req);
  if (req.call_number() != 0) {
    e->last_execute_call = req.call_number();
    e->last_execute_answer = answer;
  }
  return answer;
}

absl::StatusOr<v1::ExecuteBranchResponse> BranchRegistry::ExecuteOnce(
    Entry& entry, const std::string& gid, const v1::ExecuteBranchRequest& req) {
  Entry* e = &entry;
  Touch(gid, *e);
  if (e->initialized && e->state != State::kActive) {
    return absl::FailedPreconditionError(absl::StrCat("branch ", gid, " is no longer active",
                                                      e->reason.empty() ? "" : ": ", e->reason));
  }
  if (e->doomed) {
    return absl::AbortedError(absl::StrCat("branch ", gid, " will vote NO: ", e->reason));
  }
  if (!e->initialized && !req.begin()) {
    MarkLost(*e);
    return absl::AbortedError(
        absl::StrCat("branch ", gid, " is unknown to this agent: ", e->reason));
  }
  TXN_RETURN_IF_ERROR(EnsureActive(*e, gid));
  v1::ExecuteBranchResponse resp;
  std::string failure;
  TXN_RETURN_IF_ERROR(RunOperations(*e, req.operations(), &resp, &failure));
  if (!failure.empty()) {
    // Keep the entry ACTIVE-looking for the coordinator's Prepare, which will vote NO.
    e->doomed = true;
    return absl::AbortedError(absl::StrCat(failure, "; the transaction will abort"));
  }
  return resp;
}

absl::StatusOr<v1::PrepareBranchResponse> BranchRegistry::Prepare(
    const v1::PrepareBranchRequest& req) {
  TXN_ASSIGN_OR_RETURN(std::string gid, GidOf(req.ref()));
  if (req.three_phase_members_size() > 0) return PrepareThreePhase(req, gid);
  return PrepareLocal(req, gid);
}

absl::StatusOr<bool> BranchRegistry::PreparedEarlier(const v1::PrepareBranchRequest& req,
                                                     const std::string& gid) {
  if (req.first_send()) {
    std::lock_guard<std::mutex> lock(prepared_when_started_mu_);
    if (!prepared_when_started_) {
      absl::StatusOr<std::vector<std::string>> listed = adapter_->ListPrepared();
      if (listed.ok()) prepared_when_started_.emplace(listed->begin(), listed->end());
    }
    if (prepared_when_started_ && prepared_when_started_->count(gid) == 0) return false;
  }
  return adapter_->IsPrepared(gid);
}

absl::StatusOr<v1::PrepareBranchResponse> BranchRegistry::PrepareLocal(
    const v1::PrepareBranchRequest& req, const std::string& gid) {
  if (!adapter_->supports_prepare()) {
    return absl::FailedPreconditionError(
        "this participant cannot prepare; it can only be committed last, in one phase");
  }
  auto e = GetOrCreate(gid);
  std::lock_guard<std::mutex> lock(e->mu);
  RunningCall running(this, e.get(), req.call_number());
  Touch(gid, *e);
  v1::PrepareBranchResponse resp;
  if (!e->initialized) {
    // A Prepare sent again after this agent restarted: the database remembers what it prepared.
    TXN_ASSIGN_OR_RETURN(bool prepared, PreparedEarlier(req, gid));
    if (prepared) {
      e->initialized = true;
      e->state = State::kPrepared;
      resp.set_vote(v1::VOTE_YES);
      return resp;
    }
    if (!req.begin()) {
      MarkLost(*e);
      resp.set_vote(v1::VOTE_NO);
      resp.set_reason(e->reason);
      return resp;
    }
    TXN_RETURN_IF_ERROR(EnsureActive(*e, gid));
  }
  if (auto settled = Settle(OnPrepare(FactsOf(*e), gid), *e)) return *std::move(settled);
  std::string failure;
  absl::Status ran = RunOperations(*e, req.operations(), nullptr, &failure);
  if (!ran.ok()) {
    AbortActive(*e, std::string(ran.message()));
    resp.set_vote(v1::VOTE_NO);
    resp.set_reason(e->reason);
    return resp;
  }
  if (!failure.empty()) {
    resp.set_vote(v1::VOTE_NO);
    resp.set_reason(failure);
    return resp;
  }
  TXN_RETURN_IF_ERROR(common::Failpoint("agent.before_prepare"));
  common::Stopwatch watch;
  absl::StatusOr<PrepareResult> prepared = e->session->Prepare(gid);
  steps_.prepare->Observe(watch.Seconds());
  if (!prepared.ok()) {
    // The connection failed mid-prepare: the database rolled the transaction back unless the
    // PREPARE landed, which IsPrepared can tell.
    DropSession(*e);
    absl::StatusOr<bool> landed = adapter_->IsPrepared(gid);
    Voted voted =
        AfterPrepareFailed(landed.ok() && *landed, std::string(prepared.status().message()));
    e->state = voted.state;
    if (voted.state == State::kAborted) e->reason = voted.answer.reason();
    return voted.answer;
  }
  DropSession(*e);
  Voted voted = AfterPrepare(*prepared);
  e->state = voted.state;
  if (voted.state == State::kPrepared) e->native_id = prepared->native_id;
  if (voted.state == State::kAborted) e->reason = prepared->reason;
  resp = std::move(voted.answer);
  // A crash here leaves the branch prepared with no vote delivered: the coordinator times out and
  // aborts, and the reconciler rolls the branch back.
  TXN_RETURN_IF_ERROR(common::Failpoint("agent.after_prepare"));
  return resp;
}

absl::StatusOr<v1::CommitBranchResponse> BranchRegistry::Commit(
    const v1::CommitBranchRequest& req) {
  TXN_ASSIGN_OR_RETURN(std::string gid, GidOf(req.ref()));
  // 3PC: whether this agent's record said COMMIT before this call (a termination round, or an
  // earlier attempt of this Commit). A C record is written before the database commit, and no
  // code of ours ends the prepared transaction otherwise: so when the database no longer holds
  // it and, without a native id, cannot say more, it committed. (An operator's manual ROLLBACK
  // PREPARED against a C record would be reported COMMITTED then; with a native id the database
  // proves the outcome instead.)
  bool recorded_commit = false;
  if (req.three_phase()) {
    TXN_ASSIGN_OR_RETURN(recorded_commit,
                         RecordThreePhaseDecision(gid, protocol::Decision::kCommit));
  }
  auto e = GetOrCreate(gid);
  std::lock_guard<std::mutex> lock(e->mu);
  Touch(gid, *e);
  v1::CommitBranchResponse resp;
  if (e->initialized) {
    if (auto settled = Settle(OnCommit(FactsOf(*e), gid), *e)) return *std::move(settled);
  }
  std::string native_id = req.native_id().empty() ? e->native_id : req.native_id();
  common::Stopwatch watch;
  absl::StatusOr<FinishResult> finished = adapter_->CommitPrepared(gid, native_id);
  steps_.commit_prepared->Observe(watch.Seconds());
  TXN_ASSIGN_OR_RETURN(FinishResult r, std::move(finished));
  if (r.as == FinishedAs::kUnknown && recorded_commit && native_id.empty()) {
    // Found by the simulation: a round of the members committed the branch, this agent
    // restarted (forgetting it), and the coordinator's own round sent Commit without the native
    // id: the database could not tell, and the coordinator took it for a mixed outcome.
    r = FinishResult{FinishedAs::kCommitted, ""};
  }
  if (r.as == FinishedAs::kUnknown && !e->initialized) {
    // Nothing is known of a branch this agent did not know either: it stays unknown, so that a
    // retry asks the database again (an entry marked known would be ACTIVE without a session).
    resp.set_result(ToProto(r.as));
    resp.set_reason(r.reason);
    return resp;
  }
  e->initialized = true;
  Finished after = AfterCommitPrepared(r, e->state);
  e->state = after.state;
  if (r.as == FinishedAs::kAborted) e->reason = after.reason;
  // A crash here: committed in the database, ack not sent; the coordinator retries and the
  // native id proves the commit.
  TXN_RETURN_IF_ERROR(common::Failpoint("agent.after_commit"));
  resp.set_result(ToProto(r.as));
  resp.set_reason(r.reason);
  return resp;
}

absl::StatusOr<v1::RollbackBranchResponse> BranchRegistry::Rollback(
    const v1::RollbackBranchRequest& req) {
  TXN_ASSIGN_OR_RETURN(std::string gid, GidOf(req.ref()));
  if (req.three_phase()) {
    TXN_RETURN_IF_ERROR(RecordThreePhaseDecision(gid, protocol::Decision::kAbort).status());
  }
  auto e = GetOrCreate(gid);
  InterruptRunning(*e);
  std::lock_guard<std::mutex> lock(e->mu);
  Touch(gid, *e);
  v1::RollbackBranchResponse resp;
  if (e->initialized) {
    Next<v1::RollbackBranchResponse> next = OnRollback(FactsOf(*e));
    if (next.move == Move::kAbortActive) AbortActive(*e, "rolled back by the coordinator");
    if (next.move == Move::kAbortActive || next.move == Move::kAnswer) return next.answer;
  }
  // Prepared, or unknown to this agent (rollback before prepare, or after a restart).
  common::Stopwatch watch;
  absl::StatusOr<FinishResult> finished = adapter_->RollbackPrepared(gid, e->native_id);
  steps_.rollback_prepared->Observe(watch.Seconds());
  TXN_ASSIGN_OR_RETURN(FinishResult r, std::move(finished));
  e->initialized = true;
  Finished after = AfterRollbackPrepared(r);
  e->state = after.state;
  if (after.state == State::kAborted) e->reason = after.reason;
  resp.set_result(ToProto(r.as));
  resp.set_reason(r.reason);
  return resp;
}

absl::StatusOr<v1::CommitOnePhaseResponse> BranchRegistry::CommitOnePhase(
    const v1::CommitOnePhaseRequest& req) {
  TXN_ASSIGN_OR_RETURN(std::string gid, GidOf(req.ref()));
  auto e = GetOrCreate(gid);
  std::lock_guard<std::mutex> lock(e->mu);
  RunningCall running(this, e.get(), req.call_number());
  Touch(gid, *e);
  v1::CommitOnePhaseResponse resp;
  if (!e->initialized && req.retry()) {
    // The first attempt's answer was lost and this agent has no entry: either the first attempt
    // never got here (it is refused from now on: the entry becomes a tombstone) or it ran before
    // a restart. The commit marker tells which.
    TXN_ASSIGN_OR_RETURN(FinishedAs proven, adapter_->ProveOnePhase(gid));
    MarkLost(*e);
    if (proven == FinishedAs::kCommitted) e->state = State::kCommitted;
    resp.set_result(ToProto(proven));
    if (proven != FinishedAs::kCommitted) {
      resp.set_reason(proven == FinishedAs::kAborted
                          ? "the branch never committed here (no commit marker)"
                          : "branch unknown to this agent and its outcome cannot be proven");
    }
    return resp;
  }
  if (!e->initialized && !req.begin()) {
    MarkLost(*e);
    resp.set_result(v1::BRANCH_RESULT_ABORTED);
    resp.set_reason(e->reason);
    return resp;
  }
  TXN_RETURN_IF_ERROR(EnsureActive(*e, gid));
  Next<v1::CommitOnePhaseResponse> next = OnCommitOnePhase(FactsOf(*e), gid);
  if (next.move == Move::kProve) {
    absl::StatusOr<FinishedAs> proven = adapter_->ProveOnePhase(gid);
    if (!proven.ok() || *proven == FinishedAs::kUnknown) {
      resp.set_result(v1::BRANCH_RESULT_UNKNOWN);
      resp.set_reason(proven.ok() ? e->reason : std::string(proven.status().message()));
      return resp;
    }
    e->one_phase_unknown = false;
    if (*proven == FinishedAs::kCommitted) {
      e->state = State::kCommitted;
      resp.set_result(v1::BRANCH_RESULT_COMMITTED);
      return resp;
    }
    return next.answer;  // ABORTED, with the reason the entry kept
  }
  if (auto settled = Settle(std::move(next), *e)) return *std::move(settled);
  std::string failure;
  absl::Status ran = RunOperations(*e, req.operations(), nullptr, &failure);
  if (!ran.ok()) AbortActive(*e, std::string(ran.message()));
  if (!ran.ok() || !failure.empty()) {
    resp.set_result(v1::BRANCH_RESULT_ABORTED);
    resp.set_reason(e->reason);
    return resp;
  }
  common::Stopwatch watch;
  absl::Status committed = e->session->CommitLocal(gid);
  steps_.commit_one_phase->Observe(watch.Seconds());
  DropSession(*e);
  OnePhaseDone done = AfterCommitLocal(committed);
  e->state = done.state;
  e->one_phase_unknown = done.unknown;
  if (done.state == State::kAborted) e->reason = done.reason;
  return done.answer;
}

absl::StatusOr<v1::ListInDoubtResponse> BranchRegistry::ListInDoubt() {
  TXN_ASSIGN_OR_RETURN(std::vector<std::string> gids, adapter_->ListPrepared());
  v1::ListInDoubtResponse resp;
  for (const auto& gid : gids) {
    auto name = common::ParseBranchGid(gid);
    if (!name) continue;
    auto* b = resp.add_branches();
    b->mutable_ref()->set_txn_id(name->txn_id);
    b->mutable_ref()->set_branch(name->branch);
    b->set_native_name(gid);
  }
  return resp;
}

}  // namespace txn::agent
