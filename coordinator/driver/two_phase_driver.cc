// TwoPhaseDriver: dispatch, recovery and the deadlock detector's hooks (the core's effects are
// carried out in two_phase_effects.cc).
#include "coordinator/driver/two_phase_driver.h"

#include "absl/strings/str_cat.h"
#include "common/failpoint.h"
#include "common/logging.h"

namespace txn::driver {

template class ProtocolDriverBase<TwoPhaseDriver, TwoPhaseContext>;

TwoPhaseDriver::TwoPhaseDriver(ProtocolDriverDeps deps) : ProtocolDriverBase(std::move(deps)) {}

TwoPhaseDriver::~TwoPhaseDriver() { lifetime_.Close(); }

v1::Transaction TwoPhaseDriver::ShownAs(const TwoPhaseContext& ctx) {
  v1::Transaction t = TransactionOf(ctx.txn, ctx.protocol, ctx.times);
  t.set_owner(ctx.identity.owner);
  return t;
}

std::optional<v1::Outcome> TwoPhaseDriver::AnsweredWith(const TwoPhaseContext& ctx) {
  if (!ctx.txn.client_answered) return std::nullopt;
  return OutcomeOf(ctx.txn);
}

void TwoPhaseDriver::Dispatch(const std::shared_ptr<TwoPhaseContext>& ctx,
                              const core::TwoPhaseEvent& event) {
  PlanThenAct(ctx->mu, [&] {
    if (std::holds_alternative<core::CommitRequested>(event) && !ctx->since_commit_requested) {
      ctx->since_commit_requested.emplace();
    }
    return Plan(ctx, core::Step(ctx->txn, event));
  });
}

void TwoPhaseDriver::Resume(const log::DecisionRecord& r, int64_t prepare_timeout_ms) {
  auto ctx = std::make_shared<TwoPhaseContext>();
  ctx->txn = TxnFromRecord(r);
  ctx->protocol = static_cast<v1::Protocol>(r.protocol());
  ctx->times = {r.created_unix_ms(), r.decided_unix_ms()};
  ctx->prepare_timeout_ms = prepare_timeout_ms;
  // The completion write rewrites the whole record: without these a restart after it would
  // no longer know the key, and a client's retry would run the transaction again.
  ctx->identity = RequestIdentity::FromRecord(r);
  Insert(ctx);
  std::vector<Action> actions;
  {
    std::lock_guard<std::mutex> lock(ctx->mu);
    if (ctx->txn.committing_last) {
      common::LogInfo(
          absl::StrCat("txn=", ctx->txn.id, " recovery: last resource was committing, asking it"));
      actions = Plan(ctx, core::ResumeCommittingLast(ctx->txn));
    } else {
      common::LogInfo(absl::StrCat("txn=", ctx->txn.id, " recovery: COMMIT logged, re-sending"));
      actions = Plan(ctx, core::ResumeCommit(ctx->txn));
    }
  }
  (void)common::Failpoint("coord.recovery");
  for (auto& a : actions) a();
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

std::optional<core::MemberStanding> TwoPhaseDriver::DeadlockStanding(
    const core::WaitEdge& edge) const {
  std::shared_ptr<TwoPhaseContext> ctx = active_.Find(edge.waiter);
  if (ctx == nullptr) return std::nullopt;
  return StandingOf(*ctx, edge, Executing);
}

bool TwoPhaseDriver::AbortDeadlockVictim(const std::string& txn_id, const std::string& reason) {
  std::shared_ptr<TwoPhaseContext> ctx = active_.Find(txn_id);
  if (ctx == nullptr) return false;
  return AbortVictim(*ctx, txn_id, reason, Executing, [&] {
    return Plan(ctx, core::Step(ctx->txn, core::RollbackRequested{reason}));
  });
}

}  // namespace txn::driver
