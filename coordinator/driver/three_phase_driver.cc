#include "coordinator/driver/three_phase_driver.h"

#include <algorithm>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/failpoint.h"
#include "common/logging.h"
#include "protocol/three_phase_wire.h"
#include "coordinator/driver/proto_mapping.h"

namespace txn::driver {

struct ThreePhaseContext {
  std::mutex mu;
  core::ThreePhaseTxn txn ABSL_GUARDED_BY(mu);
  std::vector<v1::Branch> branches;  // the request's, fixed (empty after a restart)
  std::vector<std::string> native_ids ABSL_GUARDED_BY(mu);
  std::vector<OutcomeReply> waiters ABSL_GUARDED_BY(mu);
  int64_t created_unix_ms = 0;
  int64_t decided_unix_ms ABSL_GUARDED_BY(mu) = 0;
  int ack_timers ABSL_GUARDED_BY(mu) = 0;  // how many AckTimers so far: their backoff
  RequestIdentity identity;
  uint64_t start_order = 0;  // 0 after a restart: a resumed transaction is past its vote phase
  // Prepare calls in flight, by branch: the call_number sent (unique within the transaction),
  // which the agent echoes in the lock waits it reports.
  CallsInFlight calls ABSL_GUARDED_BY(mu);
};

template class ProtocolDriverBase<ThreePhaseDriver, ThreePhaseContext>;

namespace {

v1::Decision DecisionProto(core::Decision d) {
  switch (d) {
    case core::Decision::kCommit:
      return v1::DECISION_COMMIT;
    case core::Decision::kAbort:
      return v1::DECISION_ABORT;
    case core::Decision::kNone:
      return v1::DECISION_UNSPECIFIED;
  }
  return v1::DECISION_UNSPECIFIED;
}

}  // namespace

ThreePhaseDriver::ThreePhaseDriver(ProtocolDriverDeps deps, ThreePhaseTimeouts timeouts)
    : ProtocolDriverBase(std::move(deps)), timeouts_(timeouts) {}

ThreePhaseDriver::~ThreePhaseDriver() { lifetime_.Close(); }

void ThreePhaseDriver::Start(const std::string& txn_id, uint64_t start_order,
                             const v1::RunRequest& req, RequestIdentity identity,
                             OutcomeReply reply) {
  auto ctx = std::make_shared<Context>();
  ctx->start_order = start_order;
  ctx->branches.assign(req.branches().begin(), req.branches().end());
  ctx->identity = std::move(identity);
  ctx->created_unix_ms = deps_.clock->NowUnixMs();
  {
    std::lock_guard<std::mutex> lock(ctx->mu);
    ctx->txn.id = txn_id;
    for (const auto& b : req.branches()) {
      ctx->txn.branches.push_back(core::BranchStatus{.participant = b.participant()});
    }
    ctx->native_ids.resize(req.branches_size());
    ctx->waiters.push_back(std::move(reply));
  }
  active_.Insert(txn_id, ctx);
  Dispatch(ctx, core::CommitRequested{req.wait_for_completion()});
}

void ThreePhaseDriver::Resume(const log::DecisionRecord& record) {
  auto ctx = std::make_shared<Context>();
  ctx->identity = RequestIdentity::FromRecord(record);
  ctx->created_unix_ms = record.created_unix_ms();
  std::vector<Action> actions;
  {
    std::lock_guard<std::mutex> lock(ctx->mu);
    ctx->txn.id = record.txn_id();
    ctx->decided_unix_ms = record.decided_unix_ms();
    for (const auto& b : record.branches()) {
      ctx->txn.branches.push_back(
          core::BranchStatus{.participant = b.participant(),
                             .state = static_cast<core::BranchState>(b.state()),
                             .reason = b.reason()});
      ctx->native_ids.push_back(b.native_id());
    }
    ctx->txn.reason = record.reason();
    active_.Insert(ctx->txn.id, ctx);
    core::Decision logged = record.decision() == v1::DECISION_COMMIT  ? core::Decision::kCommit
                            : record.decision() == v1::DECISION_ABORT ? core::Decision::kAbort
                                                                      : core::Decision::kNone;
    common::LogInfo(absl::StrCat("txn=", ctx->txn.id, " recovery: three-phase, ",
                                 logged == core::Decision::kNone
                                     ? "START only: running a termination round"
                                     : "decided: re-sending the decision"));
    actions = Plan(ctx, core::Resume(ctx->txn, logged, record.three_phase_max_round()));
  }
  for (auto& a : actions) a();
}

v1::Transaction ThreePhaseDriver::ShownAs(const ThreePhaseContext& ctx) {
  v1::Transaction t = TransactionOf(ctx.txn, ctx.created_unix_ms, ctx.decided_unix_ms);
  t.set_owner(ctx.identity.owner);
  return t;
}

std::optional<v1::Outcome> ThreePhaseDriver::AnsweredWith(const ThreePhaseContext& ctx) {
  return ctx.txn.client_answered ? std::optional(OutcomeOf(ctx.txn)) : std::nullopt;
}

absl::Status ThreePhaseDriver::Report(const std::string& txn_id, const std::string& participant,
                                      core::Decision d) {
  std::shared_ptr<Context> ctx = active_.Find(txn_id);
  if (ctx == nullptr) {
    return absl::NotFoundError(absl::StrCat("transaction ", txn_id, " is not running here"));
  }
  {
    std::lock_guard<std::mutex> lock(ctx->mu);
    const auto& branches = ctx->txn.branches;
    if (std::none_of(branches.begin(), branches.end(),
                     [&](const core::BranchStatus& b) { return b.participant == participant; })) {
      return absl::InvalidArgumentError(
          absl::StrCat("participant '", participant, "' is not a member of transaction ", txn_id));
    }
  }
  Dispatch(ctx, core::DecisionReported{d, participant});
  return absl::OkStatus();
}

namespace {

// The vote phase: START written, no PRE_COMMIT sent, no decision, and a branch that has not
// voted yet (one whose branches have all voted waits for nothing).
bool InVotePhase(const core::ThreePhaseTxn& txn) {
  if (txn.state != core::TxnState::kPreparing || !txn.start_logged) return false;
  return std::any_of(txn.branches.begin(), txn.branches.end(), [](const core::BranchStatus& b) {
    return b.state == core::BranchState::kPreparing || b.state == core::BranchState::kActive;
  });
}

}  // namespace

std::optional<core::MemberStanding> ThreePhaseDriver::DeadlockStanding(
    const core::WaitEdge& edge) const {
  std::shared_ptr<Context> ctx = active_.Find(edge.waiter);
  if (ctx == nullptr) return std::nullopt;
  return StandingOf(*ctx, edge, InVotePhase);
}

bool ThreePhaseDriver::AbortDeadlockVictim(const std::string& txn_id, const std::string& reason) {
  std::shared_ptr<Context> ctx = active_.Find(txn_id);
  if (ctx == nullptr) return false;
  // Legal in the vote phase only: the ABORT is logged before any rollback goes out.
  return AbortVictim(*ctx, txn_id, reason, InVotePhase, [&] {
    return Plan(ctx, core::Step(ctx->txn, core::RollbackRequested{reason}));
  });
}

void ThreePhaseDriver::Dispatch(const std::shared_ptr<Context>& ctx,
                                const core::ThreePhaseEvent& event) {
  PlanThenAct(ctx->mu, [&] { return Plan(ctx, core::Step(ctx->txn, event)); });
}

log::DecisionRecord ThreePhaseDriver::RecordOf(const Context& ctx, v1::Decision decision) const {
  const core::ThreePhaseTxn& txn = ctx.txn;
  log::DecisionRecord r;
  r.set_txn_id(txn.id);
  r.set_protocol(v1::PROTOCOL_THREE_PHASE);
  r.set_decision(decision);
  r.set_state(static_cast<int>(txn.state));
  r.set_reason(txn.reason);
  r.set_created_unix_ms(ctx.created_unix_ms);
  r.set_decided_unix_ms(ctx.decided_unix_ms);
  ctx.identity.WriteTo(&r);
  r.set_three_phase_max_round(txn.max_round);
  for (size_t i = 0; i < txn.branches.size(); ++i) {
    auto* e = r.add_branches();
    e->set_participant(txn.branches[i].participant);
    e->set_state(static_cast<int>(txn.branches[i].state));
    e->set_reason(txn.branches[i].reason);
    if (i < ctx.native_ids.size()) e->set_native_id(ctx.native_ids[i]);
  }
  return r;
}

void ThreePhaseDriver::Write(const std::shared_ptr<Context>& ctx, log::DecisionRecord record,
                             std::function<void(absl::Status)> done) {
  deps_.group_log->Append(std::move(record), /*sync=*/true,
                          lifetime_.Wrap(std::function<void(absl::Status)>(
                              [this, done = std::move(done)](absl::Status s) {
                                if (!s.ok() && deps_.on_log_failure) deps_.on_log_failure(s);
                                done(std::move(s));
                              })));
}

std::vector<Action> ThreePhaseDriver::Plan(
    const std::shared_ptr<Context>& ctx, const std::vector<core::ThreePhaseEffect>& effects) {
  std::vector<Action> actions;
  core::ThreePhaseTxn& txn = ctx->txn;
  auto channel = [this, &txn](uint32_t b) {
    return deps_.participants->Find(txn.branches[b].participant);
  };
  auto ref = [&txn](uint32_t b) {
    v1::BranchRef r;
    r.set_txn_id(txn.id);
    r.set_branch(b);
    return r;
  };
  std::vector<std::string> members;
  for (const auto& br : txn.branches) members.push_back(br.participant);
  for (const auto& effect : effects) {
    std::visit(
        [&](const auto& e) {
          using E = std::decay_t<decltype(e)>;
          if constexpr (std::is_same_v<E, core::LogStart>) {
            // Records are queued while the lock is held, so they reach the log in the order the
            // machine asked for them (a ballot record must never land after the decision).
            Write(ctx, RecordOf(*ctx, v1::DECISION_UNSPECIFIED), [this, ctx](absl::Status s) {
              if (!s.ok()) return Dispatch(ctx, core::StartLogFailed{std::string(s.message())});
              Dispatch(ctx, core::StartLogged{});
            });
          } else if constexpr (std::is_same_v<E, core::SendPrepare>) {
            v1::PrepareBranchRequest req;
            *req.mutable_ref() = ref(e.branch);
            if (e.branch < ctx->branches.size()) {
              *req.mutable_operations() = ctx->branches[e.branch].operations();
            }
            req.set_begin(true);
            req.set_first_send(true);  // the core sends each branch's Prepare once
            for (const auto& m : members) req.add_three_phase_members(m);
            const uint64_t call = ctx->calls.Start(e.branch);
            req.set_call_number(call);
            transport::ParticipantChannel* ch = channel(e.branch);
            const uint32_t b = e.branch;
            auto done = lifetime_.Wrap(std::function<void(
                                           absl::StatusOr<v1::PrepareBranchResponse>)>(
                [this, ctx, b, call](absl::StatusOr<v1::PrepareBranchResponse> r) {
                  {
                    std::lock_guard<std::mutex> lock(ctx->mu);
                    ctx->calls.End(b, call);
                    if (r.ok() && b < ctx->native_ids.size()) ctx->native_ids[b] = r->native_id();
                  }
                  if (!r.ok()) {
                    return Dispatch(ctx, core::PrepareFailed{b, std::string(r.status().message())});
                  }
                  Dispatch(ctx,
                           core::VoteReceived{b, VoteOf(r->vote()), r->reason(), r->native_id()});
                }));
            const int64_t timeout = timeouts_.prepare_timeout_ms;
            actions.push_back(
                [ch, req = std::move(req), done, timeout] { ch->Prepare(req, timeout, done); });
          } else if constexpr (std::is_same_v<E, core::StartPrepareTimer>) {
            actions.push_back([this, ctx] {
              Later(timeouts_.prepare_timeout_ms, 0,
                    [this, ctx] { Dispatch(ctx, core::PrepareTimedOut{}); });
            });
          } else if constexpr (std::is_same_v<E, core::SendPreDecide>) {
            v1::PreDecideRequest req;
            *req.mutable_ref() = ref(e.branch);
            req.set_participant(txn.branches[e.branch].participant);
            *req.mutable_ballot() = protocol::BallotToProto(e.ballot);
            req.set_direction(e.direction == protocol::Direction::kPreCommit
                                  ? v1::PRE_DECISION_PRE_COMMIT
                                  : v1::PRE_DECISION_PRE_ABORT);
            transport::ParticipantChannel* ch = channel(e.branch);
            const uint32_t b = e.branch;
            const protocol::Ballot ballot = e.ballot;
            auto done = lifetime_.Wrap(std::function<void(absl::StatusOr<v1::TerminationReply>)>(
                [this, ctx, b, ballot](absl::StatusOr<v1::TerminationReply> r) {
                  if (!r.ok()) return;  // the ACK timer starts a termination round
                  Dispatch(ctx, core::PreDecideAnswered{b, ballot, protocol::ReplyFromProto(*r)});
                }));
            const int64_t timeout = deps_.rpc_timeout_ms;
            const bool b0 = e.ballot == protocol::InitialBallot();
            actions.push_back([ch, req = std::move(req), done, timeout, b0] {
              ch->PreDecide(req, timeout, done);
              // A crash here: PRE_COMMIT(B0) went out to some; a restart (START only) runs a
              // termination round and never presumes abort.
              if (b0) (void)common::Failpoint("coord.after_precommit_sent");
            });
          } else if constexpr (std::is_same_v<E, core::StartAckTimer>) {
            const int attempt = ctx->ack_timers++;
            actions.push_back([this, ctx, attempt] {
              Later(timeouts_.termination_timeout_ms, attempt,
                    [this, ctx] { Dispatch(ctx, core::AckTimedOut{}); });
            });
          } else if constexpr (std::is_same_v<E, core::LogBallot>) {
            log::DecisionRecord record = RecordOf(*ctx, v1::DECISION_UNSPECIFIED);
            record.set_three_phase_max_round(e.round);
            const uint64_t round = e.round;
            common::LogInfo(absl::StrCat("txn=", txn.id, " termination round at ballot ", round,
                                         "/coordinator"));
            Write(ctx, std::move(record), [this, ctx, round](absl::Status s) {
              if (!s.ok()) return Dispatch(ctx, core::BallotLogFailed{std::string(s.message())});
              Dispatch(ctx, core::BallotLogged{round});
            });
          } else if constexpr (std::is_same_v<E, core::SendElect>) {
            v1::ElectRequest req;
            *req.mutable_ref() = ref(e.branch);
            req.set_participant(txn.branches[e.branch].participant);
            *req.mutable_ballot() = protocol::BallotToProto(e.ballot);
            transport::ParticipantChannel* ch = channel(e.branch);
            const uint32_t b = e.branch;
            const protocol::Ballot ballot = e.ballot;
            auto done = lifetime_.Wrap(std::function<void(absl::StatusOr<v1::TerminationReply>)>(
                [this, ctx, b, ballot](absl::StatusOr<v1::TerminationReply> r) {
                  if (!r.ok()) return;
                  Dispatch(ctx, core::ElectAnswered{b, ballot, protocol::ReplyFromProto(*r)});
                }));
            const int64_t timeout = deps_.rpc_timeout_ms;
            actions.push_back(
                [ch, req = std::move(req), done, timeout] { ch->Elect(req, timeout, done); });
          } else if constexpr (std::is_same_v<E, core::LogDecision>) {
            ctx->decided_unix_ms = deps_.clock->NowUnixMs();
            const v1::Decision decision = DecisionProto(e.decision);
            log::DecisionRecord record = RecordOf(*ctx, decision);
            const core::Decision d = e.decision;
            if (absl::Status fp = common::Failpoint("coord.before_decision_log"); !fp.ok()) {
              actions.push_back([this, ctx, msg = std::string(fp.message())] {
                Dispatch(ctx, core::DecisionLogFailed{msg});
              });
            } else {
              Write(ctx, std::move(record), [this, ctx, d](absl::Status s) {
                if (!s.ok()) {
                  return Dispatch(ctx, core::DecisionLogFailed{std::string(s.message())});
                }
                (void)common::Failpoint("coord.after_decision_log");
                Dispatch(ctx, core::DecisionLogged{d, false});
              });
            }
          } else if constexpr (std::is_same_v<E, core::SendCommit>) {
            v1::CommitBranchRequest req;
            *req.mutable_ref() = ref(e.branch);
            req.set_three_phase(true);
            if (e.branch < ctx->native_ids.size()) req.set_native_id(ctx->native_ids[e.branch]);
            transport::ParticipantChannel* ch = channel(e.branch);
            const uint32_t b = e.branch;
            auto done = lifetime_.Wrap(std::function<void(
                                           absl::StatusOr<v1::CommitBranchResponse>)>(
                [this, ctx, b](absl::StatusOr<v1::CommitBranchResponse> r) {
                  if (!r.ok()) {
                    return Dispatch(ctx, core::CommitFailed{b, std::string(r.status().message())});
                  }
                  Dispatch(ctx, core::CommitAcked{b, ResultOf(r->result()), r->reason()});
                }));
            const int64_t timeout = deps_.rpc_timeout_ms;
            actions.push_back([this, ch, req = std::move(req), done, timeout, attempt = e.attempt] {
              Later(0, attempt, [ch, req, done, timeout] {
                ch->Commit(req, timeout, done);
                (void)common::Failpoint("coord.after_commit_sent");
              });
            });
          } else if constexpr (std::is_same_v<E, core::SendRollback>) {
            v1::RollbackBranchRequest req;
            *req.mutable_ref() = ref(e.branch);
            req.set_three_phase(true);
            transport::ParticipantChannel* ch = channel(e.branch);
            const uint32_t b = e.branch;
            auto done =
                lifetime_.Wrap(std::function<void(absl::StatusOr<v1::RollbackBranchResponse>)>(
                    [this, ctx, b](absl::StatusOr<v1::RollbackBranchResponse> r) {
                      if (!r.ok()) {
                        return Dispatch(ctx,
                                        core::RollbackFailed{b, std::string(r.status().message())});
                      }
                      Dispatch(ctx, core::RollbackAcked{b, ResultOf(r->result()), r->reason()});
                    }));
            const int64_t timeout = deps_.rpc_timeout_ms;
            actions.push_back([this, ch, req = std::move(req), done, timeout, attempt = e.attempt] {
              Later(0, attempt, [ch, req, done, timeout] { ch->Rollback(req, timeout, done); });
            });
          } else if constexpr (std::is_same_v<E, core::LogCompletion>) {
            log::DecisionRecord record = RecordOf(*ctx, DecisionProto(core::DecisionOf(txn)));
            if (txn.state == core::TxnState::kCommitted ||
                txn.state == core::TxnState::kHeuristicMixed) {
              record.set_decision(v1::DECISION_COMMIT);
            }
            if (txn.state == core::TxnState::kAborted) record.set_decision(v1::DECISION_ABORT);
            if (txn.state != core::TxnState::kHeuristicMixed) {
              record.set_done(true);
              record.set_done_unix_ms(deps_.clock->NowUnixMs());
            }
            // As in 2PC: a heuristic outcome must survive a crash (it is kept for an operator);
            // a lost "done" only means recovery finishes the transaction once more.
            const bool sync = txn.state == core::TxnState::kHeuristicMixed;
            actions.push_back([this, record = std::move(record), sync]() mutable {
              deps_.group_log->Append(
                  std::move(record), sync,
                  lifetime_.Wrap(std::function<void(absl::Status)>([](absl::Status s) {
                    if (!s.ok()) {
                      common::LogWarning(absl::StrCat(
                          "marking a three-phase record done failed (recovery will finish it "
                          "again): ",
                          s.message()));
                    }
                  })));
            });
          } else if constexpr (std::is_same_v<E, core::ReplyToClient>) {
            actions.push_back(AnswerWaiters(&ctx->waiters, OutcomeOf(txn)));
          } else if constexpr (std::is_same_v<E, core::Forget>) {
            if (!txn.conflict.empty()) {
              common::LogError(absl::StrCat("txn=", txn.id, " ", txn.conflict));
            }
            v1::Transaction finished =
                TransactionOf(txn, ctx->created_unix_ms, ctx->decided_unix_ms);
            finished.set_owner(ctx->identity.owner);
            actions.push_back(Forget(std::move(finished)));
          }
        },
        effect);
  }
  return actions;
}

}  // namespace txn::driver
