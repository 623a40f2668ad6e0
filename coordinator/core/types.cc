#include "coordinator/core/types.h"

namespace txn::core {

absl::string_view TxnStateName(TxnState s) {
  switch (s) {
    case TxnState::kActive:
      return "ACTIVE";
    case TxnState::kPreparing:
      return "PREPARING";
    case TxnState::kPreCommitted:
      return "PRECOMMITTED";
    case TxnState::kCommitting:
      return "COMMITTING";
    case TxnState::kCommitted:
      return "COMMITTED";
    case TxnState::kAborting:
      return "ABORTING";
    case TxnState::kAborted:
      return "ABORTED";
    case TxnState::kHeuristicMixed:
      return "HEURISTIC_MIXED";
    case TxnState::kInDoubt:
      return "IN_DOUBT";
    case TxnState::kFailedCompensation:
      return "FAILED_COMPENSATION";
  }
  return "UNKNOWN";
}

absl::string_view BranchStateName(BranchState s) {
  switch (s) {
    case BranchState::kActive:
      return "ACTIVE";
    case BranchState::kPreparing:
      return "PREPARING";
    case BranchState::kPrepared:
      return "PREPARED";
    case BranchState::kReadOnly:
      return "READ_ONLY";
    case BranchState::kCommitted:
      return "COMMITTED";
    case BranchState::kAborted:
      return "ABORTED";
    case BranchState::kHeuristic:
      return "HEURISTIC";
    case BranchState::kInDoubt:
      return "IN_DOUBT";
    case BranchState::kCompensated:
      return "COMPENSATED";
  }
  return "UNKNOWN";
}

TxnState ReportedState(TxnState state, bool decision_logged) {
  switch (state) {
    case TxnState::kCommitting:
      return decision_logged ? TxnState::kCommitted : TxnState::kInDoubt;
    case TxnState::kAborting:
      return TxnState::kAborted;
    case TxnState::kActive:
    case TxnState::kPreparing:
    case TxnState::kPreCommitted:
      return TxnState::kInDoubt;
    default:
      return state;
  }
}

}  // namespace txn::core
