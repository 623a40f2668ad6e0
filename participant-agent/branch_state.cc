#include "participant-agent/branch_state.h"

#include "absl/strings/str_cat.h"

namespace txn::agent {

v1::BranchResult ToProto(FinishedAs as) {
  switch (as) {
    case FinishedAs::kCommitted:
      return v1::BRANCH_RESULT_COMMITTED;
    case FinishedAs::kAborted:
      return v1::BRANCH_RESULT_ABORTED;
    case FinishedAs::kUnknown:
      return v1::BRANCH_RESULT_UNKNOWN;
  }
  return v1::BRANCH_RESULT_UNKNOWN;
}

Next<v1::PrepareBranchResponse> OnPrepare(const BranchFacts& b, const std::string& gid) {
  Next<v1::PrepareBranchResponse> next;
  switch (b.state) {
    case BranchState::kPrepared:
      next.move = Move::kAnswer;
      next.answer.set_vote(v1::VOTE_YES);
      next.answer.set_native_id(b.native_id);
      return next;
    case BranchState::kReadOnly:
      next.move = Move::kAnswer;
      next.answer.set_vote(v1::VOTE_READ_ONLY);
      return next;
    case BranchState::kAborted:
      next.move = Move::kAnswer;
      next.answer.set_vote(v1::VOTE_NO);
      next.answer.set_reason(absl::StrCat("branch was rolled back: ", b.reason));
      return next;
    case BranchState::kCommitted:
      next.move = Move::kRefuse;
      next.refusal = absl::StrCat("branch ", gid, " is already committed");
      return next;
    case BranchState::kActive:
      break;
  }
  if (b.doomed) {
    next.move = Move::kAbortActive;
    next.answer.set_vote(v1::VOTE_NO);
    next.answer.set_reason(b.reason);
  }
  return next;
}

Next<v1::CommitBranchResponse> OnCommit(const BranchFacts& b, const std::string& gid) {
  Next<v1::CommitBranchResponse> next;
  switch (b.state) {
    case BranchState::kActive:
      next.move = Move::kRefuse;
      next.refusal = absl::StrCat("branch ", gid, " is not prepared; Prepare it first");
      return next;
    case BranchState::kCommitted:
    case BranchState::kReadOnly:
      next.move = Move::kAnswer;
      next.answer.set_result(v1::BRANCH_RESULT_COMMITTED);
      return next;
    case BranchState::kAborted:
      next.move = Move::kAnswer;
      next.answer.set_result(v1::BRANCH_RESULT_ABORTED);
      next.answer.set_reason(b.reason);
      return next;
    case BranchState::kPrepared:
      break;
  }
  return next;
}

Next<v1::RollbackBranchResponse> OnRollback(const BranchFacts& b) {
  Next<v1::RollbackBranchResponse> next;
  switch (b.state) {
    case BranchState::kActive:
      next.move = Move::kAbortActive;
      next.answer.set_result(v1::BRANCH_RESULT_ABORTED);
      return next;
    case BranchState::kCommitted:
      next.move = Move::kAnswer;
      next.answer.set_result(v1::BRANCH_RESULT_COMMITTED);
      return next;
    case BranchState::kReadOnly:
    case BranchState::kAborted:
      next.move = Move::kAnswer;
      next.answer.set_result(v1::BRANCH_RESULT_ABORTED);
      return next;
    case BranchState::kPrepared:
      break;
  }
  return next;
}

Next<v1::CommitOnePhaseResponse> OnCommitOnePhase(const BranchFacts& b, const std::string& gid) {
  Next<v1::CommitOnePhaseResponse> next;
  switch (b.state) {
    case BranchState::kCommitted:
    case BranchState::kReadOnly:
      next.move = Move::kAnswer;
      next.answer.set_result(v1::BRANCH_RESULT_COMMITTED);
      return next;
    case BranchState::kAborted:
      // Its COMMIT's answer was lost with the connection: only the commit marker can tell.
      next.move = b.one_phase_unknown ? Move::kProve : Move::kAnswer;
      next.answer.set_result(v1::BRANCH_RESULT_ABORTED);
      next.answer.set_reason(b.reason);
      return next;
    case BranchState::kPrepared:
      next.move = Move::kRefuse;
      next.refusal = absl::StrCat("branch ", gid, " is prepared; finish it with Commit");
      return next;
    case BranchState::kActive:
      break;
  }
  if (b.doomed) {
    next.move = Move::kAbortActive;
    next.answer.set_result(v1::BRANCH_RESULT_ABORTED);
    next.answer.set_reason(b.reason);
  }
  return next;
}

Voted AfterPrepare(const PrepareResult& r) {
  Voted v;
  switch (r.vote) {
    case LocalVote::kYes:
      v.state = BranchState::kPrepared;
      v.answer.set_vote(v1::VOTE_YES);
      v.answer.set_native_id(r.native_id);
      break;
    case LocalVote::kReadOnly:
      v.state = BranchState::kReadOnly;
      v.answer.set_vote(v1::VOTE_READ_ONLY);
      break;
    case LocalVote::kNo:
      v.state = BranchState::kAborted;
      v.answer.set_vote(v1::VOTE_NO);
      v.answer.set_reason(r.reason);
      break;
  }
  return v;
}

Voted AfterPrepareFailed(bool landed, const std::string& error) {
  Voted v;
  if (landed) {
    v.state = BranchState::kPrepared;
    v.answer.set_vote(v1::VOTE_YES);
    return v;
  }
  v.state = BranchState::kAborted;
  v.answer.set_vote(v1::VOTE_NO);
  v.answer.set_reason(error);
  return v;
}

OnePhaseDone AfterCommitLocal(const absl::Status& committed) {
  OnePhaseDone d;
  if (committed.ok()) {
    d.state = BranchState::kCommitted;
    d.answer.set_result(v1::BRANCH_RESULT_COMMITTED);
    return d;
  }
  d.state = BranchState::kAborted;
  d.reason = std::string(committed.message());
  d.unknown = committed.code() != absl::StatusCode::kAborted;
  d.answer.set_result(d.unknown ? v1::BRANCH_RESULT_UNKNOWN : v1::BRANCH_RESULT_ABORTED);
  d.answer.set_reason(d.reason);
  return d;
}

Finished AfterCommitPrepared(const FinishResult& r, BranchState current) {
  switch (r.as) {
    case FinishedAs::kCommitted:
      return Finished{BranchState::kCommitted, ""};
    case FinishedAs::kAborted:
      return Finished{BranchState::kAborted, r.reason};
    case FinishedAs::kUnknown:
      break;
  }
  return Finished{current, ""};
}

Finished AfterRollbackPrepared(const FinishResult& r) {
  if (r.as == FinishedAs::kCommitted) return Finished{BranchState::kCommitted, ""};
  return Finished{BranchState::kAborted, "rolled back by the coordinator"};
}

}  // namespace txn::agent
