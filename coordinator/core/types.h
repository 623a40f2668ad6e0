// Domain types of the coordinator core: transaction and branch states, votes, results.
// Plain values; no I/O. The numbering of TxnState and BranchState matches txn.v1's enums in
// proto/txn/v1/coordinator.proto so the service and the log can convert by value.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/string_view.h"
#include "protocol/decision.h"

namespace txn::core {

enum class Protocol { kTwoPhase = 1, kThreePhase = 2, kSaga = 3 };

enum class TxnState {
  kActive = 1,
  kPreparing = 2,
  kPreCommitted = 3,
  kCommitting = 4,
  kCommitted = 5,
  kAborting = 6,
  kAborted = 7,
  kHeuristicMixed = 8,
  kInDoubt = 9,
  // A saga whose compensation kept failing: left for an operator, never reported as aborted.
  kFailedCompensation = 10,
};

enum class BranchState {
  kActive = 1,
  kPreparing = 2,
  kPrepared = 3,
  kReadOnly = 4,
  kCommitted = 5,
  kAborted = 6,
  kHeuristic = 7,
  kInDoubt = 8,
  // A saga step whose compensation ran (or was found unnecessary: it never ran).
  kCompensated = 9,
};

enum class Vote { kYes, kNo, kReadOnly };

// What a participant reports about a branch it was asked to finish.
enum class BranchResult { kCommitted, kAborted, kUnknown };

// The decision type is shared with the agents (protocol/decision.h).
using Decision = protocol::Decision;

absl::string_view TxnStateName(TxnState s);

// What a client is told of a transaction in `state` (2PC and 3PC alike): COMMITTING counts as
// COMMITTED once the decision is durable and IN_DOUBT before; ABORTING as ABORTED; ACTIVE,
// PREPARING and PRECOMMITTED as IN_DOUBT; anything else as itself.
TxnState ReportedState(TxnState state, bool decision_logged);
absl::string_view BranchStateName(BranchState s);

struct BranchStatus {
  std::string participant;
  BranchState state = BranchState::kActive;
  std::string reason;     // last error or vote reason, for operators
  std::string native_id;  // the database's id of the prepared transaction, when known
  int attempts = 0;       // sends of the current phase's message so far (for backoff)
};

// Effects shared by the protocol machines.
// Answer the client with the transaction's current outcome (see OutcomeState).
struct ReplyToClient {};
// Nothing more will happen: the driver may drop the transaction from memory.
struct Forget {};

}  // namespace txn::core
