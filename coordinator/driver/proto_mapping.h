// Conversions between the core's plain types, the wire API (txn.v1) and log records.
// Pure functions; thread-safe.
#pragma once

#include "coordinator/core/saga.h"
#include "coordinator/core/three_phase.h"
#include "coordinator/core/two_phase.h"
#include "coordinator/log/decision_log.h"
#include "txn/v1/coordinator.pb.h"
#include "txn/v1/participant.pb.h"

namespace txn::driver {

struct TxnTimes {
  int64_t created_unix_ms = 0;
  int64_t decided_unix_ms = 0;
};

v1::Outcome OutcomeOf(const core::TwoPhaseTxn& txn);
v1::Outcome OutcomeOf(const v1::Transaction& txn);
v1::Transaction TransactionOf(const core::TwoPhaseTxn& txn, v1::Protocol protocol, TxnTimes times);
v1::Transaction TransactionOf(const log::DecisionRecord& record);

// The decision record of `txn` (its branch states and native ids as they are now): `decision`
// COMMIT or ABORT, or UNSPECIFIED with committing_last set while the last resource decides.
log::DecisionRecord DecisionRecordOf(const core::TwoPhaseTxn& txn, v1::Protocol protocol,
                                     TxnTimes times, v1::Decision decision);
// A transaction in COMMITTING rebuilt from its COMMIT or committing_last record.
core::TwoPhaseTxn TxnFromRecord(const log::DecisionRecord& record);

// Sagas. The outcome shows each step's state (COMMITTED: done; ABORTED: failed; COMPENSATED;
// HEURISTIC: its compensation was given up).
v1::Outcome OutcomeOf(const core::SagaTxn& saga);
v1::Transaction TransactionOf(const core::SagaTxn& saga, TxnTimes times);
// The saga's log record, carrying the steps and compensations (`steps`) so a restart can go on.
log::DecisionRecord SagaRecordOf(const core::SagaTxn& saga, const std::vector<v1::Branch>& steps,
                                 TxnTimes times);
// A saga rebuilt from its record (ABORTING in the record: the decision to compensate is durable).
core::SagaTxn SagaFromRecord(const log::DecisionRecord& record);

// Three-phase commit. The outcome reports a decided transaction's unfinished branches as what
// they will be; GetTransaction shows them live (a decision being written shows PRECOMMITTED).
v1::Outcome OutcomeOf(const core::ThreePhaseTxn& txn);
v1::Transaction TransactionOf(const core::ThreePhaseTxn& txn, int64_t created_unix_ms,
                              int64_t decided_unix_ms);

// Participant answers in the core's terms.
core::Vote VoteOf(v1::Vote v);
core::BranchResult ResultOf(v1::BranchResult r);

}  // namespace txn::driver
