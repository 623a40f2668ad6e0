#include "coordinator/driver/transaction_driver.h"

#include <algorithm>
#include <set>
#include <tuple>
#include <type_traits>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/failpoint.h"
#include "common/ids.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/status_macros.h"
#include "coordinator/driver/proto_mapping.h"
#include "coordinator/driver/request_validation.h"

namespace txn::driver {

struct TransactionDriver::TxnContext {
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
  // Execute / Prepare / CommitOnePhase calls in flight, by branch: the call_number sent (unique
  // in the transaction). The deadlock detector takes a reported wait only while its call is here.
  std::unordered_map<uint32_t, uint64_t> call_in_flight ABSL_GUARDED_BY(mu);
  uint64_t next_call_number ABSL_GUARDED_BY(mu) = 1;
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
  // A one-phase commit with an idempotency key (a keyed single branch is prepared instead, see
  // NewContext; this is left for a last resource whose other branches all voted READ_ONLY):
  // nothing but its completion record remembers the key across a crash, so its answers wait
  // until that is durable.
  bool answer_after_completion ABSL_GUARDED_BY(mu) = false;
};

namespace {

std::string Message(const absl::Status& s) { return std::string(s.message()); }

void ObservePhase(const char* phase, double seconds) {
  common::DefaultMetrics()
      .GetHistogram("txcoord_phase_seconds",
                    "Phases of committed transactions: prepare (commit asked -> every vote in), "
                    "decision_log (the synced COMMIT write), commit (decision -> every ack).",
                    {{"phase", phase}})
      ->Observe(seconds);
}

std::string ProtocolLabel(v1::Protocol p) {
  std::string name = v1::Protocol_Name(p);
  return absl::AsciiStrToLower(absl::StripPrefix(name, "PROTOCOL_"));
}

std::string StateLabel(v1::TxnState s) {
  std::string name = v1::TxnState_Name(s);
  return absl::AsciiStrToLower(absl::StripPrefix(name, "TXN_STATE_"));
}

}  // namespace

TransactionDriver::TransactionDriver(DriverDeps deps, DriverOptions options)
    : deps_(deps),
      options_(std::move(options)),
      incarnation_(deps_.log->incarnation()),
      other_incarnations_(options_.node_id, incarnation_),
      idempotency_(options_.idempotency, deps_.clock),
      in_flight_(options_.max_active_per_principal),
      random_(deps_.random != nullptr ? deps_.random : &own_random_) {
  sagas_ = std::make_unique<SagaDriver>(SagaDriverDeps{
      .group_log = deps_.group_log,
      .participants = deps_.participants,
      .clock = deps_.clock,
      .timers = deps_.timers,
      .random = random_,
      .rpc_timeout_ms = options_.rpc_timeout_ms,
      .retry_backoff = options_.retry_backoff,
      .on_finished = [this](const v1::Transaction& t) { Remember(t); },
      .on_log_failure = [this](const absl::Status& s) { NoteLogFailure(s); },
  });
  three_phase_ = std::make_unique<ThreePhaseDriver>(ThreePhaseDriverDeps{
      .group_log = deps_.group_log,
      .participants = deps_.participants,
      .clock = deps_.clock,
      .timers = deps_.timers,
      .random = random_,
      .rpc_timeout_ms = options_.rpc_timeout_ms,
      .prepare_timeout_ms = options_.prepare_timeout_ms,
      .termination_timeout_ms = options_.termination_timeout_ms,
      .retry_backoff = options_.retry_backoff,
      .on_finished = [this](const v1::Transaction& t) { Remember(t); },
      .on_log_failure = [this](const absl::Status& s) { NoteLogFailure(s); },
  });
}

TransactionDriver::~TransactionDriver() {
  sagas_.reset();  // its callbacks reach into this driver
  three_phase_.reset();
  lifetime_.Close();
}

void TransactionDriver::NoteLogFailure(const absl::Status& s) {
  if (!log_failing_.exchange(true)) {
    common::LogError(
        absl::StrCat("decision log write failed; refusing new transactions until it works again: ",
                     s.message()));
  }
}

size_t TransactionDriver::active_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return active_.size() + sagas_->active_count() + three_phase_->active_count();
}

absl::Status TransactionDriver::Recover() {
  started_unix_ms_ = deps_.clock->NowUnixMs();
  TXN_ASSIGN_OR_RETURN(epoch_, deps_.log->NextEpoch());
  std::vector<std::shared_ptr<TxnContext>> to_resume;
  std::vector<log::DecisionRecord> sagas_to_resume;
  std::vector<log::DecisionRecord> three_phase_to_resume;
  TXN_RETURN_IF_ERROR(deps_.log->ForEach([&](const log::DecisionRecord& r) {
    if (!r.idempotency_key().empty()) {
      // A finished one's retention window runs from when it finished.
      idempotency_.Restore(r.owner(), r.idempotency_key(), r.request_fingerprint(), r.txn_id(),
                           r.done() ? std::max<int64_t>(r.done_unix_ms(), 1) : 0);
    }
    if (r.protocol() == v1::PROTOCOL_SAGA) {
      if (!r.done()) {
        sagas_to_resume.push_back(r);
        in_flight_.Restore(r.owner(), r.txn_id());
      }
      return true;
    }
    if (r.protocol() == v1::PROTOCOL_THREE_PHASE) {
      const bool finished = r.done() || r.state() == v1::TXN_STATE_HEURISTIC_MIXED;
      if (!finished) {
        three_phase_to_resume.push_back(r);
        in_flight_.Restore(r.owner(), r.txn_id());
      }
      return true;
    }
    const bool committing_last = r.committing_last() && r.decision() == v1::DECISION_UNSPECIFIED;
    if (r.done() || (r.decision() != v1::DECISION_COMMIT && !committing_last)) return true;
    auto ctx = std::make_shared<TxnContext>();
    ctx->txn = TxnFromRecord(r);
    ctx->protocol = static_cast<v1::Protocol>(r.protocol());
    ctx->times = {r.created_unix_ms(), r.decided_unix_ms()};
    ctx->prepare_timeout_ms = options_.prepare_timeout_ms;
    // The completion write rewrites the whole record: without these a restart after it would
    // no longer know the key, and a client's retry would run the transaction again.
    ctx->identity = RequestIdentity::FromRecord(r);
    in_flight_.Restore(r.owner(), r.txn_id());
    to_resume.push_back(ctx);
    return true;
  }));
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& ctx : to_resume) active_[ctx->txn.id] = ctx;
  }
  common::LogInfo(absl::StrCat("recovery: incarnation ", incarnation_, ", epoch ", epoch_,
                               ", re-driving ", to_resume.size(), " committed transaction(s)"));
  common::DefaultMetrics()
      .GetCounter("txcoord_recovered_transactions_total",
                  "Transactions re-driven from the decision log at start.")
      ->Inc(to_resume.size() + sagas_to_resume.size() + three_phase_to_resume.size());
  if (!sagas_to_resume.empty()) {
    common::LogInfo(
        absl::StrCat("recovery: taking up ", sagas_to_resume.size(), " unfinished saga(s)"));
  }
  for (const auto& r : sagas_to_resume) sagas_->Resume(r);
  if (!three_phase_to_resume.empty()) {
    common::LogInfo(absl::StrCat("recovery: taking up ", three_phase_to_resume.size(),
                                 " unfinished three-phase transaction(s)"));
  }
  for (const auto& r : three_phase_to_resume) three_phase_->Resume(r);
  for (const auto& ctx : to_resume) {
    std::vector<Action> actions;
    {
      std::lock_guard<std::mutex> lock(ctx->mu);
      if (ctx->txn.committing_last) {
        common::LogInfo(absl::StrCat("txn=", ctx->txn.id,
                                     " recovery: last resource was committing, asking it"));
        actions = Plan(ctx, core::ResumeCommittingLast(ctx->txn));
      } else {
        common::LogInfo(absl::StrCat("txn=", ctx->txn.id, " recovery: COMMIT logged, re-sending"));
        actions = Plan(ctx, core::ResumeCommit(ctx->txn));
      }
    }
    (void)common::Failpoint("coord.recovery");
    for (auto& a : actions) a();
  }
  return absl::OkStatus();
}

std::shared_ptr<TransactionDriver::TxnContext> TransactionDriver::NewContext(
    v1::Protocol protocol, bool interactive, RequestIdentity identity) {
  auto ctx = std::make_shared<TxnContext>();
  ctx->start_order = next_seq_.fetch_add(1);
  ctx->txn.id = common::MakeTxnId(options_.node_id, incarnation_, epoch_, ctx->start_order);
  ctx->protocol = protocol;
  ctx->interactive = interactive;
  ctx->times.created_unix_ms = deps_.clock->NowUnixMs();
  ctx->prepare_timeout_ms = options_.prepare_timeout_ms;
  ctx->txn.one_phase_allowed = options_.one_phase;
  ctx->identity = std::move(identity);
  ctx->txn.keyed = !ctx->identity.idempotency_key.empty();
  // A key must outlive a coordinator crash at any step, also one between sending a one-phase
  // commit and its answer, and only a record written before the commit can do that: a keyed
  // single-branch transaction is prepared and logged like any other.
  if (ctx->txn.keyed) ctx->txn.one_phase_allowed = false;
  return ctx;
}

std::shared_ptr<TransactionDriver::TxnContext> TransactionDriver::FindActive(
    const std::string& txn_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = active_.find(txn_id);
  return it == active_.end() ? nullptr : it->second;
}

void TransactionDriver::Dispatch(const std::shared_ptr<TxnContext>& ctx,
                                 const core::TwoPhaseEvent& event) {
  std::vector<Action> actions;
  {
    std::lock_guard<std::mutex> lock(ctx->mu);
    if (std::holds_alternative<core::CommitRequested>(event) && !ctx->since_commit_requested) {
      ctx->since_commit_requested.emplace();
    }
    actions = Plan(ctx, core::Step(ctx->txn, event));
  }
  for (auto& a : actions) a();
}

void TransactionDriver::Later(int attempt, Action fn) {
  if (attempt <= 0) {
    fn();
    return;
  }
  deps_.timers->After(common::BackoffDelayMs(options_.retry_backoff, attempt, random_->NextUnit()),
                      Guard(std::move(fn)));
}

void TransactionDriver::AttachOrReply(TxnContext& ctx, OutcomeReply reply,
                                      std::vector<Action>* actions) {
  if (ctx.txn.client_answered && !ctx.answer_after_completion) {
    v1::Outcome outcome = OutcomeOf(ctx.txn);
    actions->push_back([reply = std::move(reply), outcome] { reply(outcome); });
  } else {
    ctx.waiters.push_back(std::move(reply));
  }
}

std::vector<TransactionDriver::Action> TransactionDriver::Plan(
    const std::shared_ptr<TxnContext>& ctx, const std::vector<core::TwoPhaseEffect>& effects) {
  std::vector<Action> actions;
  core::TwoPhaseTxn& txn = ctx->txn;
  auto channel_of = [&](uint32_t b) {
    return deps_.participants->Find(txn.branches[b].participant);
  };
  auto ref_of = [&](v1::BranchRef* ref, uint32_t b) {
    ref->set_txn_id(txn.id);
    ref->set_branch(b);
  };
  const int64_t rpc_timeout = options_.rpc_timeout_ms;
  // Set by a keyed one-phase commit's completion: the actions planned after it (the answers,
  // forgetting the context) run once that record is durable.
  std::shared_ptr<std::vector<Action>> after_completion;
  size_t after_completion_from = 0;

  for (const auto& effect : effects) {
    std::visit(
        [&](const auto& e) {
          using E = std::decay_t<decltype(e)>;
          if constexpr (std::is_same_v<E, core::SendPrepare>) {
            v1::PrepareBranchRequest req;
            ref_of(req.mutable_ref(), e.branch);
            if (e.branch < ctx->run_branches.size()) {
              *req.mutable_operations() = ctx->run_branches[e.branch].operations();
              req.set_begin(true);
            }
            auto* ch = channel_of(e.branch);
            const uint32_t b = e.branch;
            const uint64_t call = StartCall(*ctx, b);
            req.set_call_number(call);
            auto on_reply = GuardReply<absl::StatusOr<
                v1::PrepareBranchResponse>>([this, ctx, b,
                                             call](absl::StatusOr<v1::PrepareBranchResponse> r) {
              EndCall(*ctx, b, call);
              if (!r.ok()) return Dispatch(ctx, core::PrepareFailed{b, Message(r.status())});
              Dispatch(ctx, core::VoteReceived{b, VoteOf(r->vote()), r->reason(), r->native_id()});
            });
            actions.push_back([ch, req = std::move(req), on_reply, t = ctx->prepare_timeout_ms] {
              ch->Prepare(req, t, on_reply);
            });
          } else if constexpr (std::is_same_v<E, core::SendCommitOnePhase>) {
            v1::CommitOnePhaseRequest req;
            ref_of(req.mutable_ref(), e.branch);
            if (e.attempt == 0 && e.branch < ctx->run_branches.size()) {
              *req.mutable_operations() = ctx->run_branches[e.branch].operations();
              req.set_begin(true);
            }
            req.set_retry(e.attempt > 0);
            auto* ch = channel_of(e.branch);
            const uint32_t b = e.branch;
            const uint64_t call = StartCall(*ctx, b);
            req.set_call_number(call);
            auto on_reply = GuardReply<absl::StatusOr<
                v1::CommitOnePhaseResponse>>([this, ctx, b,
                                              call](absl::StatusOr<v1::CommitOnePhaseResponse> r) {
              EndCall(*ctx, b, call);
              // A crash here after the last resource committed: recovery finds the
              // committing_last record and asks it again.
              if (r.ok()) (void)common::Failpoint("coord.after_last_resource_reply");
              if (r.ok()) {
                return Dispatch(ctx, core::OnePhaseFinished{ResultOf(r->result()), r->reason(), b});
              }
              const absl::StatusCode code = r.status().code();
              if (code == absl::StatusCode::kInvalidArgument ||
                  code == absl::StatusCode::kFailedPrecondition) {
                // Refused before it touched the database.
                return Dispatch(ctx, core::OnePhaseFinished{core::BranchResult::kAborted,
                                                            Message(r.status()), b});
              }
              Dispatch(ctx, core::OnePhaseFailed{Message(r.status()), b});
            });
            const int64_t t = std::max(rpc_timeout, ctx->prepare_timeout_ms);
            actions.push_back([this, ch, req = std::move(req), on_reply, t, attempt = e.attempt] {
              Later(attempt, [ch, req, on_reply, t] { ch->CommitOnePhase(req, t, on_reply); });
            });
          } else if constexpr (std::is_same_v<E, core::SendCommit>) {
            v1::CommitBranchRequest req;
            ref_of(req.mutable_ref(), e.branch);
            req.set_native_id(txn.branches[e.branch].native_id);
            auto* ch = channel_of(e.branch);
            const uint32_t b = e.branch;
            auto on_reply = GuardReply<absl::StatusOr<v1::CommitBranchResponse>>(
                [this, ctx, b](absl::StatusOr<v1::CommitBranchResponse> r) {
                  if (!r.ok()) return Dispatch(ctx, core::CommitFailed{b, Message(r.status())});
                  Dispatch(ctx, core::CommitAcked{b, ResultOf(r->result()), r->reason()});
                });
            actions.push_back(
                [this, ch, req = std::move(req), on_reply, rpc_timeout, attempt = e.attempt] {
                  Later(attempt, [ch, req, on_reply, rpc_timeout] {
                    ch->Commit(req, rpc_timeout, on_reply);
                    (void)common::Failpoint("coord.after_commit_sent");
                  });
                });
          } else if constexpr (std::is_same_v<E, core::SendRollback>) {
            v1::RollbackBranchRequest req;
            ref_of(req.mutable_ref(), e.branch);
            auto* ch = channel_of(e.branch);
            const uint32_t b = e.branch;
            auto on_reply = GuardReply<absl::StatusOr<v1::RollbackBranchResponse>>(
                [this, ctx, b](absl::StatusOr<v1::RollbackBranchResponse> r) {
                  if (!r.ok()) return Dispatch(ctx, core::RollbackFailed{b, Message(r.status())});
                  Dispatch(ctx, core::RollbackAcked{b, ResultOf(r->result()), r->reason()});
                });
            actions.push_back([this, ch, req = std::move(req), on_reply, rpc_timeout,
                               attempt = e.attempt] {
              Later(attempt,
                    [ch, req, on_reply, rpc_timeout] { ch->Rollback(req, rpc_timeout, on_reply); });
            });
          } else if constexpr (std::is_same_v<E, core::StartPrepareTimer>) {
            const int64_t timeout = ctx->prepare_timeout_ms;
            actions.push_back([this, ctx, timeout] {
              deps_.timers->After(
                  timeout, Guard(Action([this, ctx] { Dispatch(ctx, core::PrepareTimedOut{}); })));
            });
          } else if constexpr (std::is_same_v<E, core::LogDecision>) {
            if (!e.committing_last) ctx->times.decided_unix_ms = deps_.clock->NowUnixMs();
            if (e.decision == core::Decision::kCommit && !e.committing_last &&
                ctx->since_commit_requested) {
              ObservePhase("prepare", ctx->since_commit_requested->Seconds());
            }
            const v1::Decision decision = e.committing_last ? v1::DECISION_UNSPECIFIED
                                          : e.decision == core::Decision::kAbort
                                              ? v1::DECISION_ABORT
                                              : v1::DECISION_COMMIT;
            log::DecisionRecord record = DecisionRecordOf(txn, ctx->protocol, ctx->times, decision);
            ctx->identity.WriteTo(&record);
            // An ABORT after the last resource aborted needs no sync: if it is lost, recovery
            // finds the committing_last record and asks the last resource, which says the same.
            const bool sync = decision != v1::DECISION_ABORT || e.sync_abort;
            if (decision == v1::DECISION_ABORT) {
              record.set_state(v1::TXN_STATE_ABORTED);
              record.set_done(true);
              record.set_done_unix_ms(deps_.clock->NowUnixMs());
            }
            const core::DecisionLogged logged{e.decision, e.committing_last};
            const char* before = e.committing_last ? "coord.before_committing_last_log"
                                                   : "coord.before_decision_log";
            const char* after =
                e.committing_last ? "coord.after_committing_last_log" : "coord.after_decision_log";
            actions.push_back([this, ctx, record = std::move(record), sync, logged, before,
                               after]() mutable {
              if (absl::Status fp = common::Failpoint(before); !fp.ok()) {
                Dispatch(ctx, core::DecisionLogFailed{Message(fp), logged.committing_last});
                return;
              }
              deps_.group_log->Append(
                  std::move(record), sync,
                  GuardReply<absl::Status>([this, ctx, logged, after,
                                            watch = common::Stopwatch()](absl::Status s) {
                    if (!s.ok()) {
                      if (!log_failing_.exchange(true)) {
                        common::LogError(absl::StrCat(
                            "decision log write failed; refusing new transactions until it "
                            "works again: ",
                            s.message()));
                      }
                      common::LogError(absl::StrCat("txn=", ctx->txn.id,
                                                    " decision write failed: ", s.message()));
                      Dispatch(ctx, core::DecisionLogFailed{Message(s), logged.committing_last});
                      return;
                    }
                    if (logged.decision == core::Decision::kCommit && !logged.committing_last) {
                      ObservePhase("decision_log", watch.Seconds());
                      std::lock_guard<std::mutex> lock(ctx->mu);
                      ctx->since_decided.emplace();
                    }
                    // A crash here: the record is durable and nothing acted on it yet; recovery
                    // re-sends the commits (or asks the last resource).
                    (void)common::Failpoint(after);
                    Dispatch(ctx, logged);
                  }));
            });
          } else if constexpr (std::is_same_v<E, core::LogCompletion>) {
            const v1::Decision decision = core::DecisionOf(txn) == core::Decision::kCommit
                                              ? v1::DECISION_COMMIT
                                              : v1::DECISION_ABORT;
            log::DecisionRecord record = DecisionRecordOf(txn, ctx->protocol, ctx->times, decision);
            // A heuristic outcome must survive a crash: it is kept until an operator clears it.
            // So must the key of a one-phase commit (see answer_after_completion).
            const bool keyed_one_phase =
                txn.one_phase && txn.state == core::TxnState::kCommitted && txn.keyed;
            const bool sync = txn.state == core::TxnState::kHeuristicMixed || keyed_one_phase;
            if (ctx->since_decided) ObservePhase("commit", ctx->since_decided->Seconds());
            ctx->identity.WriteTo(&record);
            record.set_done(true);
            record.set_done_unix_ms(deps_.clock->NowUnixMs());
            if (txn.state == core::TxnState::kHeuristicMixed) {
              common::LogError(absl::StrCat("txn=", txn.id,
                                            " HEURISTIC_MIXED: a branch's outcome differs from the "
                                            "decision; see txctl show ",
                                            txn.id));
            }
            std::shared_ptr<std::vector<Action>> held;
            if (keyed_one_phase) {
              held = std::make_shared<std::vector<Action>>();
              ctx->answer_after_completion = true;
            }
            actions.push_back([this, ctx, record = std::move(record), sync, held]() mutable {
              deps_.group_log->Append(
                  std::move(record), sync,
                  GuardReply<absl::Status>([this, ctx, held](absl::Status s) {
                    if (!s.ok()) {
                      // The database committed: the answer stands, only the key may be forgotten
                      // by a restart.
                      common::LogWarning(absl::StrCat("txn=", ctx->txn.id,
                                                      " marking the record done failed: ",
                                                      s.message()));
                    }
                    if (held == nullptr) return;
                    std::vector<OutcomeReply> late;
                    v1::Outcome outcome;
                    {
                      std::lock_guard<std::mutex> lock(ctx->mu);
                      ctx->answer_after_completion = false;
                      late = std::move(ctx->waiters);
                      ctx->waiters.clear();
                      outcome = OutcomeOf(ctx->txn);
                    }
                    for (auto& a : *held) a();
                    for (auto& w : late) w(outcome);
                  }));
            });
            if (held != nullptr) {
              after_completion = held;
              after_completion_from = actions.size();
            }
          } else if constexpr (std::is_same_v<E, core::ReplyToClient>) {
            if (ctx->times.decided_unix_ms == 0 &&
                core::OutcomeState(txn) != core::TxnState::kInDoubt) {
              ctx->times.decided_unix_ms = deps_.clock->NowUnixMs();
            }
            v1::Outcome outcome = OutcomeOf(txn);
            std::vector<OutcomeReply> waiters = std::move(ctx->waiters);
            ctx->waiters.clear();
            actions.push_back([waiters = std::move(waiters), outcome = std::move(outcome)] {
              for (const auto& w : waiters) w(outcome);
            });
          } else if constexpr (std::is_same_v<E, core::Forget>) {
            if (ctx->times.decided_unix_ms == 0)
              ctx->times.decided_unix_ms = deps_.clock->NowUnixMs();
            const v1::TxnState final_state = static_cast<v1::TxnState>(txn.state);
            common::DefaultMetrics()
                .GetCounter("txcoord_transactions_total",
                            "Finished transactions by protocol and outcome.",
                            {{"protocol", ProtocolLabel(ctx->protocol)},
                             {"outcome", StateLabel(final_state)}})
                ->Inc();
            common::DefaultMetrics()
                .GetHistogram("txcoord_transaction_seconds",
                              "Whole transactions, from Begin/Run until every branch finished.",
                              {{"protocol", ProtocolLabel(ctx->protocol)},
                               {"outcome", StateLabel(final_state)}})
                ->Observe(
                    static_cast<double>(deps_.clock->NowUnixMs() - ctx->times.created_unix_ms) /
                    1000.0);
            v1::Transaction snapshot = TransactionOf(txn, ctx->protocol, ctx->times);
            snapshot.set_owner(ctx->identity.owner);
            actions.push_back([this, snapshot = std::move(snapshot)] { Remember(snapshot); });
          }
        },
        effect);
  }
  if (after_completion != nullptr) {
    for (size_t i = after_completion_from; i < actions.size(); ++i) {
      after_completion->push_back(std::move(actions[i]));
    }
    actions.resize(after_completion_from);
  }
  return actions;
}

void TransactionDriver::Remember(const v1::Transaction& finished) {
  idempotency_.Finished(finished.txn_id());
  in_flight_.Release(finished.txn_id());
  std::lock_guard<std::mutex> lock(mu_);
  active_.erase(finished.txn_id());
  ++finished_counts_[finished.state()];
  if (finished.protocol() == v1::PROTOCOL_SAGA || finished.protocol() == v1::PROTOCOL_THREE_PHASE) {
    common::DefaultMetrics()
        .GetCounter("txcoord_transactions_total", "Finished transactions by protocol and outcome.",
                    {{"protocol", ProtocolLabel(finished.protocol())},
                     {"outcome", StateLabel(finished.state())}})
        ->Inc();
  }
  finished_[finished.txn_id()] = finished;
  finished_order_.push_back(finished.txn_id());
  while (finished_order_.size() > options_.finished_cache_size) {
    finished_.erase(finished_order_.front());
    finished_order_.pop_front();
  }
}

absl::StatusOr<v1::Transaction> TransactionDriver::LookupFinished(const std::string& txn_id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = finished_.find(txn_id);
    if (it != finished_.end()) return it->second;
  }
  TXN_ASSIGN_OR_RETURN(std::optional<log::DecisionRecord> record, deps_.log->Get(txn_id));
  if (record) return TransactionOf(*record);
  return absl::NotFoundError(absl::StrCat("transaction ", txn_id, " is not known"));
}

bool TransactionDriver::ReserveForRun(const RequestIdentity& identity, const std::string& txn_id,
                                      OutcomeReply& reply) {
  if (identity.idempotency_key.empty()) {
    if (absl::Status s = in_flight_.Admit(identity.owner, txn_id); !s.ok()) {
      reply(s);
      return false;
    }
    return true;
  }
  std::string existing;
  absl::StatusOr<bool> fresh = idempotency_.Reserve(identity.owner, identity.idempotency_key,
                                                    identity.fingerprint, txn_id, &existing);
  if (!fresh.ok()) {
    reply(fresh.status());
    return false;
  }
  if (!*fresh) {
    ReplyExisting(existing, std::move(reply));
    return false;
  }
  // A retry of a known key (above) is answered even when the principal is at its limit; a new
  // one that is refused here gives its key back, so a later retry is not taken for a run.
  if (absl::Status s = in_flight_.Admit(identity.owner, txn_id); !s.ok()) {
    idempotency_.Abandon(identity.owner, identity.idempotency_key, txn_id);
    reply(s);
    return false;
  }
  return true;
}

namespace {

bool OwnedBy(const std::string& owner, const std::string& principal) {
  return principal.empty() || owner == principal;
}

absl::Status NotKnown(const std::string& txn_id) {
  return absl::NotFoundError(absl::StrCat("transaction ", txn_id, " is not known"));
}

}  // namespace

std::shared_ptr<TransactionDriver::TxnContext> TransactionDriver::FindActiveFor(
    const std::string& txn_id, const std::string& principal) const {
  std::shared_ptr<TxnContext> ctx = FindActive(txn_id);
  return ctx && OwnedBy(ctx->identity.owner, principal) ? ctx : nullptr;
}

absl::StatusOr<v1::Transaction> TransactionDriver::LookupFinishedFor(const std::string& txn_id,
                                                                     const std::string& principal) {
  absl::StatusOr<v1::Transaction> t = LookupFinished(txn_id);
  if (t.ok() && !OwnedBy(t->owner(), principal)) return NotKnown(txn_id);
  return t;
}

v1::Transaction TransactionDriver::Snapshot(const TxnContext& ctx) {
  v1::Transaction t = TransactionOf(ctx.txn, ctx.protocol, ctx.times);
  t.set_owner(ctx.identity.owner);
  return t;
}

void TransactionDriver::ReplyExisting(const std::string& txn_id, OutcomeReply reply) {
  if (auto ctx = FindActive(txn_id)) {
    std::vector<Action> actions;
    {
      std::lock_guard<std::mutex> lock(ctx->mu);
      AttachOrReply(*ctx, std::move(reply), &actions);
    }
    for (auto& a : actions) a();
    return;
  }
  if (sagas_->Attach(txn_id, reply)) return;
  if (three_phase_->Attach(txn_id, reply)) return;
  absl::StatusOr<v1::Transaction> finished = LookupFinished(txn_id);
  if (!finished.ok()) {
    reply(absl::FailedPreconditionError(absl::StrCat("the idempotency key names transaction ",
                                                     txn_id, ", which is no longer remembered")));
    return;
  }
  reply(OutcomeOf(*finished));
}

absl::StatusOr<TransactionDriver::LastResourcePlan> TransactionDriver::PlanLastResource(
    const v1::RunRequest& req) const {
  LastResourcePlan plan;
  std::vector<int> cannot_prepare;
  for (int b = 0; b < req.branches_size(); ++b) {
    const std::string& name = req.branches(b).participant();
    std::optional<transport::ParticipantCapabilities> caps =
        deps_.participants->CapabilitiesOf(name);
    // Not described yet (agent down or just started): treated as able to prepare. That is safe:
    // an agent that cannot prepare refuses the Prepare, and the transaction aborts.
    if (caps && !caps->supports_prepare) {
      cannot_prepare.push_back(b);
      plan.max_lifetime_ms = caps->max_txn_lifetime_ms;
    }
  }
  if (cannot_prepare.size() > 1 && !req.allow_heuristic()) return MultipleLastResources();
  for (size_t i = 1; i < cannot_prepare.size(); ++i) {
    plan.heuristic_resources.push_back(static_cast<uint32_t>(cannot_prepare[i]));
  }
  if (!cannot_prepare.empty()) {
    plan.last_resource = static_cast<uint32_t>(cannot_prepare[0]);
    if (plan.max_lifetime_ms > 0 && req.timeout_ms() > plan.max_lifetime_ms) {
      return absl::FailedPreconditionError(
          absl::StrCat("timeout_ms ", req.timeout_ms(), " is longer than participant ",
                       req.branches(cannot_prepare[0]).participant(),
                       "'s transaction lifetime limit of ", plan.max_lifetime_ms, " ms"));
    }
  }
  return plan;
}

absl::Status TransactionDriver::MultipleLastResources() {
  return absl::FailedPreconditionError(
      "two or more branches are on participants that cannot prepare (e.g. MongoDB); such a "
      "transaction cannot be made atomic (allow_heuristic accepts a possibly mixed outcome)");
}

absl::Status TransactionDriver::AdmitInteractiveBranch(TxnContext& ctx,
                                                       const std::string& participant) {
  if (ctx.txn.branches.size() >= static_cast<size_t>(kMaxBranchesPerTxn)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("a transaction may touch at most ", kMaxBranchesPerTxn, " participants"));
  }
  std::optional<transport::ParticipantCapabilities> caps =
      deps_.participants->CapabilitiesOf(participant);
  // Not described yet: treated as able to prepare (see PlanLastResource).
  if (!caps || caps->supports_prepare) return absl::OkStatus();
  if (ctx.txn.last_resource) return MultipleLastResources();
  if (caps->max_txn_lifetime_ms > 0 && ctx.requested_timeout_ms > caps->max_txn_lifetime_ms) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the transaction's timeout_ms ", ctx.requested_timeout_ms, " is longer than participant ",
        participant, "'s transaction lifetime limit of ", caps->max_txn_lifetime_ms, " ms"));
  }
  ctx.txn.last_resource = static_cast<uint32_t>(ctx.txn.branches.size());
  return absl::OkStatus();
}

absl::Status TransactionDriver::ProbeLog() {
  if (!log_failing_.load()) return absl::OkStatus();
  absl::StatusOr<uint64_t> probe = deps_.log->NextEpoch();
  if (!probe.ok()) return probe.status();
  log_failing_.store(false);
  common::LogInfo("decision log writable again; accepting transactions");
  return absl::OkStatus();
}

namespace {
absl::Status FailedClosed() {
  return absl::UnavailableError(
      "the coordinator's decision log cannot be written; no new transactions until it can");
}
}  // namespace

void TransactionDriver::Run(const v1::RunRequest& req, OutcomeReply reply,
                            const std::string& principal) {
  if (!accepting()) {
    reply(FailedClosed());
    return;
  }
  if (absl::Status s = ValidateRun(req, *deps_.participants); !s.ok()) {
    reply(s);
    return;
  }
  RequestIdentity identity{principal, req.idempotency_key(), ""};
  if (!req.idempotency_key().empty()) {
    v1::RunRequest without_key = req;
    without_key.clear_idempotency_key();
    identity.fingerprint = Fingerprint(without_key);
  }
  if (active_count() >= options_.max_active) {
    reply(absl::ResourceExhaustedError(
        absl::StrCat("too many transactions in flight (", options_.max_active, ")")));
    return;
  }
  for (const auto& b : req.branches()) {
    if (absl::Status s = deps_.participants->Admit(b.participant()); !s.ok()) {
      reply(s);
      return;
    }
  }
  if (req.protocol() == v1::PROTOCOL_SAGA) {
    RunSaga(req, std::move(identity), std::move(reply));
    return;
  }
  if (req.protocol() == v1::PROTOCOL_THREE_PHASE) {
    RunThreePhase(req, std::move(identity), std::move(reply));
    return;
  }
  absl::StatusOr<LastResourcePlan> plan = PlanLastResource(req);
  if (!plan.ok()) {
    reply(plan.status());
    return;
  }
  auto ctx = NewContext(req.protocol(), /*interactive=*/false, identity);
  if (!ReserveForRun(identity, ctx->txn.id, reply)) return;
  if (req.timeout_ms() > 0) {
    ctx->prepare_timeout_ms = std::min<int64_t>(ctx->prepare_timeout_ms, req.timeout_ms());
  }
  if (plan->max_lifetime_ms > 0) {
    ctx->prepare_timeout_ms = std::min(ctx->prepare_timeout_ms, plan->max_lifetime_ms);
  }
  {
    std::lock_guard<std::mutex> lock(ctx->mu);
    ctx->txn.last_resource = plan->last_resource;
    ctx->txn.heuristic_resources = plan->heuristic_resources;
    for (const auto& b : req.branches()) {
      ctx->txn.branches.push_back(core::BranchStatus{.participant = b.participant()});
      ctx->run_branches.push_back(b);
    }
    ctx->waiters.push_back(std::move(reply));
    ctx->commit_requested = true;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    active_[ctx->txn.id] = ctx;
  }
  Dispatch(ctx, core::CommitRequested{req.wait_for_completion()});
}

void TransactionDriver::RunSaga(const v1::RunRequest& req, RequestIdentity identity,
                                OutcomeReply reply) {
  const std::string txn_id =
      common::MakeTxnId(options_.node_id, incarnation_, epoch_, next_seq_.fetch_add(1));
  if (!ReserveForRun(identity, txn_id, reply)) return;
  sagas_->Start(txn_id, req, std::move(identity), std::move(reply));
}

absl::Status TransactionDriver::CheckThreePhaseParticipants(const v1::RunRequest& req) const {
  std::set<std::string> seen;
  for (int i = 0; i < req.branches_size(); ++i) {
    const std::string& p = req.branches(i).participant();
    // Quorums are counted over members by name: one branch per participant.
    if (!seen.insert(p).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("branches[", i, "].participant ", p,
                       " appears twice; a three-phase commit takes one branch per participant"));
    }
    std::optional<transport::ParticipantCapabilities> caps = deps_.participants->CapabilitiesOf(p);
    if (caps && !caps->supports_prepare) {
      return absl::FailedPreconditionError(absl::StrCat(
          "branches[", i, "]: participant ", p,
          " cannot hold a prepared transaction, so it cannot take part in three-phase commit"));
    }
  }
  return absl::OkStatus();
}

void TransactionDriver::RunThreePhase(const v1::RunRequest& req, RequestIdentity identity,
                                      OutcomeReply reply) {
  if (absl::Status s = CheckThreePhaseParticipants(req); !s.ok()) return reply(s);
  const std::string txn_id =
      common::MakeTxnId(options_.node_id, incarnation_, epoch_, next_seq_.fetch_add(1));
  if (!ReserveForRun(identity, txn_id, reply)) return;
  three_phase_->Start(txn_id, req, std::move(identity), std::move(reply));
}

absl::Status TransactionDriver::RefuseSaga(const std::string& txn_id, const char* what,
                                           const std::string& principal) const {
  // Another principal's is NOT_FOUND, which the caller finds out next.
  if (std::optional<v1::Transaction> t = three_phase_->Find(txn_id);
      t && OwnedBy(t->owner(), principal)) {
    return absl::FailedPreconditionError(
        absl::StrCat("transaction ", txn_id, " is a three-phase commit (started by Run); ", what,
                     " does not apply to it: it finishes by itself"));
  }
  std::optional<v1::Transaction> saga = sagas_->Find(txn_id);
  if (!saga || !OwnedBy(saga->owner(), principal)) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("transaction ", txn_id, " is a saga (started by Run); ", what,
                   " does not apply to it: it finishes by itself, forward or by compensating"));
}

absl::StatusOr<v1::BeginResponse> TransactionDriver::Begin(const v1::BeginRequest& req,
                                                           const std::string& principal) {
  if (!accepting()) return FailedClosed();
  TXN_RETURN_IF_ERROR(ValidateBegin(req));
  RequestIdentity identity{principal, req.idempotency_key(), ""};
  if (!req.idempotency_key().empty()) {
    v1::BeginRequest without_key = req;
    without_key.clear_idempotency_key();
    identity.fingerprint = Fingerprint(without_key);
  }
  if (active_count() >= options_.max_active) {
    return absl::ResourceExhaustedError(
        absl::StrCat("too many transactions in flight (", options_.max_active, ")"));
  }
  auto ctx = NewContext(req.protocol(), /*interactive=*/true, identity);
  v1::BeginResponse resp;
  if (!req.idempotency_key().empty()) {
    std::string existing;
    TXN_ASSIGN_OR_RETURN(bool fresh, idempotency_.Reserve(principal, req.idempotency_key(),
                                                          identity.fingerprint, ctx->txn.id,
                                                          &existing));
    if (!fresh) {
      resp.set_txn_id(existing);
      return resp;
    }
  }
  if (absl::Status s = in_flight_.Admit(principal, ctx->txn.id); !s.ok()) {
    if (!req.idempotency_key().empty()) {
      idempotency_.Abandon(principal, req.idempotency_key(), ctx->txn.id);
    }
    return s;
  }
  // Set before the context is published: Execute reads them as soon as it can find it.
  ctx->requested_timeout_ms = req.timeout_ms();
  const int64_t timeout = req.timeout_ms() > 0 ? req.timeout_ms() : options_.default_txn_timeout_ms;
  ctx->prepare_timeout_ms = std::min<int64_t>(ctx->prepare_timeout_ms, timeout);
  ctx->deadline_unix_ms = deps_.clock->NowUnixMs() + timeout;
  {
    std::lock_guard<std::mutex> lock(mu_);
    active_[ctx->txn.id] = ctx;
  }
  std::weak_ptr<TxnContext> weak = ctx;
  deps_.timers->After(
      timeout, Guard(Action([this, weak, timeout] {
        if (auto c = weak.lock()) {
          Dispatch(c, core::RollbackRequested{absl::StrCat("transaction deadline (", timeout,
                                                           " ms) passed before Commit")});
        }
      })));
  resp.set_txn_id(ctx->txn.id);
  return resp;
}

void TransactionDriver::Execute(const v1::ExecuteRequest& req,
                                std::function<void(absl::StatusOr<v1::ExecuteResult>)> reply,
                                const std::string& principal) {
  if (absl::Status s = ValidateTxnId(req.txn_id()); !s.ok()) return reply(s);
  if (req.participant().empty()) return reply(absl::InvalidArgumentError("participant is empty"));
  if (absl::Status s = ValidateOperation(req.operation(), "operation"); !s.ok()) return reply(s);
  if (absl::Status s = RefuseSaga(req.txn_id(), "Execute", principal); !s.ok()) return reply(s);
  transport::ParticipantChannel* ch = deps_.participants->Find(req.participant());
  if (ch == nullptr) {
    return reply(absl::NotFoundError(absl::StrCat("participant '", req.participant().substr(0, 100),
                                                  "' is not a configured participant")));
  }
  auto ctx = FindActiveFor(req.txn_id(), principal);
  if (ctx == nullptr) {
    absl::StatusOr<v1::Transaction> finished = LookupFinishedFor(req.txn_id(), principal);
    if (finished.ok()) {
      return reply(absl::FailedPreconditionError(
          absl::StrCat("transaction ", req.txn_id(), " is ", v1::TxnState_Name(finished->state()),
                       "; Execute is only allowed while it is ACTIVE")));
    }
    return reply(NotKnown(req.txn_id()));
  }
  v1::ExecuteBranchRequest breq;
  {
    std::lock_guard<std::mutex> lock(ctx->mu);
    if (!ctx->interactive) {
      return reply(absl::FailedPreconditionError(
          absl::StrCat("transaction ", req.txn_id(), " was started by Run; Execute needs Begin")));
    }
    if (ctx->txn.state != core::TxnState::kActive || ctx->commit_requested) {
      return reply(absl::FailedPreconditionError(
          absl::StrCat("transaction ", req.txn_id(), " is ",
                       ctx->commit_requested && ctx->txn.state == core::TxnState::kActive
                           ? "COMMITTING"
                           : std::string(core::TxnStateName(core::OutcomeState(ctx->txn))),
                       "; Execute is only allowed while it is ACTIVE")));
    }
    auto [it, added] = ctx->branch_of.emplace(req.participant(), ctx->txn.branches.size());
    if (added) {
      absl::Status admitted = deps_.participants->Admit(req.participant());
      if (admitted.ok()) admitted = AdmitInteractiveBranch(*ctx, req.participant());
      if (!admitted.ok()) {
        ctx->branch_of.erase(it);
        return reply(admitted);
      }
      ctx->txn.branches.push_back(core::BranchStatus{.participant = req.participant()});
    }
    breq.mutable_ref()->set_txn_id(ctx->txn.id);
    breq.mutable_ref()->set_branch(it->second);
    breq.set_begin(added);
    *breq.add_operations() = req.operation();
    ++ctx->executes_in_flight;
    breq.set_call_number(StartCall(*ctx, it->second));
  }
  const int64_t call_timeout_ms =
      ctx->deadline_unix_ms == 0
          ? options_.rpc_timeout_ms
          : std::clamp<int64_t>(ctx->deadline_unix_ms - deps_.clock->NowUnixMs(), 1,
                                options_.rpc_timeout_ms);
  ch->Execute(breq, call_timeout_ms,
              [ctx, reply = std::move(reply), b = breq.ref().branch(),
               call = breq.call_number()](absl::StatusOr<v1::ExecuteBranchResponse> r) {
                std::string aborted_because;
                {
                  std::lock_guard<std::mutex> lock(ctx->mu);
                  --ctx->executes_in_flight;
                  if (auto it = ctx->call_in_flight.find(b);
                      it != ctx->call_in_flight.end() && it->second == call) {
                    ctx->call_in_flight.erase(it);
                  }
                  if (ctx->txn.state == core::TxnState::kAborting ||
                      ctx->txn.state == core::TxnState::kAborted) {
                    aborted_because = absl::StrCat("transaction ", ctx->txn.id,
                                                   " was aborted: ", ctx->txn.reason);
                  }
                }
                if (!r.ok() && !aborted_because.empty()) {
                  // Say why the statement was cut short (a deadlock victim, a Rollback).
                  return reply(absl::AbortedError(aborted_because));
                }
                if (!r.ok()) return reply(r.status());
                if (r->results_size() != 1) {
                  return reply(absl::InternalError("participant returned no result"));
                }
                reply(r->results(0));
              });
}

void TransactionDriver::Commit(const v1::CommitRequest& req, OutcomeReply reply,
                               const std::string& principal) {
  if (absl::Status s = ValidateTxnId(req.txn_id()); !s.ok()) return reply(s);
  if (absl::Status s = RefuseSaga(req.txn_id(), "Commit", principal); !s.ok()) return reply(s);
  auto ctx = FindActiveFor(req.txn_id(), principal);
  if (ctx == nullptr) {
    absl::StatusOr<v1::Transaction> finished = LookupFinishedFor(req.txn_id(), principal);
    if (!finished.ok()) return reply(finished.status());
    return reply(OutcomeOf(*finished));  // a retried Commit gets the same answer
  }
  std::vector<Action> actions;
  bool start = false;
  {
    std::lock_guard<std::mutex> lock(ctx->mu);
    if (!ctx->interactive) {
      AttachOrReply(*ctx, std::move(reply), &actions);
    } else if (ctx->executes_in_flight > 0) {
      return reply(absl::FailedPreconditionError(
          absl::StrCat("transaction ", req.txn_id(), " has an Execute still running")));
    } else {
      start = ctx->txn.state == core::TxnState::kActive && !ctx->commit_requested;
      ctx->commit_requested = true;
      AttachOrReply(*ctx, std::move(reply), &actions);
    }
  }
  for (auto& a : actions) a();
  if (start) Dispatch(ctx, core::CommitRequested{req.wait_for_completion()});
}

void TransactionDriver::Rollback(const v1::RollbackRequest& req, OutcomeReply reply,
                                 const std::string& principal) {
  if (absl::Status s = ValidateTxnId(req.txn_id()); !s.ok()) return reply(s);
  if (absl::Status s = RefuseSaga(req.txn_id(), "Rollback", principal); !s.ok()) return reply(s);
  auto ctx = FindActiveFor(req.txn_id(), principal);
  if (ctx == nullptr) {
    absl::StatusOr<v1::Transaction> finished = LookupFinishedFor(req.txn_id(), principal);
    if (!finished.ok()) return reply(finished.status());
    if (finished->state() == v1::TXN_STATE_ABORTED) return reply(OutcomeOf(*finished));
    return reply(absl::FailedPreconditionError(absl::StrCat("transaction ", req.txn_id(), " is ",
                                                            v1::TxnState_Name(finished->state()),
                                                            "; it can no longer be rolled back")));
  }
  std::vector<Action> actions;
  {
    std::lock_guard<std::mutex> lock(ctx->mu);
    const core::TxnState state = ctx->txn.state;
    if (state == core::TxnState::kAborting || state == core::TxnState::kAborted) {
      actions.push_back(
          [reply = std::move(reply), outcome = OutcomeOf(ctx->txn)] { reply(outcome); });
    } else if (state != core::TxnState::kActive || ctx->commit_requested || !ctx->interactive) {
      return reply(absl::FailedPreconditionError(
          absl::StrCat("transaction ", req.txn_id(),
                       " is already committing; it can no longer be rolled back")));
    } else {
      ctx->waiters.push_back(std::move(reply));
    }
  }
  for (auto& a : actions) a();
  if (actions.empty()) Dispatch(ctx, core::RollbackRequested{});
}

uint64_t TransactionDriver::StartCall(TxnContext& ctx, uint32_t branch) {
  const uint64_t call = ctx.next_call_number++;
  ctx.call_in_flight[branch] = call;
  return call;
}

void TransactionDriver::EndCall(TxnContext& ctx, uint32_t branch, uint64_t call) {
  std::lock_guard<std::mutex> lock(ctx.mu);
  auto it = ctx.call_in_flight.find(branch);
  if (it != ctx.call_in_flight.end() && it->second == call) ctx.call_in_flight.erase(it);
}

namespace {

// Whether a transaction may be on a deadlock cycle now: it has no decision and a branch that
// still runs statements or waits for its vote. A transaction whose branches have all voted waits
// for nothing.
bool Executing(const core::TwoPhaseTxn& txn) {
  if (txn.state == core::TxnState::kActive) return true;
  if (txn.state != core::TxnState::kPreparing) return false;
  for (const auto& b : txn.branches) {
    if (b.state == core::BranchState::kPreparing || b.state == core::BranchState::kActive) {
      return true;
    }
  }
  return false;
}

}  // namespace

std::optional<core::MemberStanding> TransactionDriver::DeadlockStanding(
    const core::WaitEdge& edge) {
  auto ctx = FindActive(edge.waiter);
  if (ctx == nullptr) return std::nullopt;
  std::lock_guard<std::mutex> lock(ctx->mu);
  bool call_waits = false;
  for (uint32_t b = 0; b < ctx->txn.branches.size(); ++b) {
    if (ctx->txn.branches[b].participant != edge.participant) continue;
    auto it = ctx->call_in_flight.find(b);
    call_waits =
        edge.waiter_call != 0 && it != ctx->call_in_flight.end() && it->second == edge.waiter_call;
  }
  return core::MemberStanding{call_waits && Executing(ctx->txn), ctx->start_order};
}

bool TransactionDriver::AbortDeadlockVictim(const std::string& txn_id, const std::string& reason) {
  auto ctx = FindActive(txn_id);
  if (ctx == nullptr) return false;
  std::vector<Action> actions;
  {
    std::lock_guard<std::mutex> lock(ctx->mu);
    if (!Executing(ctx->txn)) return false;
    common::LogWarning(absl::StrCat("txn=", txn_id, " aborted: ", reason));
    actions = Plan(ctx, core::Step(ctx->txn, core::RollbackRequested{reason}));
  }
  for (auto& a : actions) a();
  return true;
}

absl::StatusOr<v1::Transaction> TransactionDriver::GetTransaction(const std::string& txn_id,
                                                                  const std::string& principal) {
  TXN_RETURN_IF_ERROR(ValidateTxnId(txn_id));
  std::optional<v1::Transaction> running;
  if (auto ctx = FindActive(txn_id)) {
    std::lock_guard<std::mutex> lock(ctx->mu);
    running = Snapshot(*ctx);
  } else if (std::optional<v1::Transaction> saga = sagas_->Find(txn_id)) {
    running = std::move(saga);
  } else if (std::optional<v1::Transaction> t = three_phase_->Find(txn_id)) {
    running = std::move(t);
  }
  if (!running) return LookupFinishedFor(txn_id, principal);
  if (!OwnedBy(running->owner(), principal)) return NotKnown(txn_id);
  return *running;
}

absl::Status TransactionDriver::ReportDecision(const v1::ReportDecisionRequest& req) {
  TXN_RETURN_IF_ERROR(ValidateTxnId(req.txn_id()));
  if (req.decision() != v1::DECISION_COMMIT && req.decision() != v1::DECISION_ABORT) {
    return absl::InvalidArgumentError("decision must be DECISION_COMMIT or DECISION_ABORT");
  }
  absl::Status reported = three_phase_->Report(
      req.txn_id(), req.participant(),
      req.decision() == v1::DECISION_COMMIT ? core::Decision::kCommit : core::Decision::kAbort);
  if (reported.code() != absl::StatusCode::kNotFound) return reported;
  // Not running here: finished already (its decision stands), or not a 3PC transaction.
  absl::StatusOr<v1::Transaction> finished = LookupFinished(req.txn_id());
  if (finished.ok() && finished->protocol() == v1::PROTOCOL_THREE_PHASE) return absl::OkStatus();
  return absl::NotFoundError(
      absl::StrCat("transaction ", req.txn_id(), " is not a three-phase commit known here"));
}

absl::StatusOr<v1::Decision> TransactionDriver::GetDecision(const std::string& txn_id) {
  TXN_RETURN_IF_ERROR(ValidateTxnId(txn_id));
  const std::optional<common::TxnIdParts> parts = common::ParseTxnId(txn_id);
  if (parts->node != options_.node_id) {
    return absl::NotFoundError(absl::StrCat("transaction ", txn_id,
                                            " was not started by this coordinator (node ",
                                            options_.node_id, ")"));
  }
  if (auto ctx = FindActive(txn_id)) {
    std::lock_guard<std::mutex> lock(ctx->mu);
    switch (core::DecisionOf(ctx->txn)) {
      case core::Decision::kCommit:
        return v1::DECISION_COMMIT;
      case core::Decision::kAbort:
        return v1::DECISION_ABORT;
      case core::Decision::kNone:
        break;
    }
    if (ctx->txn.state != core::TxnState::kInDoubt) return v1::DECISION_UNKNOWN;
    // IN_DOUBT after a failed decision write: only the log can tell, and it is
    // read below.
  }
  {
    // Finished here: what this process did is the answer, even if the log write saying so (an
    // unsynced ABORT after a last resource aborted) has not landed yet.
    std::lock_guard<std::mutex> lock(mu_);
    auto it = finished_.find(txn_id);
    if (it != finished_.end() && it->second.state() == v1::TXN_STATE_ABORTED) {
      return v1::DECISION_ABORT;
    }
  }
  TXN_ASSIGN_OR_RETURN(std::optional<log::DecisionRecord> record, deps_.log->Get(txn_id));
  if (record) {
    if (record->decision() == v1::DECISION_COMMIT) return v1::DECISION_COMMIT;
    if (record->decision() == v1::DECISION_ABORT) return v1::DECISION_ABORT;
    return v1::DECISION_UNKNOWN;  // committing_last: the last resource decides
  }
  if (auto ctx = FindActive(txn_id)) return v1::DECISION_UNKNOWN;  // failed write, still in doubt
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = finished_.find(txn_id);
    if (it != finished_.end() && it->second.state() == v1::TXN_STATE_COMMITTED) {
      return v1::DECISION_COMMIT;  // one-phase or read-only: nothing is
                                   // prepared anyway
    }
  }
  // Not in this log. An id this log's incarnation made and never decided COMMIT is aborted
  // (presumed abort); another incarnation's may have been committed by a log that is gone.
  if (!MadeByThisLog(*parts)) return UnknownIncarnation(txn_id, parts->incarnation);
  return v1::DECISION_ABORT;
}

bool TransactionDriver::MadeByThisLog(const common::TxnIdParts& id) const {
  return id.node == options_.node_id && (id.incarnation == incarnation_ ||
                                         (id.incarnation.empty() && deps_.log->made_legacy_ids()));
}

v1::Decision TransactionDriver::UnknownIncarnation(const std::string& txn_id,
                                                   const std::string& its_incarnation) {
  if (other_incarnations_.NoteAsked(txn_id, its_incarnation, deps_.clock->NowUnixMs())) {
    common::LogWarning(absl::StrCat(
        "txn=", txn_id, " an agent asked for the decision of a transaction of ",
        its_incarnation.empty() ? std::string("an earlier incarnation")
                                : absl::StrCat("incarnation ", its_incarnation),
        " of node ", options_.node_id, "; this data folder is incarnation ", incarnation_,
        " and cannot know it: answering UNKNOWN, its branches stay prepared until an operator "
        "resolves it (txctl list --state in-doubt)"));
  }
  return v1::DECISION_UNKNOWN;
}

absl::StatusOr<int> TransactionDriver::CollectGarbage() {
  const int64_t cutoff = deps_.clock->NowUnixMs() - options_.retention_ms;
  std::vector<std::string> expired;
  TXN_RETURN_IF_ERROR(deps_.log->ForEach([&](const log::DecisionRecord& r) {
    if (r.state() == v1::TXN_STATE_HEURISTIC_MIXED ||
        r.state() == v1::TXN_STATE_FAILED_COMPENSATION) {
      return true;  // kept for an operator
    }
    if (r.done() && r.done_unix_ms() < cutoff) expired.push_back(r.txn_id());
    return true;
  }));
  for (const auto& id : expired) TXN_RETURN_IF_ERROR(deps_.log->Delete(id));
  return static_cast<int>(expired.size());
}

namespace {

// Transaction ids in the order they were made: node and incarnation, then epoch and sequence as
// numbers.
struct TxnIdOrder {
  static std::tuple<std::string, std::string, uint64_t, uint64_t> Key(const std::string& id) {
    std::optional<common::TxnIdParts> p = common::ParseTxnId(id);
    if (!p) return {id, "", 0, 0};
    return {p->node, p->incarnation, p->epoch, p->seq};
  }
  bool operator()(const std::string& a, const std::string& b) const { return Key(a) < Key(b); }
};

constexpr uint32_t kDefaultListLimit = 100;
constexpr uint32_t kMaxListLimit = 1000;

// IN_DOUBT in a filter also selects transactions with a branch left in doubt.
bool MatchesFilter(const v1::Transaction& t, const std::set<int>& states) {
  if (states.empty() || states.count(t.state())) return true;
  if (!states.count(v1::TXN_STATE_IN_DOUBT)) return false;
  for (const auto& b : t.branches()) {
    if (b.state() == v1::BRANCH_STATE_IN_DOUBT) return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<v1::ListTransactionsResponse> TransactionDriver::ListTransactions(
    const v1::ListTransactionsRequest& req) {
  std::set<int> states;
  for (int st : req.states()) {
    if (st <= v1::TXN_STATE_UNSPECIFIED || !v1::TxnState_IsValid(st)) {
      return absl::InvalidArgumentError(absl::StrCat("states has an unknown state (", st, ")"));
    }
    states.insert(st);
  }
  if (req.limit() > kMaxListLimit) {
    return absl::InvalidArgumentError(absl::StrCat("limit must be at most ", kMaxListLimit));
  }
  const uint32_t limit = req.limit() == 0 ? kDefaultListLimit : req.limit();
  if (!req.page_token().empty()) TXN_RETURN_IF_ERROR(ValidateTxnId(req.page_token()));

  // Later sources are more current: the log, then finished ones in memory, then live ones.
  std::map<std::string, v1::Transaction, TxnIdOrder> all;
  TXN_RETURN_IF_ERROR(deps_.log->ForEach([&](const log::DecisionRecord& r) {
    all[r.txn_id()] = TransactionOf(r);
    return true;
  }));
  std::vector<std::shared_ptr<TxnContext>> live;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, t] : finished_) all[id] = t;
    for (const auto& [id, ctx] : active_) live.push_back(ctx);
  }
  for (const auto& ctx : live) {
    std::lock_guard<std::mutex> lock(ctx->mu);
    all[ctx->txn.id] = Snapshot(*ctx);
  }
  for (v1::Transaction& t : sagas_->Snapshot()) all[t.txn_id()] = std::move(t);
  for (v1::Transaction& t : three_phase_->Snapshot()) all[t.txn_id()] = std::move(t);
  for (v1::Transaction& t : other_incarnations_.Snapshot()) all.emplace(t.txn_id(), std::move(t));

  v1::ListTransactionsResponse resp;
  auto it = req.page_token().empty() ? all.begin() : all.upper_bound(req.page_token());
  for (; it != all.end(); ++it) {
    if (!MatchesFilter(it->second, states)) continue;
    if (resp.transactions_size() == static_cast<int>(limit)) {
      resp.set_next_page_token(resp.transactions(resp.transactions_size() - 1).txn_id());
      break;
    }
    *resp.add_transactions() = it->second;
  }
  return resp;
}

void TransactionDriver::ResolveTransaction(const v1::ResolveTransactionRequest& req,
                                           OutcomeReply reply) {
  if (absl::Status s = ValidateTxnId(req.txn_id()); !s.ok()) return reply(s);
  core::Decision decision;
  switch (req.decision()) {
    case v1::DECISION_COMMIT:
      decision = core::Decision::kCommit;
      break;
    case v1::DECISION_ABORT:
      decision = core::Decision::kAbort;
      break;
    default:
      return reply(
          absl::InvalidArgumentError("decision must be DECISION_COMMIT or DECISION_ABORT"));
  }
  const char* name = decision == core::Decision::kCommit ? "COMMIT" : "ABORT";
  if (absl::Status s = RefuseSaga(req.txn_id(), "ResolveTransaction", ""); !s.ok()) return reply(s);
  auto ctx = FindActive(req.txn_id());
  if (ctx == nullptr) {
    absl::StatusOr<v1::Transaction> finished = LookupFinished(req.txn_id());
    if (finished.ok()) {
      return reply(absl::FailedPreconditionError(
          absl::StrCat("cannot resolve transaction ", req.txn_id(), " as ", name, ": it is ",
                       v1::TxnState_Name(finished->state()), " (finished)")));
    }
    if (finished.status().code() != absl::StatusCode::kNotFound) return reply(finished.status());
    const std::optional<common::TxnIdParts> parts = common::ParseTxnId(req.txn_id());
    if (parts->node == options_.node_id && !MadeByThisLog(*parts)) {
      if (other_incarnations_.Contains(req.txn_id())) {
        return ResolveOtherIncarnation(req.txn_id(), req.decision(), std::move(reply));
      }
      return reply(absl::NotFoundError(absl::StrCat(
          "transaction ", req.txn_id(),
          " is of another incarnation of this node and no agent has asked about it since this "
          "coordinator started (txctl list --state in-doubt shows those that were)")));
    }
    return reply(absl::NotFoundError(
        absl::StrCat("transaction ", req.txn_id(),
                     " is not known: it was never decided COMMIT, so it is aborted (presumed "
                     "abort) and agents learn ABORT when they ask")));
  }
  std::vector<Action> actions;
  v1::Outcome outcome;
  {
    std::lock_guard<std::mutex> lock(ctx->mu);
    if (std::optional<std::string> why = core::CheckResolve(ctx->txn, decision)) {
      return reply(absl::FailedPreconditionError(
          absl::StrCat("cannot resolve transaction ", req.txn_id(), " as ", name, ": ", *why)));
    }
    common::LogWarning(absl::StrCat("txn=", req.txn_id(), " resolved as ", name,
                                    " by an operator (state ", core::TxnStateName(ctx->txn.state),
                                    ")"));
    actions = Plan(ctx, core::Step(ctx->txn, core::OperatorResolved{decision}));
    outcome = OutcomeOf(ctx->txn);
  }
  for (auto& a : actions) a();
  reply(outcome);
}

void TransactionDriver::ResolveOtherIncarnation(const std::string& txn_id, v1::Decision decision,
                                                OutcomeReply reply) {
  const bool commit = decision == v1::DECISION_COMMIT;
  // Two operators resolving the same id at once: the second must see the first's record, never
  // overwrite a decision someone was already told.
  std::lock_guard<std::mutex> serialize(resolve_other_mu_);
  absl::StatusOr<std::optional<log::DecisionRecord>> existing = deps_.log->Get(txn_id);
  if (!existing.ok()) return reply(existing.status());
  if (existing->has_value()) {
    return reply(absl::FailedPreconditionError(
        absl::StrCat("transaction ", txn_id, " was already resolved: ", (*existing)->reason())));
  }
  log::DecisionRecord record;
  record.set_txn_id(txn_id);
  record.set_protocol(v1::PROTOCOL_TWO_PHASE);
  record.set_decision(decision);
  record.set_state(commit ? v1::TXN_STATE_COMMITTED : v1::TXN_STATE_ABORTED);
  record.set_reason(absl::StrCat("resolved as ", commit ? "COMMIT" : "ABORT",
                                 " by an operator: a transaction of another incarnation of node ",
                                 options_.node_id,
                                 "; agents holding its branches learn it when "
                                 "they next ask"));
  const int64_t now = deps_.clock->NowUnixMs();
  record.set_created_unix_ms(now);
  record.set_decided_unix_ms(now);
  // Done at once: no branch list is known here to drive. Agents ask on every reconcile pass, so
  // they learn it well within the record's retention; after that they would get UNKNOWN again.
  record.set_done(true);
  record.set_done_unix_ms(now);
  if (absl::Status s = deps_.log->Write({record}, /*sync=*/true); !s.ok()) return reply(s);
  other_incarnations_.Forget(txn_id);
  common::LogWarning(absl::StrCat("txn=", txn_id, " ", record.reason()));
  v1::Outcome outcome;
  outcome.set_txn_id(txn_id);
  outcome.set_state(static_cast<v1::TxnState>(record.state()));
  outcome.set_reason(record.reason());
  reply(outcome);
}

std::map<v1::TxnState, uint64_t> TransactionDriver::ActiveByState() const {
  std::vector<std::shared_ptr<TxnContext>> live;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, ctx] : active_) live.push_back(ctx);
  }
  std::map<v1::TxnState, uint64_t> counts;
  for (const auto& ctx : live) {
    std::lock_guard<std::mutex> lock(ctx->mu);
    ++counts[TransactionOf(ctx->txn, ctx->protocol, ctx->times).state()];
  }
  for (const v1::Transaction& t : sagas_->Snapshot()) ++counts[t.state()];
  for (const v1::Transaction& t : three_phase_->Snapshot()) ++counts[t.state()];
  return counts;
}

void TransactionDriver::RegisterMetrics(common::MetricsRegistry* registry) {
  registry->AddRefresher(Guard([this, registry] {
    std::map<v1::TxnState, uint64_t> counts = ActiveByState();
    for (v1::TxnState st : {v1::TXN_STATE_ACTIVE, v1::TXN_STATE_PREPARING, v1::TXN_STATE_COMMITTING,
                            v1::TXN_STATE_ABORTING, v1::TXN_STATE_IN_DOUBT}) {
      registry
          ->GetGauge("txcoord_active_transactions", "Transactions in memory now, by state.",
                     {{"state", StateLabel(st)}})
          ->Set(static_cast<double>(counts[st]));
    }
    registry
        ->GetGauge("txcoord_in_doubt_transactions",
                   "Transactions whose outcome is not known yet (see txctl list --state in-doubt).")
        ->Set(static_cast<double>(counts[v1::TXN_STATE_IN_DOUBT]));
    registry
        ->GetGauge("txcoord_other_incarnation_transactions",
                   "Transactions of another incarnation of this node (a lost or replaced data "
                   "folder) that agents asked about: outcome unknown here, branches kept "
                   "prepared until resolved (txctl list --state in-doubt).")
        ->Set(static_cast<double>(other_incarnations_.size()));
    registry
        ->GetGauge("txcoord_accepting",
                   "1 while new transactions are accepted; 0 while the decision log fails.")
        ->Set(accepting() ? 1 : 0);
  }));
}

absl::StatusOr<v1::Stats> TransactionDriver::GetStats() {
  v1::Stats stats;
  stats.set_node_id(options_.node_id);
  stats.set_incarnation(incarnation_);
  stats.set_started_unix_ms(started_unix_ms_);
  stats.set_accepting(accepting());
  uint64_t records = 0, heuristic = 0;
  TXN_RETURN_IF_ERROR(deps_.log->ForEach([&](const log::DecisionRecord& r) {
    ++records;
    if (r.state() == v1::TXN_STATE_HEURISTIC_MIXED ||
        r.state() == v1::TXN_STATE_FAILED_COMPENSATION) {
      ++heuristic;
    }
    return true;
  }));
  stats.set_log_records(records);
  stats.set_heuristic_records(heuristic);
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [state, n] : finished_counts_) {
      (*stats.mutable_finished_by_state())[v1::TxnState_Name(state)] = n;
    }
  }
  for (const auto& [state, n] : ActiveByState()) {
    (*stats.mutable_active_by_state())[v1::TxnState_Name(state)] = n;
  }
  return stats;
}

}  // namespace txn::driver
