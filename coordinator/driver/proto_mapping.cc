#include "coordinator/driver/proto_mapping.h"

#include "absl/strings/str_cat.h"

namespace txn::driver {
namespace {

v1::TxnState ToProto(core::TxnState s) { return static_cast<v1::TxnState>(static_cast<int>(s)); }
v1::BranchState ToProto(core::BranchState s) {
  return static_cast<v1::BranchState>(static_cast<int>(s));
}

// An outcome in state `state`, its unfinished branches reported as ABORTED once it is ABORTED
// (and as COMMITTED once it is COMMITTED, with `report_committed_as_final`).
v1::Outcome OutcomeWithBranches(const std::string& txn_id, core::TxnState state,
                                const std::string& reason,
                                const std::vector<core::BranchStatus>& branches,
                                bool report_committed_as_final) {
  v1::Outcome out;
  out.set_txn_id(txn_id);
  out.set_state(ToProto(state));
  out.set_reason(reason);
  for (const auto& b : branches) {
    auto* ob = out.add_branches();
    ob->set_participant(b.participant);
    const bool unfinished = b.state == core::BranchState::kActive ||
                            b.state == core::BranchState::kPreparing ||
                            b.state == core::BranchState::kPrepared;
    if (unfinished && state == core::TxnState::kAborted) {
      ob->set_state(v1::BRANCH_STATE_ABORTED);
    } else if (unfinished && report_committed_as_final && state == core::TxnState::kCommitted) {
      ob->set_state(v1::BRANCH_STATE_COMMITTED);
    } else {
      ob->set_state(ToProto(b.state));
    }
    ob->set_reason(b.reason);
  }
  return out;
}

}  // namespace

v1::Outcome OutcomeOf(const core::TwoPhaseTxn& txn) {
  // Once the decision is ABORT, a branch still being rolled back is reported as what it will
  // be: aborted (presumed abort guarantees it). GetTransaction shows the live state.
  return OutcomeWithBranches(txn.id, core::OutcomeState(txn), txn.reason, txn.branches,
                             /*report_committed_as_final=*/false);
}

v1::Outcome OutcomeOf(const v1::Transaction& txn) {
  v1::Outcome out;
  out.set_txn_id(txn.txn_id());
  v1::TxnState state = txn.state();
  if (state == v1::TXN_STATE_COMMITTING) state = v1::TXN_STATE_COMMITTED;
  if (state == v1::TXN_STATE_ABORTING) state = v1::TXN_STATE_ABORTED;
  out.set_state(state);
  out.set_reason(txn.reason());
  for (const auto& b : txn.branches()) {
    auto* ob = out.add_branches();
    ob->set_participant(b.participant());
    ob->set_state(b.state());
    ob->set_reason(b.last_error());
  }
  return out;
}

v1::Transaction TransactionOf(const core::TwoPhaseTxn& txn, v1::Protocol protocol, TxnTimes times) {
  v1::Transaction out;
  out.set_txn_id(txn.id);
  out.set_protocol(protocol);
  // Before the COMMIT record is durable the transaction is still deciding: show PREPARING.
  core::TxnState state = txn.state;
  if (state == core::TxnState::kCommitting && !txn.decision_logged && txn.one_phase) {
    // A one-phase commit under way is decided by the database, not here: still deciding, or in
    // doubt once the client was told so (its answer was lost several times).
    state = txn.client_answered ? core::TxnState::kInDoubt : core::TxnState::kPreparing;
  } else if (state == core::TxnState::kCommitting && !txn.decision_logged) {
    state = core::TxnState::kPreparing;
    // Committing the last resource, and its answer is not known yet (asked again, or after a
    // restart): an operator may have to look.
    if (txn.committing_last && txn.last_resource &&
        txn.branches[*txn.last_resource].state == core::BranchState::kPreparing &&
        txn.branches[*txn.last_resource].attempts >= 2) {
      state = core::TxnState::kInDoubt;
    }
  }
  out.set_state(ToProto(state));
  out.set_reason(txn.reason);
  out.set_created_unix_ms(times.created_unix_ms);
  out.set_decided_unix_ms(times.decided_unix_ms);
  for (const auto& b : txn.branches) {
    auto* ob = out.add_branches();
    ob->set_participant(b.participant);
    ob->set_state(ToProto(b.state));
    ob->set_last_error(b.reason);
  }
  return out;
}

v1::Transaction TransactionOf(const log::DecisionRecord& record) {
  v1::Transaction out;
  out.set_txn_id(record.txn_id());
  out.set_protocol(static_cast<v1::Protocol>(record.protocol()));
  out.set_state(static_cast<v1::TxnState>(record.state()));
  out.set_reason(record.reason());
  out.set_owner(record.owner());
  out.set_created_unix_ms(record.created_unix_ms());
  out.set_decided_unix_ms(record.decided_unix_ms());
  for (const auto& b : record.branches()) {
    auto* ob = out.add_branches();
    ob->set_participant(b.participant());
    ob->set_state(static_cast<v1::BranchState>(b.state()));
    ob->set_last_error(b.reason());
  }
  return out;
}

log::DecisionRecord DecisionRecordOf(const core::TwoPhaseTxn& txn, v1::Protocol protocol,
                                     TxnTimes times, v1::Decision decision) {
  log::DecisionRecord r;
  r.set_txn_id(txn.id);
  r.set_protocol(protocol);
  r.set_decision(decision);
  r.set_committing_last(txn.committing_last && decision == v1::DECISION_UNSPECIFIED);
  if (txn.last_resource) r.set_last_resource(*txn.last_resource);
  for (uint32_t b : txn.heuristic_resources) r.add_heuristic_resources(b);
  r.set_state(static_cast<int>(txn.state));
  r.set_reason(txn.reason);
  r.set_created_unix_ms(times.created_unix_ms);
  r.set_decided_unix_ms(times.decided_unix_ms);
  for (const auto& b : txn.branches) {
    auto* rb = r.add_branches();
    rb->set_participant(b.participant);
    rb->set_state(static_cast<int>(b.state));
    rb->set_native_id(b.native_id);
    rb->set_reason(b.reason);
  }
  return r;
}

core::TwoPhaseTxn TxnFromRecord(const log::DecisionRecord& record) {
  core::TwoPhaseTxn txn;
  txn.id = record.txn_id();
  txn.state = core::TxnState::kCommitting;
  txn.decision_logged = record.decision() == v1::DECISION_COMMIT;
  txn.committing_last = record.committing_last();
  txn.reason = record.reason();
  if (record.has_last_resource()) txn.last_resource = record.last_resource();
  txn.heuristic_resources.assign(record.heuristic_resources().begin(),
                                 record.heuristic_resources().end());
  for (const auto& b : record.branches()) {
    core::BranchStatus bs;
    bs.participant = b.participant();
    bs.state = static_cast<core::BranchState>(b.state());
    bs.native_id = b.native_id();
    bs.reason = b.reason();
    txn.branches.push_back(std::move(bs));
  }
  return txn;
}

v1::Outcome OutcomeOf(const core::SagaTxn& saga) {
  v1::Outcome out;
  out.set_txn_id(saga.id);
  // Still running (forward or compensating): not known yet.
  const bool running = saga.state == core::TxnState::kActive ||
                       saga.state == core::TxnState::kAborting || saga.final_pending;
  out.set_state(ToProto(running ? core::TxnState::kInDoubt : saga.state));
  if (saga.log_error.empty()) {
    out.set_reason(saga.reason);
  } else {
    out.set_reason(absl::StrCat(saga.reason, saga.reason.empty() ? "" : "; ",
                                saga.final_pending ? "it ended " : "it is to be compensated",
                                saga.final_pending ? core::TxnStateName(saga.state) : "",
                                ", but its record could not be logged (", saga.log_error,
                                "): its outcome is not known until the write, tried again, lands"));
  }
  for (const auto& st : saga.steps) {
    auto* ob = out.add_branches();
    ob->set_participant(st.participant);
    ob->set_state(ToProto(st.state));
    ob->set_reason(st.reason);
  }
  return out;
}

v1::Transaction TransactionOf(const core::SagaTxn& saga, TxnTimes times) {
  v1::Transaction out;
  out.set_txn_id(saga.id);
  out.set_protocol(v1::PROTOCOL_SAGA);
  // An outcome whose record is not durable yet is not shown: the saga is still finishing.
  core::TxnState state = saga.state;
  if (saga.final_pending) {
    state = state == core::TxnState::kCommitted ? core::TxnState::kActive
                                                : core::TxnState::kAborting;
  }
  out.set_state(ToProto(state));
  out.set_reason(saga.reason);
  out.set_created_unix_ms(times.created_unix_ms);
  out.set_decided_unix_ms(times.decided_unix_ms);
  for (const auto& st : saga.steps) {
    auto* ob = out.add_branches();
    ob->set_participant(st.participant);
    ob->set_state(ToProto(st.state));
    ob->set_last_error(st.reason);
  }
  return out;
}

log::DecisionRecord SagaRecordOf(const core::SagaTxn& saga, const std::vector<v1::Branch>& steps,
                                 TxnTimes times) {
  log::DecisionRecord r;
  r.set_txn_id(saga.id);
  r.set_protocol(v1::PROTOCOL_SAGA);
  r.set_decision(v1::DECISION_UNSPECIFIED);
  r.set_state(static_cast<int>(saga.state));
  r.set_reason(saga.reason);
  r.set_created_unix_ms(times.created_unix_ms);
  r.set_decided_unix_ms(times.decided_unix_ms);
  for (const auto& st : saga.steps) {
    auto* rb = r.add_branches();
    rb->set_participant(st.participant);
    rb->set_state(static_cast<int>(st.state));
    rb->set_reason(st.reason);
  }
  for (const auto& b : steps) *r.add_saga_steps() = b;
  if (saga.failed_step) r.set_saga_failed_step(*saga.failed_step);
  return r;
}

core::SagaTxn SagaFromRecord(const log::DecisionRecord& record) {
  core::SagaTxn saga;
  saga.id = record.txn_id();
  saga.state = static_cast<core::TxnState>(record.state());
  saga.reason = record.reason();
  saga.started = true;
  saga.compensating_logged = saga.state == core::TxnState::kAborting;
  if (record.has_saga_failed_step()) saga.failed_step = record.saga_failed_step();
  for (const auto& b : record.branches()) {
    core::BranchStatus st;
    st.participant = b.participant();
    st.state = static_cast<core::BranchState>(b.state());
    st.reason = b.reason();
    saga.steps.push_back(std::move(st));
  }
  return saga;
}

// ---- Three-phase commit ----

v1::Outcome OutcomeOf(const core::ThreePhaseTxn& txn) {
  // Decided either way: a branch still being told is reported as what it will be (the decision
  // was accepted by a majority and cannot change).
  return OutcomeWithBranches(txn.id, core::OutcomeState(txn), txn.reason, txn.branches,
                             /*report_committed_as_final=*/true);
}

v1::Transaction TransactionOf(const core::ThreePhaseTxn& txn, int64_t created, int64_t decided) {
  v1::Transaction out;
  out.set_txn_id(txn.id);
  out.set_protocol(v1::PROTOCOL_THREE_PHASE);
  core::TxnState state = txn.state;
  // The decision is being written: still deciding.
  if ((state == core::TxnState::kCommitting || state == core::TxnState::kAborting) &&
      !txn.decision_logged) {
    state = core::TxnState::kPreCommitted;
  }
  out.set_state(ToProto(state));
  std::string reason = txn.reason;
  if (!txn.conflict.empty())
    reason = absl::StrCat(reason, reason.empty() ? "" : "; ", txn.conflict);
  out.set_reason(reason);
  out.set_created_unix_ms(created);
  out.set_decided_unix_ms(decided);
  for (const auto& b : txn.branches) {
    auto* ob = out.add_branches();
    ob->set_participant(b.participant);
    ob->set_state(ToProto(b.state));
    ob->set_last_error(b.reason);
  }
  return out;
}

core::Vote VoteOf(v1::Vote v) {
  switch (v) {
    case v1::VOTE_YES:
      return core::Vote::kYes;
    case v1::VOTE_READ_ONLY:
      return core::Vote::kReadOnly;
    default:
      return core::Vote::kNo;
  }
}

core::BranchResult ResultOf(v1::BranchResult r) {
  switch (r) {
    case v1::BRANCH_RESULT_COMMITTED:
      return core::BranchResult::kCommitted;
    case v1::BRANCH_RESULT_ABORTED:
      return core::BranchResult::kAborted;
    default:
      return core::BranchResult::kUnknown;
  }
}

}  // namespace txn::driver
