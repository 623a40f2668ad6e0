#include "coordinator/core/two_phase.h"

#include <gtest/gtest.h>

namespace txn::core {
namespace {

TwoPhaseTxn MakeTxn(int branches) {
  TwoPhaseTxn t;
  t.id = "n1-1-1";
  for (int i = 0; i < branches; ++i) {
    t.branches.push_back(BranchStatus{.participant = "p" + std::to_string(i)});
  }
  return t;
}

template <typename T>
int Count(const std::vector<TwoPhaseEffect>& effects) {
  int n = 0;
  for (const auto& e : effects) n += std::holds_alternative<T>(e) ? 1 : 0;
  return n;
}

template <typename T>
int IndexOf(const std::vector<TwoPhaseEffect>& effects) {
  for (size_t i = 0; i < effects.size(); ++i) {
    if (std::holds_alternative<T>(effects[i])) return static_cast<int>(i);
  }
  return -1;
}

// Drives a 2-branch transaction to the point where the COMMIT record is being written.
TwoPhaseTxn PreparedTxn(bool wait = false) {
  TwoPhaseTxn t = MakeTxn(2);
  Step(t, CommitRequested{wait});
  Step(t, VoteReceived{0, Vote::kYes, "", "100"});
  auto fx = Step(t, VoteReceived{1, Vote::kYes, "", "200"});
  EXPECT_EQ(Count<LogDecision>(fx), 1);
  return t;
}

TEST(TwoPhase, CommitRequestPreparesEveryBranchInParallelAndArmsTimer) {
  TwoPhaseTxn t = MakeTxn(3);
  auto fx = Step(t, CommitRequested{});
  EXPECT_EQ(t.state, TxnState::kPreparing);
  EXPECT_EQ(Count<SendPrepare>(fx), 3);
  EXPECT_EQ(Count<StartPrepareTimer>(fx), 1);
  EXPECT_EQ(Count<ReplyToClient>(fx), 0);
}

TEST(TwoPhase, AllYesLogsDecisionBeforeAnyCommitOrReply) {
  TwoPhaseTxn t = MakeTxn(2);
  Step(t, CommitRequested{});
  auto fx = Step(t, VoteReceived{0, Vote::kYes, "", "1"});
  EXPECT_TRUE(fx.empty());
  fx = Step(t, VoteReceived{1, Vote::kYes, "", "2"});
  ASSERT_EQ(fx.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<LogDecision>(fx[0]));
  EXPECT_EQ(OutcomeState(t), TxnState::kInDoubt) << "not durable yet: must not look committed";
  EXPECT_EQ(DecisionOf(t), Decision::kNone);
}

TEST(TwoPhase, DecisionLoggedRepliesCommittedThenSendsCommits) {
  TwoPhaseTxn t = PreparedTxn();
  auto fx = Step(t, DecisionLogged{});
  EXPECT_EQ(Count<ReplyToClient>(fx), 1);
  EXPECT_EQ(Count<SendCommit>(fx), 2);
  EXPECT_EQ(OutcomeState(t), TxnState::kCommitted);
  EXPECT_EQ(DecisionOf(t), Decision::kCommit);
  EXPECT_EQ(t.branches[1].native_id, "200");
}

TEST(TwoPhase, AllAcksCompleteAndForget) {
  TwoPhaseTxn t = PreparedTxn();
  Step(t, DecisionLogged{});
  auto fx = Step(t, CommitAcked{0, BranchResult::kCommitted, ""});
  EXPECT_TRUE(fx.empty());
  fx = Step(t, CommitAcked{1, BranchResult::kCommitted, ""});
  EXPECT_EQ(t.state, TxnState::kCommitted);
  EXPECT_EQ(Count<LogCompletion>(fx), 1);
  EXPECT_EQ(Count<Forget>(fx), 1);
  EXPECT_EQ(Count<ReplyToClient>(fx), 0) << "client was answered at the decision";
}

TEST(TwoPhase, WaitForCompletionRepliesOnlyAfterEveryAck) {
  TwoPhaseTxn t = PreparedTxn(/*wait=*/true);
  auto fx = Step(t, DecisionLogged{});
  EXPECT_EQ(Count<ReplyToClient>(fx), 0);
  fx = Step(t, CommitAcked{0, BranchResult::kCommitted, ""});
  EXPECT_EQ(Count<ReplyToClient>(fx), 0);
  fx = Step(t, CommitAcked{1, BranchResult::kCommitted, ""});
  EXPECT_EQ(Count<ReplyToClient>(fx), 1);
  EXPECT_LT(IndexOf<LogCompletion>(fx), IndexOf<ReplyToClient>(fx));
}

TEST(TwoPhase, NoVoteAbortsWithoutLoggingAndRollsBackTheOthers) {
  TwoPhaseTxn t = MakeTxn(3);
  Step(t, CommitRequested{});
  Step(t, VoteReceived{0, Vote::kYes, "", "1"});
  auto fx = Step(t, VoteReceived{1, Vote::kNo, "expected 1 row, got 0", ""});
  EXPECT_EQ(t.state, TxnState::kAborting);
  EXPECT_EQ(Count<LogDecision>(fx), 0);
  EXPECT_EQ(Count<ReplyToClient>(fx), 1);
  EXPECT_EQ(Count<SendRollback>(fx), 2) << "the NO voter rolled itself back";
  EXPECT_EQ(OutcomeState(t), TxnState::kAborted);
  EXPECT_EQ(DecisionOf(t), Decision::kAbort);
  EXPECT_NE(t.reason.find("p1 voted NO: expected 1 row"), std::string::npos) << t.reason;
}

TEST(TwoPhase, LateYesAfterAbortChangesNothing) {
  TwoPhaseTxn t = MakeTxn(2);
  Step(t, CommitRequested{});
  Step(t, VoteReceived{0, Vote::kNo, "x", ""});
  auto fx = Step(t, VoteReceived{1, Vote::kYes, "", "5"});
  EXPECT_TRUE(fx.empty());
  EXPECT_EQ(t.state, TxnState::kAborting);
}

TEST(TwoPhase, PrepareFailureCountsAsNo) {
  TwoPhaseTxn t = MakeTxn(2);
  Step(t, CommitRequested{});
  auto fx = Step(t, PrepareFailed{0, "UNAVAILABLE: connection refused"});
  EXPECT_EQ(t.state, TxnState::kAborting);
  EXPECT_EQ(Count<SendRollback>(fx), 1);
}

TEST(TwoPhase, PrepareTimeoutAbortsNamingTheSilentParticipant) {
  TwoPhaseTxn t = MakeTxn(2);
  Step(t, CommitRequested{});
  Step(t, VoteReceived{0, Vote::kYes, "", "1"});
  auto fx = Step(t, PrepareTimedOut{});
  EXPECT_EQ(t.state, TxnState::kAborting);
  EXPECT_EQ(Count<SendRollback>(fx), 2);
  EXPECT_NE(t.reason.find("waiting for p1"), std::string::npos) << t.reason;
}

TEST(TwoPhase, PrepareTimeoutWhileLoggingDecisionIsIgnored) {
  TwoPhaseTxn t = PreparedTxn();
  auto fx = Step(t, PrepareTimedOut{});
  EXPECT_TRUE(fx.empty());
  EXPECT_EQ(t.state, TxnState::kCommitting);
  fx = Step(t, RollbackRequested{});
  EXPECT_TRUE(fx.empty()) << "a rollback must not race the COMMIT record";
}

TEST(TwoPhase, DuplicateVoteIsIgnored) {
  TwoPhaseTxn t = MakeTxn(2);
  Step(t, CommitRequested{});
  Step(t, VoteReceived{0, Vote::kYes, "", "1"});
  auto fx = Step(t, VoteReceived{0, Vote::kYes, "", "1"});
  EXPECT_TRUE(fx.empty());
  fx = Step(t, VoteReceived{0, Vote::kNo, "late", ""});
  EXPECT_TRUE(fx.empty());
  EXPECT_EQ(t.state, TxnState::kPreparing);
}

TEST(TwoPhase, VoteForUnknownBranchIsIgnored) {
  TwoPhaseTxn t = MakeTxn(2);
  Step(t, CommitRequested{});
  EXPECT_TRUE(Step(t, VoteReceived{7, Vote::kYes, "", ""}).empty());
}

TEST(TwoPhase, ReadOnlyBranchLeavesPhaseTwo) {
  TwoPhaseTxn t = MakeTxn(2);
  Step(t, CommitRequested{});
  Step(t, VoteReceived{0, Vote::kReadOnly, "", ""});
  Step(t, VoteReceived{1, Vote::kYes, "", "9"});
  auto fx = Step(t, DecisionLogged{});
  ASSERT_EQ(Count<SendCommit>(fx), 1);
  for (const auto& e : fx) {
    if (auto* c = std::get_if<SendCommit>(&e)) {
      EXPECT_EQ(c->branch, 1u);
    }
  }
}

TEST(TwoPhase, AllReadOnlyCommitsWithoutLogging) {
  TwoPhaseTxn t = MakeTxn(2);
  Step(t, CommitRequested{});
  Step(t, VoteReceived{0, Vote::kReadOnly, "", ""});
  auto fx = Step(t, VoteReceived{1, Vote::kReadOnly, "", ""});
  EXPECT_EQ(t.state, TxnState::kCommitted);
  EXPECT_EQ(Count<LogDecision>(fx), 0);
  EXPECT_EQ(Count<ReplyToClient>(fx), 1);
}

TEST(TwoPhase, ReadOnlyVoterIsNotRolledBackOnAbort) {
  TwoPhaseTxn t = MakeTxn(3);
  Step(t, CommitRequested{});
  Step(t, VoteReceived{0, Vote::kReadOnly, "", ""});
  auto fx = Step(t, VoteReceived{1, Vote::kNo, "r", ""});
  ASSERT_EQ(Count<SendRollback>(fx), 1);
  EXPECT_EQ(std::get<SendRollback>(fx[IndexOf<SendRollback>(fx)]).branch, 2u);
}

TEST(TwoPhase, SingleBranchCommitsInOnePhaseWithoutLog) {
  TwoPhaseTxn t = MakeTxn(1);
  auto fx = Step(t, CommitRequested{});
  ASSERT_EQ(fx.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<SendCommitOnePhase>(fx[0]));
  EXPECT_EQ(DecisionOf(t), Decision::kNone);
  fx = Step(t, OnePhaseFinished{BranchResult::kCommitted, ""});
  EXPECT_EQ(t.state, TxnState::kCommitted);
  EXPECT_EQ(Count<LogDecision>(fx), 0);
  EXPECT_EQ(Count<LogCompletion>(fx), 0);
  EXPECT_EQ(Count<ReplyToClient>(fx), 1);
}

TEST(TwoPhase, AKeyedSingleBranchIsPreparedAndLoggedNeverCommittedInOnePhase) {
  TwoPhaseTxn t = MakeTxn(1);
  t.keyed = true;
  auto fx = Step(t, CommitRequested{});
  EXPECT_EQ(Count<SendCommitOnePhase>(fx), 0) << "its key would not survive a crash";
  EXPECT_EQ(Count<SendPrepare>(fx), 1);
  fx = Step(t, VoteReceived{0, Vote::kYes, "", "7"});
  EXPECT_EQ(Count<LogDecision>(fx), 1);
}

TEST(TwoPhase, SingleBranchWithOnePhaseOffIsPreparedAndLogged) {
  TwoPhaseTxn t = MakeTxn(1);
  t.one_phase_allowed = false;  // txcoord --no-one-phase
  auto fx = Step(t, CommitRequested{});
  EXPECT_EQ(Count<SendPrepare>(fx), 1);
  EXPECT_EQ(Count<SendCommitOnePhase>(fx), 0);
  fx = Step(t, VoteReceived{0, Vote::kYes, "", "7"});
  EXPECT_EQ(Count<LogDecision>(fx), 1);
}

TEST(TwoPhase, OnePhaseAbortReportsReason) {
  TwoPhaseTxn t = MakeTxn(1);
  Step(t, CommitRequested{});
  Step(t, OnePhaseFinished{BranchResult::kAborted, "expected 1 row, got 0"});
  EXPECT_EQ(t.state, TxnState::kAborted);
  EXPECT_NE(t.reason.find("expected 1 row"), std::string::npos);
}

TEST(TwoPhase, OnePhaseLostAnswerIsQueriedThenInDoubtNeverGuessed) {
  TwoPhaseTxn t = MakeTxn(1);
  Step(t, CommitRequested{});
  for (int i = 1; i < kMaxOnePhaseQueries; ++i) {
    auto fx = Step(t, OnePhaseFailed{"deadline"});
    ASSERT_EQ(fx.size(), 1u);
    EXPECT_EQ(std::get<SendCommitOnePhase>(fx[0]).attempt, i);
  }
  auto fx = Step(t, OnePhaseFailed{"deadline"});
  EXPECT_EQ(OutcomeState(t), TxnState::kInDoubt);
  EXPECT_EQ(Count<ReplyToClient>(fx), 1);
  EXPECT_NE(t.reason.find("not known yet"), std::string::npos);
  // It goes on asking, without answering again, until the database's answer comes.
  for (int i = 0; i < 20; ++i) {
    fx = Step(t, i % 2 ? TwoPhaseEvent{OnePhaseFailed{"deadline"}}
                       : TwoPhaseEvent{OnePhaseFinished{BranchResult::kUnknown, "?"}});
    ASSERT_EQ(Count<SendCommitOnePhase>(fx), 1);
    EXPECT_EQ(Count<ReplyToClient>(fx), 0);
    EXPECT_EQ(Count<Forget>(fx), 0);
  }
  fx = Step(t, OnePhaseFinished{BranchResult::kCommitted, ""});
  EXPECT_EQ(t.state, TxnState::kCommitted);
  EXPECT_EQ(OutcomeState(t), TxnState::kCommitted);
  EXPECT_EQ(Count<Forget>(fx), 1);
}

TEST(TwoPhase, CommitFailureRetriesWithGrowingAttemptForever) {
  TwoPhaseTxn t = PreparedTxn();
  Step(t, DecisionLogged{});
  for (int i = 1; i < 50; ++i) {
    auto fx = Step(t, CommitFailed{0, "unavailable"});
    ASSERT_EQ(fx.size(), 1u);
    EXPECT_EQ(std::get<SendCommit>(fx[0]).attempt, i);
  }
  EXPECT_EQ(t.state, TxnState::kCommitting);
}

TEST(TwoPhase, DuplicateCommitAckIsIgnored) {
  TwoPhaseTxn t = PreparedTxn();
  Step(t, DecisionLogged{});
  Step(t, CommitAcked{0, BranchResult::kCommitted, ""});
  EXPECT_TRUE(Step(t, CommitAcked{0, BranchResult::kCommitted, ""}).empty());
  EXPECT_TRUE(Step(t, CommitFailed{0, "late failure"}).empty());
}

TEST(TwoPhase, CommitAckBeforeDecisionLoggedIsIgnored) {
  TwoPhaseTxn t = PreparedTxn();
  EXPECT_TRUE(Step(t, CommitAcked{0, BranchResult::kCommitted, ""}).empty());
}

TEST(TwoPhase, BranchRolledBackBehindOurBackIsHeuristicMixed) {
  TwoPhaseTxn t = PreparedTxn();
  Step(t, DecisionLogged{});
  Step(t, CommitAcked{0, BranchResult::kCommitted, ""});
  auto fx = Step(t, CommitAcked{1, BranchResult::kAborted, "xid 200 aborted"});
  EXPECT_EQ(t.state, TxnState::kHeuristicMixed);
  EXPECT_EQ(t.branches[1].state, BranchState::kHeuristic);
  EXPECT_EQ(Count<LogCompletion>(fx), 1);
  EXPECT_EQ(DecisionOf(t), Decision::kCommit);
}

TEST(TwoPhase, DecisionLogFailureIsInDoubtNotAborted) {
  TwoPhaseTxn t = PreparedTxn();
  auto fx = Step(t, DecisionLogFailed{"IO error"});
  EXPECT_EQ(t.state, TxnState::kInDoubt);
  EXPECT_EQ(Count<SendCommit>(fx) + Count<SendRollback>(fx), 0);
  EXPECT_EQ(Count<ReplyToClient>(fx), 1);
  EXPECT_EQ(DecisionOf(t), Decision::kNone);
}

TEST(TwoPhase, RollbackFromActiveRollsBackEveryBranch) {
  TwoPhaseTxn t = MakeTxn(2);
  auto fx = Step(t, RollbackRequested{});
  EXPECT_EQ(Count<SendRollback>(fx), 2);
  EXPECT_EQ(Count<ReplyToClient>(fx), 1);
  Step(t, RollbackAcked{0, BranchResult::kAborted, ""});
  fx = Step(t, RollbackAcked{1, BranchResult::kAborted, ""});
  EXPECT_EQ(t.state, TxnState::kAborted);
  EXPECT_EQ(Count<Forget>(fx), 1);
}

TEST(TwoPhase, RollbackWithNoBranchesFinishesAtOnce) {
  TwoPhaseTxn t = MakeTxn(0);
  auto fx = Step(t, RollbackRequested{});
  EXPECT_EQ(t.state, TxnState::kAborted);
  EXPECT_EQ(Count<Forget>(fx), 1);
}

TEST(TwoPhase, CommitWithNoBranchesCommitsTrivially) {
  TwoPhaseTxn t = MakeTxn(0);
  auto fx = Step(t, CommitRequested{});
  EXPECT_EQ(t.state, TxnState::kCommitted);
  EXPECT_EQ(Count<ReplyToClient>(fx), 1);
}

TEST(TwoPhase, RollbackRetriesAreBoundedThenLeftToTheAgent) {
  TwoPhaseTxn t = MakeTxn(2);
  Step(t, RollbackRequested{});
  Step(t, RollbackAcked{0, BranchResult::kAborted, ""});
  int sends = 0;
  for (int i = 0; i < 100 && t.state == TxnState::kAborting; ++i) {
    sends += Count<SendRollback>(Step(t, RollbackFailed{1, "down"}));
  }
  EXPECT_EQ(t.state, TxnState::kAborted);
  EXPECT_EQ(sends, kMaxRollbackAttempts - 1);
}

TEST(TwoPhase, RollbackAckReportingCommitIsHeuristic) {
  TwoPhaseTxn t = MakeTxn(1);
  Step(t, RollbackRequested{});
  Step(t, RollbackAcked{0, BranchResult::kCommitted, "committed by hand"});
  EXPECT_EQ(t.state, TxnState::kHeuristicMixed);
}

TEST(TwoPhase, SecondCommitRequestIsIgnored) {
  TwoPhaseTxn t = MakeTxn(2);
  Step(t, CommitRequested{});
  EXPECT_TRUE(Step(t, CommitRequested{}).empty());
}

TEST(TwoPhase, ResumeCommitResendsToUnfinishedBranchesOnly) {
  TwoPhaseTxn t = MakeTxn(3);
  t.branches[0].state = BranchState::kPrepared;
  t.branches[1].state = BranchState::kCommitted;
  t.branches[2].state = BranchState::kReadOnly;
  auto fx = ResumeCommit(t);
  ASSERT_EQ(Count<SendCommit>(fx), 1);
  EXPECT_EQ(Count<ReplyToClient>(fx), 0);
  EXPECT_EQ(DecisionOf(t), Decision::kCommit);
  fx = Step(t, CommitAcked{0, BranchResult::kCommitted, ""});
  EXPECT_EQ(t.state, TxnState::kCommitted);
  EXPECT_EQ(Count<LogCompletion>(fx), 1);
}

TEST(TwoPhase, ResumeCommitWithEverythingFinishedJustCompletes) {
  TwoPhaseTxn t = MakeTxn(2);
  t.branches[0].state = BranchState::kCommitted;
  t.branches[1].state = BranchState::kCommitted;
  auto fx = ResumeCommit(t);
  EXPECT_EQ(t.state, TxnState::kCommitted);
  EXPECT_EQ(Count<LogCompletion>(fx), 1);
}

// --- last resource (a branch that cannot prepare, committed last in one phase) ---

TwoPhaseTxn LastResourceTxn() {
  TwoPhaseTxn t = MakeTxn(3);
  t.last_resource = 2;
  return t;
}

// Drives a last-resource transaction to the point where the last resource was asked to commit.
TwoPhaseTxn AskedLastResource() {
  TwoPhaseTxn t = LastResourceTxn();
  Step(t, CommitRequested{});
  Step(t, VoteReceived{0, Vote::kYes, "", "1"});
  auto fx = Step(t, VoteReceived{1, Vote::kYes, "", "2"});
  EXPECT_EQ(Count<LogDecision>(fx), 1);
  EXPECT_TRUE(std::get<LogDecision>(fx[0]).committing_last);
  fx = Step(t, DecisionLogged{Decision::kNone, true});
  EXPECT_EQ(Count<SendCommitOnePhase>(fx), 1);
  return t;
}

TEST(LastResource, IsNotPreparedAndIsAskedOnlyAfterTheCommittingLastRecord) {
  TwoPhaseTxn t = LastResourceTxn();
  auto fx = Step(t, CommitRequested{});
  EXPECT_EQ(Count<SendPrepare>(fx), 2);
  for (const auto& e : fx) {
    if (auto* p = std::get_if<SendPrepare>(&e)) {
      EXPECT_NE(p->branch, 2u);
    }
  }
  Step(t, VoteReceived{0, Vote::kYes, "", "1"});
  fx = Step(t, VoteReceived{1, Vote::kYes, "", "2"});
  ASSERT_EQ(fx.size(), 1u) << "nothing may reach the last resource before the record is durable";
  EXPECT_TRUE(std::get<LogDecision>(fx[0]).committing_last);
  EXPECT_EQ(DecisionOf(t), Decision::kNone);
  fx = Step(t, DecisionLogged{Decision::kNone, true});
  ASSERT_EQ(fx.size(), 1u);
  EXPECT_EQ(std::get<SendCommitOnePhase>(fx[0]).branch, 2u);
  EXPECT_EQ(std::get<SendCommitOnePhase>(fx[0]).attempt, 0);
  EXPECT_EQ(OutcomeState(t), TxnState::kInDoubt);
}

TEST(LastResource, ItsCommitIsTheDecisionLoggedBeforeTheOthersCommit) {
  TwoPhaseTxn t = AskedLastResource();
  auto fx = Step(t, OnePhaseFinished{BranchResult::kCommitted, ""});
  ASSERT_EQ(fx.size(), 1u);
  EXPECT_EQ(std::get<LogDecision>(fx[0]).decision, Decision::kCommit);
  EXPECT_EQ(DecisionOf(t), Decision::kNone) << "not durable yet";
  fx = Step(t, DecisionLogged{Decision::kCommit, false});
  EXPECT_EQ(Count<SendCommit>(fx), 2);
  EXPECT_EQ(Count<ReplyToClient>(fx), 1);
  EXPECT_EQ(DecisionOf(t), Decision::kCommit);
  Step(t, CommitAcked{0, BranchResult::kCommitted, ""});
  fx = Step(t, CommitAcked{1, BranchResult::kCommitted, ""});
  EXPECT_EQ(t.state, TxnState::kCommitted);
  EXPECT_EQ(Count<LogCompletion>(fx), 1);
}

TEST(LastResource, ItsAbortAbortsTheOthersAndIsRecorded) {
  TwoPhaseTxn t = AskedLastResource();
  auto fx = Step(t, OnePhaseFinished{BranchResult::kAborted, "write conflict"});
  EXPECT_EQ(t.state, TxnState::kAborting);
  EXPECT_EQ(Count<SendRollback>(fx), 2);
  EXPECT_EQ(Count<ReplyToClient>(fx), 1);
  ASSERT_EQ(Count<LogDecision>(fx), 1);
  EXPECT_EQ(std::get<LogDecision>(fx[IndexOf<LogDecision>(fx)]).decision, Decision::kAbort);
  EXPECT_EQ(DecisionOf(t), Decision::kAbort);
  EXPECT_NE(t.reason.find("write conflict"), std::string::npos);
}

TEST(LastResource, UnknownResultIsAskedAgainForeverNeverGuessed) {
  TwoPhaseTxn t = AskedLastResource();
  int replies = 0;
  for (int i = 0; i < 30; ++i) {
    auto fx = Step(t, i % 2 ? OnePhaseFailed{"unavailable"}
                            : TwoPhaseEvent(OnePhaseFinished{BranchResult::kUnknown, "?"}));
    ASSERT_EQ(Count<SendCommitOnePhase>(fx), 1);
    EXPECT_GT(std::get<SendCommitOnePhase>(fx[fx.size() - 1]).attempt, 0);
    replies += Count<ReplyToClient>(fx);
    EXPECT_EQ(Count<SendCommit>(fx) + Count<SendRollback>(fx), 0);
  }
  EXPECT_EQ(replies, 1) << "the client hears IN_DOUBT once";
  EXPECT_EQ(OutcomeState(t), TxnState::kInDoubt);
  EXPECT_EQ(DecisionOf(t), Decision::kNone);
  auto fx = Step(t, OnePhaseFinished{BranchResult::kCommitted, ""});
  EXPECT_EQ(Count<LogDecision>(fx), 1);
}

TEST(LastResource, NoVoteBeforeTheLastResourceRollsItBackToo) {
  TwoPhaseTxn t = LastResourceTxn();
  Step(t, CommitRequested{});
  auto fx = Step(t, VoteReceived{0, Vote::kNo, "r", ""});
  EXPECT_EQ(Count<SendRollback>(fx), 2) << "branch 1 and the last resource";
  EXPECT_EQ(Count<SendCommitOnePhase>(fx), 0);
}

// The failed committing-last write may have landed, and a restart finding it would ask the
// last resource, whose open branch (interactive) would commit: the ABORT is written over it,
// synced, before anything acts on it (found by the simulation).
TEST(LastResource, FailedCommittingLastRecordAbortsOnceTheAbortIsDurable) {
  TwoPhaseTxn t = LastResourceTxn();
  Step(t, CommitRequested{});
  Step(t, VoteReceived{0, Vote::kYes, "", "1"});
  Step(t, VoteReceived{1, Vote::kYes, "", "2"});
  auto fx = Step(t, DecisionLogFailed{"disk full", true});
  ASSERT_EQ(fx.size(), 1u) << "no rollback and no answer before the ABORT is durable";
  EXPECT_EQ(std::get<LogDecision>(fx[0]).decision, Decision::kAbort);
  EXPECT_TRUE(std::get<LogDecision>(fx[0]).sync_abort);
  EXPECT_EQ(CheckResolve(t, Decision::kCommit).has_value(), true) << "the operator waits too";
  // That write fails as well: the client hears IN_DOUBT, and it is written again, later.
  fx = Step(t, DecisionLogFailed{"disk still full", false});
  EXPECT_EQ(Count<ReplyToClient>(fx), 1);
  EXPECT_EQ(OutcomeState(t), TxnState::kInDoubt);
  ASSERT_EQ(Count<LogDecision>(fx), 1);
  EXPECT_EQ(std::get<LogDecision>(fx[IndexOf<LogDecision>(fx)]).attempt, 1);
  EXPECT_EQ(Count<SendRollback>(fx), 0);
  fx = Step(t, DecisionLogged{Decision::kAbort, false});
  EXPECT_EQ(t.state, TxnState::kAborting);
  EXPECT_EQ(Count<SendRollback>(fx), 3) << "the two prepared branches and the last resource";
  EXPECT_EQ(Count<SendCommitOnePhase>(fx), 0);
  EXPECT_EQ(DecisionOf(t), Decision::kAbort);
}

TEST(LastResource, AllOthersReadOnlyIsAPlainOnePhaseCommit) {
  TwoPhaseTxn t = LastResourceTxn();
  Step(t, CommitRequested{});
  Step(t, VoteReceived{0, Vote::kReadOnly, "", ""});
  auto fx = Step(t, VoteReceived{1, Vote::kReadOnly, "", ""});
  ASSERT_EQ(Count<SendCommitOnePhase>(fx), 1);
  EXPECT_EQ(Count<LogDecision>(fx), 0);
  fx = Step(t, OnePhaseFinished{BranchResult::kCommitted, ""});
  EXPECT_EQ(t.state, TxnState::kCommitted);
}

// A keyed transaction's key must survive a crash between the one-phase commit and its answer,
// and only a record written before that commit can carry it: a restart would otherwise not know
// the key, and the client's retry would commit on the last resource a second time.
TEST(LastResource, KeyedWithAllOthersReadOnlyLogsTheCommittingLastRecordFirst) {
  TwoPhaseTxn t = LastResourceTxn();
  t.keyed = true;
  Step(t, CommitRequested{});
  Step(t, VoteReceived{0, Vote::kReadOnly, "", ""});
  auto fx = Step(t, VoteReceived{1, Vote::kReadOnly, "", ""});
  ASSERT_EQ(fx.size(), 1u) << "nothing reaches the last resource before the record is durable";
  EXPECT_TRUE(std::get<LogDecision>(fx[0]).committing_last);
  fx = Step(t, DecisionLogged{Decision::kNone, true});
  ASSERT_EQ(Count<SendCommitOnePhase>(fx), 1);
  fx = Step(t, OnePhaseFinished{BranchResult::kCommitted, ""});
  ASSERT_EQ(Count<LogDecision>(fx), 1);
  EXPECT_EQ(std::get<LogDecision>(fx[0]).decision, Decision::kCommit);
  fx = Step(t, DecisionLogged{Decision::kCommit, false});
  EXPECT_EQ(Count<SendCommit>(fx), 0) << "the read-only branches are done";
  EXPECT_EQ(Count<ReplyToClient>(fx), 1);
  EXPECT_EQ(t.state, TxnState::kCommitted);
  EXPECT_EQ(Count<LogCompletion>(fx), 1);
}

TEST(LastResource, KeyedSingleLastResourceLogsTheCommittingLastRecordFirst) {
  TwoPhaseTxn t = MakeTxn(1);
  t.last_resource = 0;
  t.keyed = true;
  auto fx = Step(t, CommitRequested{});
  ASSERT_EQ(fx.size(), 1u);
  EXPECT_TRUE(std::get<LogDecision>(fx[0]).committing_last);
  fx = Step(t, DecisionLogged{Decision::kNone, true});
  ASSERT_EQ(Count<SendCommitOnePhase>(fx), 1);
  // Restarted from that record, the coordinator asks; it does not commit anew.
  TwoPhaseTxn r = MakeTxn(1);
  r.last_resource = 0;
  r.keyed = true;
  fx = ResumeCommittingLast(r);
  ASSERT_EQ(fx.size(), 1u);
  EXPECT_GT(std::get<SendCommitOnePhase>(fx[0]).attempt, 0);
}

TEST(LastResource, DuplicateAnswersAreIgnored) {
  TwoPhaseTxn t = AskedLastResource();
  Step(t, OnePhaseFinished{BranchResult::kCommitted, ""});
  EXPECT_TRUE(Step(t, OnePhaseFinished{BranchResult::kCommitted, ""}).empty());
  EXPECT_TRUE(Step(t, OnePhaseFinished{BranchResult::kAborted, "late"}).empty());
  EXPECT_TRUE(Step(t, DecisionLogged{Decision::kNone, true}).empty());
}

TEST(LastResource, RestartWithCommittingLastRecordQueriesTheLastResource) {
  TwoPhaseTxn t = MakeTxn(3);
  t.last_resource = 2;
  t.branches[0].state = BranchState::kPrepared;
  t.branches[1].state = BranchState::kPrepared;
  auto fx = ResumeCommittingLast(t);
  ASSERT_EQ(fx.size(), 1u);
  EXPECT_EQ(std::get<SendCommitOnePhase>(fx[0]).branch, 2u);
  EXPECT_GT(std::get<SendCommitOnePhase>(fx[0]).attempt, 0) << "a query, not a new commit";
  EXPECT_EQ(DecisionOf(t), Decision::kNone);
  fx = Step(t, OnePhaseFinished{BranchResult::kAborted, "no marker"});
  EXPECT_EQ(Count<SendRollback>(fx), 2);
  EXPECT_EQ(Count<ReplyToClient>(fx), 0) << "nobody is waiting after a restart";
}

// --- allow_heuristic: a second branch that cannot prepare ---

TwoPhaseTxn HeuristicTxn() {
  TwoPhaseTxn t = MakeTxn(3);
  t.last_resource = 1;
  t.heuristic_resources = {2};
  return t;
}

TwoPhaseTxn HeuristicDecided() {
  TwoPhaseTxn t = HeuristicTxn();
  auto fx = Step(t, CommitRequested{});
  EXPECT_EQ(Count<SendPrepare>(fx), 1) << "only branch 0 can prepare";
  Step(t, VoteReceived{0, Vote::kYes, "", "1"});
  fx = Step(t, DecisionLogged{Decision::kNone, true});
  EXPECT_EQ(Count<SendCommitOnePhase>(fx), 1);
  EXPECT_EQ(std::get<SendCommitOnePhase>(fx[0]).branch, 1u);
  fx = Step(t, OnePhaseFinished{BranchResult::kCommitted, "", 1});
  EXPECT_EQ(Count<LogDecision>(fx), 1);
  fx = Step(t, DecisionLogged{Decision::kCommit, false});
  EXPECT_EQ(Count<SendCommit>(fx), 1);
  EXPECT_EQ(Count<SendCommitOnePhase>(fx), 1) << "the heuristic resource only after COMMIT";
  return t;
}

TEST(Heuristic, NothingToPrepareGoesStraightToTheLastResource) {
  TwoPhaseTxn t = MakeTxn(2);
  t.last_resource = 0;
  t.heuristic_resources = {1};
  auto fx = Step(t, CommitRequested{});
  ASSERT_EQ(fx.size(), 1u);
  EXPECT_TRUE(std::get<LogDecision>(fx[0]).committing_last);
}

TEST(Heuristic, AllCommitIsCommitted) {
  TwoPhaseTxn t = HeuristicDecided();
  Step(t, CommitAcked{0, BranchResult::kCommitted, ""});
  EXPECT_EQ(t.state, TxnState::kCommitting) << "branch 2 has not answered";
  auto fx = Step(t, OnePhaseFinished{BranchResult::kCommitted, "", 2});
  EXPECT_EQ(t.state, TxnState::kCommitted);
  EXPECT_EQ(Count<LogCompletion>(fx), 1);
}

TEST(Heuristic, LateAbortIsHeuristicMixedNeverHidden) {
  TwoPhaseTxn t = HeuristicDecided();
  Step(t, OnePhaseFinished{BranchResult::kAborted, "write conflict", 2});
  auto fx = Step(t, CommitAcked{0, BranchResult::kCommitted, ""});
  EXPECT_EQ(t.state, TxnState::kHeuristicMixed);
  EXPECT_EQ(t.branches[2].state, BranchState::kHeuristic);
  EXPECT_EQ(Count<LogCompletion>(fx), 1);
}

TEST(Heuristic, UnknownIsAskedAgain) {
  TwoPhaseTxn t = HeuristicDecided();
  auto fx = Step(t, OnePhaseFailed{"down", 2});
  ASSERT_EQ(Count<SendCommitOnePhase>(fx), 1);
  EXPECT_EQ(std::get<SendCommitOnePhase>(fx[0]).branch, 2u);
  EXPECT_GT(std::get<SendCommitOnePhase>(fx[0]).attempt, 0);
}

TEST(Heuristic, LastResourceAbortRollsBackTheHeuristicOneToo) {
  TwoPhaseTxn t = HeuristicTxn();
  Step(t, CommitRequested{});
  Step(t, VoteReceived{0, Vote::kYes, "", "1"});
  Step(t, DecisionLogged{Decision::kNone, true});
  auto fx = Step(t, OnePhaseFinished{BranchResult::kAborted, "no", 1});
  EXPECT_EQ(t.state, TxnState::kAborting);
  EXPECT_EQ(Count<SendRollback>(fx), 2);
  EXPECT_EQ(Count<SendCommitOnePhase>(fx), 0);
}

TEST(Heuristic, ResumeCommitQueriesUnfinishedHeuristicResources) {
  TwoPhaseTxn t = HeuristicTxn();
  t.branches[0].state = BranchState::kPrepared;
  t.branches[1].state = BranchState::kCommitted;
  auto fx = ResumeCommit(t);
  EXPECT_EQ(Count<SendCommit>(fx), 1);
  ASSERT_EQ(Count<SendCommitOnePhase>(fx), 1);
  EXPECT_GT(std::get<SendCommitOnePhase>(fx[IndexOf<SendCommitOnePhase>(fx)]).attempt, 0);
}

// --- operator resolution (Admin.ResolveTransaction) ---

// A transaction whose COMMIT write failed: IN_DOUBT, nothing sent.
TwoPhaseTxn InDoubtTxn() {
  TwoPhaseTxn t = PreparedTxn();
  Step(t, DecisionLogFailed{"disk full"});
  EXPECT_EQ(t.state, TxnState::kInDoubt);
  return t;
}

TEST(Resolve, AbortOfAnUndecidedTransactionRollsBackLikeTheClient) {
  TwoPhaseTxn t = MakeTxn(2);
  Step(t, CommitRequested{});
  Step(t, VoteReceived{0, Vote::kYes, "", "1"});  // branch 1 never answers
  EXPECT_EQ(CheckResolve(t, Decision::kAbort), std::nullopt);
  auto fx = Step(t, OperatorResolved{Decision::kAbort});
  EXPECT_EQ(t.state, TxnState::kAborting);
  EXPECT_EQ(Count<SendRollback>(fx), 2);
  EXPECT_EQ(Count<LogDecision>(fx), 0) << "presumed abort: nothing to write";
  EXPECT_EQ(t.reason, "aborted by an operator");
}

TEST(Resolve, CommitOfAnUndecidedTransactionIsRefused) {
  TwoPhaseTxn t = MakeTxn(2);
  Step(t, CommitRequested{});
  std::optional<std::string> why = CheckResolve(t, Decision::kCommit);
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("only ABORT"), std::string::npos);
  EXPECT_TRUE(Step(t, OperatorResolved{Decision::kCommit}).empty());
  EXPECT_EQ(t.state, TxnState::kPreparing);
}

TEST(Resolve, InDoubtCommitIsWrittenBeforeAnyCommitGoesOut) {
  TwoPhaseTxn t = InDoubtTxn();
  auto fx = Step(t, OperatorResolved{Decision::kCommit});
  ASSERT_EQ(fx.size(), 1u);
  EXPECT_EQ(std::get<LogDecision>(fx[0]).decision, Decision::kCommit);
  EXPECT_EQ(DecisionOf(t), Decision::kNone);
  EXPECT_TRUE(CheckResolve(t, Decision::kAbort).has_value()) << "one resolution at a time";
  fx = Step(t, DecisionLogged{Decision::kCommit, false});
  EXPECT_EQ(t.state, TxnState::kCommitting);
  EXPECT_EQ(Count<SendCommit>(fx), 2);
  EXPECT_EQ(DecisionOf(t), Decision::kCommit);
}

TEST(Resolve, InDoubtAbortIsWrittenSyncedBeforeAnyRollbackGoesOut) {
  TwoPhaseTxn t = InDoubtTxn();
  auto fx = Step(t, OperatorResolved{Decision::kAbort});
  ASSERT_EQ(fx.size(), 1u);
  const auto& log = std::get<LogDecision>(fx[0]);
  EXPECT_EQ(log.decision, Decision::kAbort);
  EXPECT_TRUE(log.sync_abort) << "it must replace whatever the failed COMMIT write left";
  fx = Step(t, DecisionLogged{Decision::kAbort, false});
  EXPECT_EQ(t.state, TxnState::kAborting);
  EXPECT_EQ(Count<SendRollback>(fx), 2);
  EXPECT_EQ(DecisionOf(t), Decision::kAbort);
}

TEST(Resolve, AFailedResolutionWriteLeavesItInDoubtAndCanBeRetried) {
  TwoPhaseTxn t = InDoubtTxn();
  Step(t, OperatorResolved{Decision::kCommit});
  EXPECT_TRUE(Step(t, DecisionLogFailed{"still full"}).empty());
  EXPECT_EQ(t.state, TxnState::kInDoubt);
  EXPECT_EQ(CheckResolve(t, Decision::kAbort), std::nullopt);
}

TEST(Resolve, ALoggedDecisionIsNeverChangedButCanBeRedriven) {
  TwoPhaseTxn t = PreparedTxn();
  Step(t, DecisionLogged{});
  Step(t, CommitAcked{0, BranchResult::kCommitted, ""});
  Step(t, CommitFailed{1, "down"});
  ASSERT_TRUE(CheckResolve(t, Decision::kAbort).has_value());
  EXPECT_NE(CheckResolve(t, Decision::kAbort)->find("never changed"), std::string::npos);
  auto fx = Step(t, OperatorResolved{Decision::kCommit});
  ASSERT_EQ(Count<SendCommit>(fx), 1);
  EXPECT_EQ(std::get<SendCommit>(fx[0]).branch, 1u);
  EXPECT_EQ(std::get<SendCommit>(fx[0]).attempt, 0) << "re-driven now, not after a backoff";
}

TEST(Resolve, AnAbortingTransactionCannotBeCommitted) {
  TwoPhaseTxn t = MakeTxn(2);
  Step(t, RollbackRequested{});
  EXPECT_TRUE(CheckResolve(t, Decision::kCommit).has_value());
  EXPECT_EQ(Count<SendRollback>(Step(t, OperatorResolved{Decision::kAbort})), 2);
}

TEST(Resolve, FinishedTransactionsAreRefused) {
  TwoPhaseTxn t = MakeTxn(1);
  Step(t, RollbackRequested{});
  Step(t, RollbackAcked{0, BranchResult::kAborted, ""});
  ASSERT_EQ(t.state, TxnState::kAborted);
  EXPECT_NE(CheckResolve(t, Decision::kAbort)->find("already ABORTED"), std::string::npos);
}

TEST(Resolve, UnknownLastResourceOutcomeTakesTheOperatorsAnswer) {
  TwoPhaseTxn t = AskedLastResource();
  Step(t, OnePhaseFailed{"unreachable"});
  auto fx = Step(t, OperatorResolved{Decision::kAbort});
  ASSERT_EQ(fx.size(), 1u) << "no rollback before the ABORT is durable";
  EXPECT_EQ(std::get<LogDecision>(fx[0]).decision, Decision::kAbort);
  EXPECT_TRUE(std::get<LogDecision>(fx[0]).sync_abort);
  // The last resource's own answer arriving meanwhile changes nothing.
  EXPECT_TRUE(Step(t, OnePhaseFinished{BranchResult::kCommitted, ""}).empty());
  fx = Step(t, DecisionLogged{Decision::kAbort, false});
  EXPECT_EQ(t.state, TxnState::kAborting);
  EXPECT_EQ(Count<SendRollback>(fx), 2);
}

TEST(Resolve, UnknownLastResourceOutcomeResolvedAsCommit) {
  TwoPhaseTxn t = AskedLastResource();
  Step(t, OnePhaseFailed{"unreachable"});
  auto fx = Step(t, OperatorResolved{Decision::kCommit});
  ASSERT_EQ(fx.size(), 1u);
  EXPECT_EQ(std::get<LogDecision>(fx[0]).decision, Decision::kCommit);
  fx = Step(t, DecisionLogged{Decision::kCommit, false});
  EXPECT_EQ(Count<SendCommit>(fx), 2);
}

TEST(Resolve, OnePhaseInDoubtCannotBeResolvedByTheCoordinator) {
  TwoPhaseTxn t = MakeTxn(1);
  Step(t, CommitRequested{});
  for (int i = 0; i < kMaxOnePhaseQueries + 1; ++i) Step(t, OnePhaseFailed{"lost"});
  ASSERT_EQ(OutcomeState(t), TxnState::kInDoubt);
  // Only the database knows; the coordinator keeps asking it.
  EXPECT_TRUE(CheckResolve(t, Decision::kCommit).has_value());
  EXPECT_TRUE(CheckResolve(t, Decision::kAbort).has_value());
}

TEST(Resolve, HeuristicAbortIsRecordedSoItIsNeverForgotten) {
  TwoPhaseTxn t = MakeTxn(2);
  Step(t, RollbackRequested{});
  Step(t, RollbackAcked{0, BranchResult::kAborted, ""});
  auto fx = Step(t, RollbackAcked{1, BranchResult::kCommitted, "committed by hand"});
  EXPECT_EQ(t.state, TxnState::kHeuristicMixed);
  EXPECT_EQ(Count<LogCompletion>(fx), 1);
  EXPECT_EQ(DecisionOf(t), Decision::kAbort);
}

}  // namespace
}  // namespace txn::core
