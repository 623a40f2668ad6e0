// TwoPhaseDriver::Plan: the 2PC core's effects turned into actions (RPCs to agents, decision
// log writes, timers, answers), planned under the transaction's lock and run after it.
#include "coordinator/driver/two_phase_driver.h"

#include <algorithm>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "common/failpoint.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "coordinator/driver/transaction_driver_internal.h"

namespace txn::driver {

using driver_internal::Message;
using driver_internal::ObservePhase;
using driver_internal::ProtocolLabel;
using driver_internal::StateLabel;

std::vector<Action> TwoPhaseDriver::Plan(const std::shared_ptr<TwoPhaseContext>& ctx,
                                         const std::vector<core::TwoPhaseEffect>& effects) {
  std::vector<Action> actions;
  core::TwoPhaseTxn& txn = ctx->txn;
  auto channel_of = [&](uint32_t b) {
    return deps_.participants->Find(txn.branches[b].participant);
  };
  auto ref_of = [&](v1::BranchRef* ref, uint32_t b) {
    ref->set_txn_id(txn.id);
    ref->set_branch(b);
  };
  const int64_t rpc_timeout = deps_.rpc_timeout_ms;

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
            req.set_first_send(true);  // the core sends each branch's Prepare once
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
              Later(0, attempt, [ch, req, on_reply, t] { ch->CommitOnePhase(req, t, on_reply); });
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
                  Later(0, attempt, [ch, req, on_reply, rpc_timeout] {
                    // Armed with `error`: the agent counts as unreachable for commits, so
                    // decided transactions stay in doubt (deploy/recovery_benchmark.py).
                    if (absl::Status fp = common::Failpoint("coord.before_commit_sent");
                        !fp.ok()) {
                      return on_reply(fp);
                    }
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
              Later(0, attempt,
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
            auto write = [this, ctx, record = std::move(record), sync, logged, before,
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
                      if (deps_.on_log_failure) deps_.on_log_failure(s);
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
            };
            // A write that failed is tried again after the retry backoff.
            actions.push_back([this, write = std::move(write), attempt = e.attempt]() mutable {
              Later(0, attempt, std::move(write));
            });
          } else if constexpr (std::is_same_v<E, core::LogCompletion>) {
            const v1::Decision decision = core::DecisionOf(txn) == core::Decision::kCommit
                                              ? v1::DECISION_COMMIT
                                              : v1::DECISION_ABORT;
            log::DecisionRecord record = DecisionRecordOf(txn, ctx->protocol, ctx->times, decision);
            // A heuristic outcome must survive a crash: it is kept until an operator clears it.
            const bool sync = txn.state == core::TxnState::kHeuristicMixed;
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
            actions.push_back([this, ctx, record = std::move(record), sync]() mutable {
              deps_.group_log->Append(
                  std::move(record), sync, GuardReply<absl::Status>([this, ctx](absl::Status s) {
                    if (!s.ok()) {
                      // The database committed: the answer stands, only the key may be forgotten
                      // by a restart.
                      common::LogWarning(absl::StrCat("txn=", ctx->txn.id,
                                                      " marking the record done failed: ",
                                                      s.message()));
                    }
                  }));
            });
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
            actions.push_back(Forget(std::move(snapshot)));
          }
        },
        effect);
  }
  return actions;
}

}  // namespace txn::driver
