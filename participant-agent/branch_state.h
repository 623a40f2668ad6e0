// The branch state machine of an agent, pure: what each coordinator call does to a branch this
// agent knows, decided from the branch's state alone (no database, no locks, no clock), and the
// state a database step's outcome leaves. BranchRegistry (branch_registry.h) holds the entries,
// runs the database steps these rules ask for, and applies the results.
//
//   (none) --Begin/Execute--> ACTIVE --Prepare--> PREPARED --Commit--> COMMITTED
//                               |  \                 \------Rollback--> ABORTED
//                               |   \--Prepare, nothing written--> READ_ONLY
//                               |--CommitOnePhase--> COMMITTED | ABORTED
//                               |--Rollback / DB error / expect_* mismatch / idle--> ABORTED
//   (none) --Rollback--> ABORTED (a tombstone: a Prepare arriving later votes NO)
//
// Every call is idempotent on a finished branch: a repeated Prepare, Commit or Rollback gets the
// answer the state gives.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "participant-agent/resource_adapter.h"
#include "txn/v1/participant.pb.h"

namespace txn::agent {

enum class BranchState { kActive, kPrepared, kReadOnly, kCommitted, kAborted };

// What the rules read of a branch.
struct BranchFacts {
  BranchState state = BranchState::kActive;
  std::string native_id;
  std::string reason;  // why it aborted, or why it will vote NO
  bool doomed = false;  // an expectation failed during Execute: Prepare votes NO
  // ABORTED only as far as this agent knows: its one-phase COMMIT's answer was lost.
  bool one_phase_unknown = false;
};

// A call's next move on a branch this agent knows.
enum class Move {
  kAnswer,       // answered from the state alone: `answer`
  kRefuse,       // FAILED_PRECONDITION with `refusal`
  kAbortActive,  // roll the open transaction back, then `answer` (Prepare and CommitOnePhase
                 // keep the branch's reason; Rollback records "rolled back by the coordinator")
  kProve,        // CommitOnePhase only: ask the commit marker what became of it
  kProceed,      // the call's database step (prepare, commit or roll back prepared, commit)
};

template <typename Resp>
struct Next {
  Move move = Move::kProceed;
  Resp answer;
  std::string refusal;
};

Next<v1::PrepareBranchResponse> OnPrepare(const BranchFacts& b, const std::string& gid);
Next<v1::CommitBranchResponse> OnCommit(const BranchFacts& b, const std::string& gid);
Next<v1::RollbackBranchResponse> OnRollback(const BranchFacts& b);
Next<v1::CommitOnePhaseResponse> OnCommitOnePhase(const BranchFacts& b, const std::string& gid);

// The database's vote on PREPARE, as the branch's new state and the coordinator's answer.
struct Voted {
  BranchState state = BranchState::kAborted;
  v1::PrepareBranchResponse answer;
};
Voted AfterPrepare(const PrepareResult& r);
// PREPARE failed on the connection (`error`): the database rolled the transaction back unless
// the PREPARE landed (`landed`, which the database tells).
Voted AfterPrepareFailed(bool landed, const std::string& error);

// What a one-phase COMMIT's status leaves: committed (OK), aborted by the database (ABORTED),
// or, when the connection failed during COMMIT, ABORTED only as far as this agent knows
// (`unknown`): the answer is UNKNOWN, and a repeated CommitOnePhase asks the commit marker.
struct OnePhaseDone {
  BranchState state = BranchState::kAborted;
  bool unknown = false;
  std::string reason;
  v1::CommitOnePhaseResponse answer;
};
OnePhaseDone AfterCommitLocal(const absl::Status& committed);

// What COMMIT PREPARED / ROLLBACK PREPARED leaves: the state, and the reason kept for an ABORTED
// one. After COMMIT PREPARED, kUnknown keeps `current` (a PREPARED branch stays PREPARED, so a
// retry asks again; the registry leaves a branch it did not know unknown); after ROLLBACK
// PREPARED anything but kCommitted is ABORTED (nothing of ours commits it later).
struct Finished {
  BranchState state = BranchState::kAborted;
  std::string reason;
};
Finished AfterCommitPrepared(const FinishResult& r, BranchState current);
Finished AfterRollbackPrepared(const FinishResult& r);

v1::BranchResult ToProto(FinishedAs as);

}  // namespace txn::agent
