// What TransactionDriver knows of transactions, for clients, agents and operators:
// GetTransaction, GetDecision (with other incarnations' ids), ReportDecision, and the admin
// calls: list, resolve, stats, garbage collection, the gauges.
#include "coordinator/driver/transaction_driver.h"

#include <algorithm>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "coordinator/driver/request_validation.h"
#include "coordinator/driver/transaction_driver_internal.h"

namespace txn::driver {

using driver_internal::NotKnown;
using driver_internal::OwnedBy;
using driver_internal::StateLabel;

absl::StatusOr<v1::Transaction> TransactionDriver::GetTransaction(const std::string& txn_id,
                                                                  const std::string& principal) {
  TXN_RETURN_IF_ERROR(ValidateTxnId(txn_id));
  std::optional<v1::Transaction> running;
  if (auto ctx = FindActive(txn_id)) {
    std::lock_guard<std::mutex> lock(ctx->mu);
    running = TwoPhaseDriver::ShownAs(*ctx);
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
  // Finished here: what this process did is the answer, even if the log write saying so (an
  // unsynced ABORT after a last resource aborted) has not landed yet.
  const std::optional<v1::Transaction> finished = finished_.Find(txn_id);
  if (finished && finished->state() == v1::TXN_STATE_ABORTED) return v1::DECISION_ABORT;
  TXN_ASSIGN_OR_RETURN(std::optional<log::DecisionRecord> record, deps_.log->Get(txn_id));
  if (record) {
    if (record->decision() == v1::DECISION_COMMIT) return v1::DECISION_COMMIT;
    if (record->decision() == v1::DECISION_ABORT) return v1::DECISION_ABORT;
    return v1::DECISION_UNKNOWN;  // committing_last: the last resource decides
  }
  if (auto ctx = FindActive(txn_id)) return v1::DECISION_UNKNOWN;  // failed write, still in doubt
  // Looked at again: it may have finished since the first look (say, resolved by an operator
  // after the log was read).
  if (const std::optional<v1::Transaction> now = finished_.Find(txn_id)) {
    // COMMITTED without a record: one-phase or read-only, nothing is prepared anyway.
    if (now->state() == v1::TXN_STATE_COMMITTED) return v1::DECISION_COMMIT;
    if (now->state() == v1::TXN_STATE_ABORTED) return v1::DECISION_ABORT;
    TXN_ASSIGN_OR_RETURN(record, deps_.log->Get(txn_id));
    if (record && record->decision() == v1::DECISION_COMMIT) return v1::DECISION_COMMIT;
    if (record && record->decision() == v1::DECISION_ABORT) return v1::DECISION_ABORT;
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

  // Later sources are more current: the log, then live ones, then finished ones in memory. A
  // transaction is added to the finished ones before it leaves its driver's running table, so
  // one that finishes while this runs is in one or the other, and a finished one is final.
  std::map<std::string, v1::Transaction, TxnIdOrder> all;
  TXN_RETURN_IF_ERROR(deps_.log->ForEach([&](const log::DecisionRecord& r) {
    all[r.txn_id()] = TransactionOf(r);
    return true;
  }));
  for (v1::Transaction& t : two_phase_->Snapshot()) all[t.txn_id()] = std::move(t);
  for (v1::Transaction& t : sagas_->Snapshot()) all[t.txn_id()] = std::move(t);
  for (v1::Transaction& t : three_phase_->Snapshot()) all[t.txn_id()] = std::move(t);
  for (v1::Transaction& t : finished_.All()) all[t.txn_id()] = std::move(t);
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
    actions = two_phase_->Plan(ctx, core::Step(ctx->txn, core::OperatorResolved{decision}));
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
  std::map<v1::TxnState, uint64_t> counts;
  for (const v1::Transaction& t : two_phase_->Snapshot()) ++counts[t.state()];
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
  for (const auto& [state, n] : finished_.Counts()) {
    (*stats.mutable_finished_by_state())[v1::TxnState_Name(state)] = n;
  }
  for (const auto& [state, n] : ActiveByState()) {
    (*stats.mutable_active_by_state())[v1::TxnState_Name(state)] = n;
  }
  return stats;
}

}  // namespace txn::driver
