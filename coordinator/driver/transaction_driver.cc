// TransactionDriver: its protocol drivers, recovery from the log, finished transactions, the
// deadlock detector's hooks (see transaction_driver_internal.h for the other files).
#include "coordinator/driver/transaction_driver.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/failpoint.h"
#include "common/ids.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/status_macros.h"
#include "coordinator/driver/transaction_driver_internal.h"

namespace txn::driver {

using driver_internal::ProtocolLabel;
using driver_internal::StateLabel;

TransactionDriver::TransactionDriver(DriverDeps deps, DriverOptions options)
    : deps_(deps),
      options_(std::move(options)),
      incarnation_(deps_.log->incarnation()),
      other_incarnations_(options_.node_id, incarnation_),
      finished_(options_.finished_cache_size),
      idempotency_(options_.idempotency, deps_.clock),
      in_flight_(options_.max_active_per_principal),
      random_(deps_.random != nullptr ? deps_.random : &own_random_) {
  const ProtocolDriverDeps shared{
      .group_log = deps_.group_log,
      .participants = deps_.participants,
      .clock = deps_.clock,
      .timers = deps_.timers,
      .random = random_,
      .rpc_timeout_ms = options_.rpc_timeout_ms,
      .retry_backoff = options_.retry_backoff,
      .on_finished = [this](const v1::Transaction& t) { Remember(t); },
      .on_log_failure = [this](const absl::Status& s) { NoteLogFailure(s); },
  };
  two_phase_ = std::make_unique<TwoPhaseDriver>(shared);
  sagas_ = std::make_unique<SagaDriver>(shared);
  three_phase_ = std::make_unique<ThreePhaseDriver>(
      shared, ThreePhaseTimeouts{.prepare_timeout_ms = options_.prepare_timeout_ms,
                                 .termination_timeout_ms = options_.termination_timeout_ms});
}

TransactionDriver::~TransactionDriver() {
  // Closed first: a guarded callback (the metrics refresher) reads the sub-drivers.
  lifetime_.Close();
  two_phase_.reset();  // their callbacks (on_finished) reach into this driver
  sagas_.reset();
  three_phase_.reset();
}

void TransactionDriver::NoteLogFailure(const absl::Status& s) {
  if (!log_failing_.exchange(true)) {
    common::LogError(
        absl::StrCat("decision log write failed; refusing new transactions until it works again: ",
                     s.message()));
  }
}

size_t TransactionDriver::active_count() const {
  return two_phase_->active_count() + sagas_->active_count() + three_phase_->active_count();
}

namespace {

// Whether recovery must take `r` up: a decision not carried out everywhere yet, or (3PC) no
// decision yet. A 2PC record without a COMMIT is presumed aborted, unless its last resource was
// committing (its answer is the decision); a HEURISTIC_MIXED 3PC record waits for an operator.
bool Unfinished(const log::DecisionRecord& r) {
  if (r.done()) return false;
  switch (r.protocol()) {
    case v1::PROTOCOL_SAGA:
      return true;
    case v1::PROTOCOL_THREE_PHASE:
      return r.state() != v1::TXN_STATE_HEURISTIC_MIXED;
    default:
      return r.decision() == v1::DECISION_COMMIT ||
             (r.committing_last() && r.decision() == v1::DECISION_UNSPECIFIED);
  }
}

}  // namespace

absl::Status TransactionDriver::Recover() {
  started_unix_ms_ = deps_.clock->NowUnixMs();
  TXN_ASSIGN_OR_RETURN(epoch_, deps_.log->NextEpoch());
  // One scan of the log, then each unfinished record is taken up by its protocol's driver (not
  // during the scan: taking one up writes to the log).
  std::vector<log::DecisionRecord> unfinished;
  std::map<v1::Protocol, size_t> by_protocol;
  TXN_RETURN_IF_ERROR(deps_.log->ForEach([&](const log::DecisionRecord& r) {
    if (!r.idempotency_key().empty()) {
      // A finished one's retention window runs from when it finished.
      idempotency_.Restore(r.owner(), r.idempotency_key(), r.request_fingerprint(), r.txn_id(),
                           r.done() ? std::max<int64_t>(r.done_unix_ms(), 1) : 0);
    }
    if (!Unfinished(r)) return true;
    in_flight_.Restore(r.owner(), r.txn_id());
    ++by_protocol[static_cast<v1::Protocol>(r.protocol())];
    unfinished.push_back(r);
    return true;
  }));
  common::LogInfo(absl::StrCat("recovery: incarnation ", incarnation_, ", epoch ", epoch_,
                               ", taking up ", unfinished.size(), " unfinished transaction(s)"));
  for (const auto& [protocol, n] : by_protocol) {
    common::LogInfo(absl::StrCat("recovery: ", n, " ", ProtocolLabel(protocol)));
  }
  common::DefaultMetrics()
      .GetCounter("txcoord_recovered_transactions_total",
                  "Transactions re-driven from the decision log at start.")
      ->Inc(unfinished.size());
  for (const auto& r : unfinished) {
    switch (r.protocol()) {
      case v1::PROTOCOL_SAGA:
        sagas_->Resume(r);
        break;
      case v1::PROTOCOL_THREE_PHASE:
        three_phase_->Resume(r);
        break;
      default:
        two_phase_->Resume(r, options_.prepare_timeout_ms);
        break;
    }
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
  // A keyed transaction never commits in one phase without a record (core::TwoPhaseTxn::keyed).
  ctx->txn.keyed = !ctx->identity.idempotency_key.empty();
  return ctx;
}

void TransactionDriver::AttachOrReply(TxnContext& ctx, OutcomeReply reply,
                                      std::vector<Action>* actions) {
  AnswerOrQueue(TwoPhaseDriver::AnsweredWith(ctx), std::move(reply), &ctx.waiters, actions);
}

void TransactionDriver::Remember(const v1::Transaction& finished) {
  idempotency_.Finished(finished.txn_id());
  in_flight_.Release(finished.txn_id());
  if (finished.protocol() == v1::PROTOCOL_SAGA || finished.protocol() == v1::PROTOCOL_THREE_PHASE) {
    common::DefaultMetrics()
        .GetCounter("txcoord_transactions_total", "Finished transactions by protocol and outcome.",
                    {{"protocol", ProtocolLabel(finished.protocol())},
                     {"outcome", StateLabel(finished.state())}})
        ->Inc();
  }
  // Before it leaves its driver's running table (ProtocolDriverBase::Forget): see finished_.
  finished_.Add(finished);
}

absl::StatusOr<v1::Transaction> TransactionDriver::LookupFinished(const std::string& txn_id) {
  if (std::optional<v1::Transaction> t = finished_.Find(txn_id)) return *std::move(t);
  TXN_ASSIGN_OR_RETURN(std::optional<log::DecisionRecord> record, deps_.log->Get(txn_id));
  if (record) return TransactionOf(*record);
  return absl::NotFoundError(absl::StrCat("transaction ", txn_id, " is not known"));
}

absl::Status TransactionDriver::ProbeLog() {
  if (!log_failing_.load()) return absl::OkStatus();
  absl::StatusOr<uint64_t> probe = deps_.log->NextEpoch();
  if (!probe.ok()) return probe.status();
  log_failing_.store(false);
  common::LogInfo("decision log writable again; accepting transactions");
  return absl::OkStatus();
}

std::optional<core::MemberStanding> TransactionDriver::DeadlockStanding(
    const core::WaitEdge& edge) {
  if (auto standing = two_phase_->DeadlockStanding(edge)) return standing;
  return three_phase_->DeadlockStanding(edge);
}

bool TransactionDriver::AbortDeadlockVictim(const std::string& txn_id, const std::string& reason) {
  return two_phase_->AbortDeadlockVictim(txn_id, reason) ||
         three_phase_->AbortDeadlockVictim(txn_id, reason);
}

}  // namespace txn::driver
