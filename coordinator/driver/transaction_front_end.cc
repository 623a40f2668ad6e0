// The client calls of TransactionDriver: Run (routed to 2PC, the saga driver or the 3PC driver),
// Begin / Execute / Commit / Rollback of interactive transactions, admission (fail closed, the
// in-flight limits, circuits, last resources) and idempotency keys.
#include "coordinator/driver/transaction_driver.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/status_macros.h"
#include "coordinator/driver/request_validation.h"
#include "coordinator/driver/transaction_driver_internal.h"

namespace txn::driver {

using driver_internal::NotKnown;
using driver_internal::OwnedBy;

namespace {
absl::Status FailedClosed() {
  return absl::UnavailableError(
      "the coordinator's decision log cannot be written; no new transactions until it can");
}
}  // namespace

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

void TransactionDriver::ReplyExisting(const std::string& txn_id, OutcomeReply reply) {
  if (two_phase_->Attach(txn_id, reply)) return;
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
  two_phase_->Insert(ctx);
  two_phase_->Dispatch(ctx, core::CommitRequested{req.wait_for_completion()});
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
  const uint64_t start_order = next_seq_.fetch_add(1);
  const std::string txn_id =
      common::MakeTxnId(options_.node_id, incarnation_, epoch_, start_order);
  if (!ReserveForRun(identity, txn_id, reply)) return;
  three_phase_->Start(txn_id, start_order, req, std::move(identity), std::move(reply));
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
  two_phase_->Insert(ctx);
  std::weak_ptr<TxnContext> weak = ctx;
  deps_.timers->After(
      timeout, Guard(Action([this, weak, timeout] {
        if (auto c = weak.lock()) {
          two_phase_->Dispatch(
              c, core::RollbackRequested{
                     absl::StrCat("transaction deadline (", timeout, " ms) passed before Commit")});
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
    breq.set_call_number(TwoPhaseDriver::StartCall(*ctx, it->second));
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
                  ctx->calls.End(b, call);
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
  if (start) two_phase_->Dispatch(ctx, core::CommitRequested{req.wait_for_completion()});
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
  if (actions.empty()) two_phase_->Dispatch(ctx, core::RollbackRequested{});
}

}  // namespace txn::driver
