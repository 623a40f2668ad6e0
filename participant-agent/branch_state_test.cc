// The branch state machine's rules, state by state.
#include "participant-agent/branch_state.h"

#include <gtest/gtest.h>

namespace txn::agent {
namespace {

BranchFacts In(BranchState s) {
  BranchFacts b;
  b.state = s;
  b.native_id = "4242";
  b.reason = "expected 1 rows affected, got 0";
  return b;
}

constexpr char kGid[] = "txc_n1-00000001-1-7_0";

TEST(BranchState, PrepareAnswersEveryFinishedStateFromTheStateAlone) {
  auto yes = OnPrepare(In(BranchState::kPrepared), kGid);
  EXPECT_EQ(yes.move, Move::kAnswer);
  EXPECT_EQ(yes.answer.vote(), v1::VOTE_YES);
  EXPECT_EQ(yes.answer.native_id(), "4242") << "a repeated Prepare can still prove the outcome";
  EXPECT_EQ(OnPrepare(In(BranchState::kReadOnly), kGid).answer.vote(), v1::VOTE_READ_ONLY);
  auto no = OnPrepare(In(BranchState::kAborted), kGid);
  EXPECT_EQ(no.answer.vote(), v1::VOTE_NO);
  EXPECT_EQ(no.answer.reason(), "branch was rolled back: expected 1 rows affected, got 0");
  auto committed = OnPrepare(In(BranchState::kCommitted), kGid);
  EXPECT_EQ(committed.move, Move::kRefuse);
  EXPECT_NE(committed.refusal.find("already committed"), std::string::npos);
}

TEST(BranchState, PrepareOfAnActiveBranchPreparesUnlessItIsDoomed) {
  EXPECT_EQ(OnPrepare(In(BranchState::kActive), kGid).move, Move::kProceed);
  BranchFacts doomed = In(BranchState::kActive);
  doomed.doomed = true;
  auto next = OnPrepare(doomed, kGid);
  EXPECT_EQ(next.move, Move::kAbortActive);
  EXPECT_EQ(next.answer.vote(), v1::VOTE_NO);
  EXPECT_EQ(next.answer.reason(), doomed.reason);
}

TEST(BranchState, CommitNeedsAPreparedBranchAndRepeatsFinishedAnswers) {
  EXPECT_EQ(OnCommit(In(BranchState::kPrepared), kGid).move, Move::kProceed);
  auto active = OnCommit(In(BranchState::kActive), kGid);
  EXPECT_EQ(active.move, Move::kRefuse);
  EXPECT_NE(active.refusal.find("Prepare it first"), std::string::npos);
  EXPECT_EQ(OnCommit(In(BranchState::kCommitted), kGid).answer.result(),
            v1::BRANCH_RESULT_COMMITTED);
  EXPECT_EQ(OnCommit(In(BranchState::kReadOnly), kGid).answer.result(),
            v1::BRANCH_RESULT_COMMITTED);
  auto aborted = OnCommit(In(BranchState::kAborted), kGid);
  EXPECT_EQ(aborted.answer.result(), v1::BRANCH_RESULT_ABORTED);
  EXPECT_EQ(aborted.answer.reason(), "expected 1 rows affected, got 0");
}

TEST(BranchState, RollbackAbortsAnOpenBranchAndRollsBackAPreparedOne) {
  auto active = OnRollback(In(BranchState::kActive));
  EXPECT_EQ(active.move, Move::kAbortActive);
  EXPECT_EQ(active.answer.result(), v1::BRANCH_RESULT_ABORTED);
  EXPECT_EQ(OnRollback(In(BranchState::kPrepared)).move, Move::kProceed);
  EXPECT_EQ(OnRollback(In(BranchState::kCommitted)).answer.result(),
            v1::BRANCH_RESULT_COMMITTED) << "never claims to undo a commit";
  EXPECT_EQ(OnRollback(In(BranchState::kReadOnly)).answer.result(), v1::BRANCH_RESULT_ABORTED);
  EXPECT_EQ(OnRollback(In(BranchState::kAborted)).answer.result(), v1::BRANCH_RESULT_ABORTED);
}

TEST(BranchState, OnePhaseCommitAsksTheMarkerWhenItsAnswerWasLost) {
  EXPECT_EQ(OnCommitOnePhase(In(BranchState::kActive), kGid).move, Move::kProceed);
  EXPECT_EQ(OnCommitOnePhase(In(BranchState::kCommitted), kGid).answer.result(),
            v1::BRANCH_RESULT_COMMITTED);
  EXPECT_EQ(OnCommitOnePhase(In(BranchState::kAborted), kGid).move, Move::kAnswer);
  BranchFacts lost = In(BranchState::kAborted);
  lost.one_phase_unknown = true;
  EXPECT_EQ(OnCommitOnePhase(lost, kGid).move, Move::kProve)
      << "never ABORTED from the entry alone after a lost COMMIT answer";
  EXPECT_EQ(OnCommitOnePhase(In(BranchState::kPrepared), kGid).move, Move::kRefuse);
  BranchFacts doomed = In(BranchState::kActive);
  doomed.doomed = true;
  EXPECT_EQ(OnCommitOnePhase(doomed, kGid).move, Move::kAbortActive);
}

TEST(BranchState, TheDatabasesVoteBecomesTheState) {
  auto yes = AfterPrepare(PrepareResult{LocalVote::kYes, "", "99"});
  EXPECT_EQ(yes.state, BranchState::kPrepared);
  EXPECT_EQ(yes.answer.native_id(), "99");
  EXPECT_EQ(AfterPrepare(PrepareResult{LocalVote::kReadOnly, "", ""}).state,
            BranchState::kReadOnly);
  auto no = AfterPrepare(PrepareResult{LocalVote::kNo, "deferred constraint", ""});
  EXPECT_EQ(no.state, BranchState::kAborted);
  EXPECT_EQ(no.answer.reason(), "deferred constraint");
}

TEST(BranchState, WhatTheDatabaseSaysOfAPreparedBranchBecomesTheState) {
  EXPECT_EQ(AfterCommitPrepared({FinishedAs::kCommitted, ""}, BranchState::kPrepared).state,
            BranchState::kCommitted);
  auto aborted = AfterCommitPrepared({FinishedAs::kAborted, "rolled back by an operator"},
                                     BranchState::kPrepared);
  EXPECT_EQ(aborted.state, BranchState::kAborted);
  EXPECT_EQ(aborted.reason, "rolled back by an operator");
  EXPECT_EQ(AfterCommitPrepared({FinishedAs::kUnknown, ""}, BranchState::kPrepared).state,
            BranchState::kPrepared) << "nothing known yet: still PREPARED, a retry asks again";
  EXPECT_EQ(AfterRollbackPrepared({FinishedAs::kCommitted, ""}).state, BranchState::kCommitted);
  EXPECT_EQ(AfterRollbackPrepared({FinishedAs::kAborted, ""}).state, BranchState::kAborted);
}

TEST(BranchState, AFailedPrepareStandsIfItLandedAndAbortsIfNot) {
  Voted landed = AfterPrepareFailed(true, "connection reset");
  EXPECT_EQ(landed.state, BranchState::kPrepared);
  EXPECT_EQ(landed.answer.vote(), v1::VOTE_YES);
  Voted lost = AfterPrepareFailed(false, "connection reset");
  EXPECT_EQ(lost.state, BranchState::kAborted);
  EXPECT_EQ(lost.answer.vote(), v1::VOTE_NO);
  EXPECT_EQ(lost.answer.reason(), "connection reset");
}

TEST(BranchState, AOnePhaseCommitLostOnTheWireIsUnknownNeverAborted) {
  OnePhaseDone ok = AfterCommitLocal(absl::OkStatus());
  EXPECT_EQ(ok.state, BranchState::kCommitted);
  EXPECT_EQ(ok.answer.result(), v1::BRANCH_RESULT_COMMITTED);
  EXPECT_FALSE(ok.unknown);
  OnePhaseDone refused = AfterCommitLocal(absl::AbortedError("serialization failure"));
  EXPECT_EQ(refused.state, BranchState::kAborted);
  EXPECT_EQ(refused.answer.result(), v1::BRANCH_RESULT_ABORTED);
  EXPECT_EQ(refused.reason, "serialization failure");
  EXPECT_FALSE(refused.unknown);
  OnePhaseDone lost = AfterCommitLocal(absl::UnavailableError("server closed the connection"));
  EXPECT_EQ(lost.answer.result(), v1::BRANCH_RESULT_UNKNOWN);
  EXPECT_TRUE(lost.unknown) << "a repeated CommitOnePhase must ask the commit marker";
  EXPECT_EQ(lost.answer.reason(), "server closed the connection");
}

}  // namespace
}  // namespace txn::agent
