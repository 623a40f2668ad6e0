#include "coordinator/core/three_phase.h"

#include <gtest/gtest.h>

namespace txn::core {
namespace {

using Effects = std::vector<ThreePhaseEffect>;

ThreePhaseTxn MakeTxn(int n = 3) {
  ThreePhaseTxn t;
  t.id = "n1-1-1";
  for (int i = 0; i < n; ++i)
    t.branches.push_back(BranchStatus{.participant = "p" + std::to_string(i)});
  return t;
}

template <typename T>
int Count(const Effects& fx) {
  int n = 0;
  for (const auto& e : fx) n += std::holds_alternative<T>(e) ? 1 : 0;
  return n;
}

template <typename T>
std::vector<T> All(const Effects& fx) {
  std::vector<T> out;
  for (const auto& e : fx) {
    if (const T* t = std::get_if<T>(&e)) out.push_back(*t);
  }
  return out;
}

TpcReply Ack(const Ballot& b) { return TpcReply{.kind = TpcReply::Kind::kAck, .ballot = b}; }
TpcReply State(const Ballot& b, TpcState s, Ballot attempted = {}) {
  return TpcReply{.kind = TpcReply::Kind::kState, .ballot = b, .state = s, .attempted = attempted};
}

// START durable, every PREPARE sent.
ThreePhaseTxn Preparing(int n = 3) {
  ThreePhaseTxn t = MakeTxn(n);
  Step(t, CommitRequested{});
  Step(t, StartLogged{});
  return t;
}

// All YES: PRE_COMMIT(B0) sent.
ThreePhaseTxn PreCommitted(int n = 3) {
  ThreePhaseTxn t = Preparing(n);
  for (int i = 0; i < n; ++i) Step(t, VoteReceived{.branch = uint32_t(i), .vote = Vote::kYes});
  EXPECT_EQ(t.state, TxnState::kPreCommitted);
  return t;
}

TEST(ThreePhase, StartIsLoggedBeforeAnyPrepare) {
  ThreePhaseTxn t = MakeTxn();
  Effects fx = Step(t, CommitRequested{});
  ASSERT_EQ(fx.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<LogStart>(fx[0]));
  fx = Step(t, StartLogged{});
  EXPECT_EQ(Count<SendPrepare>(fx), 3);
  EXPECT_EQ(Count<StartPrepareTimer>(fx), 1);
}

TEST(ThreePhase, StartWriteFailureAbortsWithoutAnyPrepare) {
  ThreePhaseTxn t = MakeTxn();
  Step(t, CommitRequested{});
  Effects fx = Step(t, StartLogFailed{"disk full"});
  EXPECT_EQ(Count<SendPrepare>(fx), 0);
  EXPECT_EQ(Count<SendRollback>(fx), 3);  // the branches' work is rolled back
  EXPECT_EQ(Count<ReplyToClient>(fx), 1);
  EXPECT_EQ(OutcomeState(t), TxnState::kAborted);
}

TEST(ThreePhase, AllYesSendsPreCommitAtB0AndLogsNothing) {
  ThreePhaseTxn t = Preparing();
  Step(t, VoteReceived{.branch = 0, .vote = Vote::kYes});
  Step(t, VoteReceived{.branch = 1, .vote = Vote::kReadOnly});  // still a member in 3PC
  Effects fx = Step(t, VoteReceived{.branch = 2, .vote = Vote::kYes});
  auto pre = All<SendPreDecide>(fx);
  ASSERT_EQ(pre.size(), 3u);
  for (const auto& p : pre) {
    EXPECT_EQ(p.ballot, InitialBallot());
    EXPECT_EQ(p.direction, Direction::kPreCommit);
  }
  EXPECT_EQ(Count<StartAckTimer>(fx), 1);
  EXPECT_EQ(Count<LogDecision>(fx), 0);  // never COMMIT straight after the votes
  EXPECT_EQ(OutcomeState(t), TxnState::kInDoubt);
  EXPECT_EQ(DecisionOf(t), Decision::kNone);
}

TEST(ThreePhase, CommitIsLoggedAfterAQuorumOfAcksNotAll) {
  ThreePhaseTxn t = PreCommitted();
  EXPECT_TRUE(Step(t, PreDecideAnswered{0, InitialBallot(), Ack(InitialBallot())}).empty());
  // A duplicate ACK from the same branch is not a quorum.
  EXPECT_TRUE(Step(t, PreDecideAnswered{0, InitialBallot(), Ack(InitialBallot())}).empty());
  Effects fx = Step(t, PreDecideAnswered{2, InitialBallot(), Ack(InitialBallot())});
  ASSERT_EQ(Count<LogDecision>(fx), 1);
  EXPECT_EQ(All<LogDecision>(fx)[0].decision, Decision::kCommit);
  EXPECT_EQ(Count<SendCommit>(fx), 0);  // nothing before it is durable
  EXPECT_EQ(DecisionOf(t), Decision::kNone);

  fx = Step(t, DecisionLogged{Decision::kCommit});
  EXPECT_EQ(Count<ReplyToClient>(fx), 1);
  EXPECT_EQ(Count<SendCommit>(fx), 3);
  EXPECT_EQ(OutcomeState(t), TxnState::kCommitted);
  EXPECT_EQ(DecisionOf(t), Decision::kCommit);

  Step(t, CommitAcked{.branch = 0});
  Step(t, CommitFailed{.branch = 1, .reason = "down"});
  Step(t, CommitAcked{.branch = 1});
  fx = Step(t, CommitAcked{.branch = 2});
  EXPECT_EQ(t.state, TxnState::kCommitted);
  EXPECT_EQ(Count<LogCompletion>(fx), 1);
  EXPECT_EQ(Count<Forget>(fx), 1);
}

TEST(ThreePhase, CommitIsRetriedForever) {
  ThreePhaseTxn t = PreCommitted();
  Step(t, PreDecideAnswered{0, InitialBallot(), Ack(InitialBallot())});
  Step(t, PreDecideAnswered{1, InitialBallot(), Ack(InitialBallot())});
  Step(t, DecisionLogged{Decision::kCommit});
  for (int i = 0; i < 50; ++i) {
    Effects fx = Step(t, CommitFailed{.branch = 2, .reason = "down"});
    ASSERT_EQ(Count<SendCommit>(fx), 1);
  }
}

TEST(ThreePhase, NoVoteLogsAbortBeforeAnyRollback) {
  ThreePhaseTxn t = Preparing();
  Step(t, VoteReceived{.branch = 0, .vote = Vote::kYes});
  Effects fx = Step(t, VoteReceived{.branch = 1, .vote = Vote::kNo, .reason = "no funds"});
  ASSERT_EQ(Count<LogDecision>(fx), 1);
  EXPECT_EQ(All<LogDecision>(fx)[0].decision, Decision::kAbort);
  EXPECT_EQ(Count<SendRollback>(fx), 0);
  EXPECT_EQ(Count<SendPreDecide>(fx), 0);
  fx = Step(t, DecisionLogged{Decision::kAbort});
  EXPECT_EQ(Count<ReplyToClient>(fx), 1);
  EXPECT_EQ(Count<SendRollback>(fx), 2);  // the NO voter rolled back already
  EXPECT_EQ(OutcomeState(t), TxnState::kAborted);
  EXPECT_NE(t.reason.find("no funds"), std::string::npos);
  Step(t, RollbackAcked{.branch = 0});
  fx = Step(t, RollbackAcked{.branch = 2});
  EXPECT_EQ(t.state, TxnState::kAborted);
  EXPECT_EQ(Count<Forget>(fx), 1);
}

TEST(ThreePhase, PrepareTimeoutAndFailureAbort) {
  ThreePhaseTxn t = Preparing();
  Effects fx = Step(t, PrepareTimedOut{});
  EXPECT_EQ(Count<LogDecision>(fx), 1);
  ThreePhaseTxn u = Preparing();
  fx = Step(u, PrepareFailed{.branch = 2, .reason = "unreachable"});
  EXPECT_EQ(Count<LogDecision>(fx), 1);
  EXPECT_EQ(u.state, TxnState::kAborting);
}

TEST(ThreePhase, NoAbortOnceAPreCommitWentOut) {
  ThreePhaseTxn t = PreCommitted();
  EXPECT_TRUE(Step(t, RollbackRequested{"client"}).empty());
  EXPECT_TRUE(Step(t, PrepareTimedOut{}).empty());
  EXPECT_TRUE(Step(t, VoteReceived{.branch = 0, .vote = Vote::kNo}).empty());  // late duplicate
  EXPECT_EQ(t.state, TxnState::kPreCommitted);
}

TEST(ThreePhase, RollbackBeforeCommitRequestedNeedsNoLog) {
  ThreePhaseTxn t = MakeTxn();
  Effects fx = Step(t, RollbackRequested{"client"});
  EXPECT_EQ(Count<LogDecision>(fx), 0);
  EXPECT_EQ(Count<SendRollback>(fx), 3);
  EXPECT_EQ(OutcomeState(t), TxnState::kAborted);
}

TEST(ThreePhase, StalledAcksStartATerminationRoundWithADurableBallot) {
  ThreePhaseTxn t = PreCommitted();
  Step(t, PreDecideAnswered{0, InitialBallot(), Ack(InitialBallot())});
  Effects fx = Step(t, AckTimedOut{});
  ASSERT_EQ(Count<LogBallot>(fx), 1);
  EXPECT_EQ(All<LogBallot>(fx)[0].round, 2u);
  EXPECT_EQ(Count<SendElect>(fx), 0);  // not before the ballot is durable
  // A second timeout while the ballot is being written changes nothing.
  EXPECT_TRUE(Step(t, AckTimedOut{}).empty());

  fx = Step(t, BallotLogged{2});
  const Ballot b{2, ""};
  auto elects = All<SendElect>(fx);
  ASSERT_EQ(elects.size(), 3u);
  EXPECT_EQ(elects[0].ballot, b);
  EXPECT_EQ(t.max_round, 2u);

  Step(t, ElectAnswered{0, b, State(b, TpcState::kPreCommitted, InitialBallot())});
  fx = Step(t, ElectAnswered{1, b, State(b, TpcState::kWaiting)});
  auto pre = All<SendPreDecide>(fx);
  ASSERT_EQ(pre.size(), 3u);
  EXPECT_EQ(pre[0].ballot, b);
  EXPECT_EQ(pre[0].direction, Direction::kPreCommit);

  Step(t, PreDecideAnswered{0, b, Ack(b)});
  fx = Step(t, PreDecideAnswered{1, b, Ack(b)});
  ASSERT_EQ(Count<LogDecision>(fx), 1);
  EXPECT_EQ(All<LogDecision>(fx)[0].decision, Decision::kCommit);
}

TEST(ThreePhase, TerminationRoundMayAbortWhenNoQuorumPreCommitted) {
  ThreePhaseTxn t = PreCommitted();
  Step(t, AckTimedOut{});
  Step(t, BallotLogged{2});
  const Ballot b{2, ""};
  Step(t, ElectAnswered{1, b, State(b, TpcState::kWaiting)});
  Effects fx = Step(t, ElectAnswered{2, b, State(b, TpcState::kWaiting)});
  ASSERT_EQ(Count<SendPreDecide>(fx), 3);
  EXPECT_EQ(All<SendPreDecide>(fx)[0].direction, Direction::kPreAbort);
  Step(t, PreDecideAnswered{1, b, Ack(b)});
  fx = Step(t, PreDecideAnswered{2, b, Ack(b)});
  EXPECT_EQ(All<LogDecision>(fx)[0].decision, Decision::kAbort);
  fx = Step(t, DecisionLogged{Decision::kAbort});
  EXPECT_EQ(Count<SendRollback>(fx), 3);
  EXPECT_EQ(OutcomeState(t), TxnState::kAborted);
}

TEST(ThreePhase, NackToB0StartsARoundAboveTheNackedBallot) {
  ThreePhaseTxn t = PreCommitted();
  Effects fx = Step(
      t, PreDecideAnswered{1, InitialBallot(),
                           TpcReply{.kind = TpcReply::Kind::kNack, .ballot = Ballot{4, "p2"}}});
  ASSERT_EQ(Count<LogBallot>(fx), 1);
  EXPECT_EQ(All<LogBallot>(fx)[0].round, 5u);
}

TEST(ThreePhase, AbandonedRoundRetriesLaterAboveWhatItSaw) {
  ThreePhaseTxn t = PreCommitted();
  Step(t, AckTimedOut{});
  Step(t, BallotLogged{2});
  const Ballot b{2, ""};
  Effects fx = Step(
      t, ElectAnswered{0, b, TpcReply{.kind = TpcReply::Kind::kNack, .ballot = Ballot{7, "p1"}}});
  EXPECT_EQ(Count<StartAckTimer>(fx), 1);
  EXPECT_FALSE(t.round.has_value());
  fx = Step(t, AckTimedOut{});
  ASSERT_EQ(Count<LogBallot>(fx), 1);
  EXPECT_EQ(All<LogBallot>(fx)[0].round, 8u);
}

TEST(ThreePhase, LateAckForB0StillCommitsDuringARound) {
  ThreePhaseTxn t = PreCommitted();
  Step(t, PreDecideAnswered{0, InitialBallot(), Ack(InitialBallot())});
  Step(t, AckTimedOut{});
  Step(t, BallotLogged{2});
  Effects fx = Step(t, PreDecideAnswered{2, InitialBallot(), Ack(InitialBallot())});
  ASSERT_EQ(Count<LogDecision>(fx), 1);
  EXPECT_EQ(All<LogDecision>(fx)[0].decision, Decision::kCommit);
  EXPECT_FALSE(t.round.has_value());
}

TEST(ThreePhase, StaleRoundRepliesAreIgnored) {
  ThreePhaseTxn t = PreCommitted();
  Step(t, AckTimedOut{});
  Step(t, BallotLogged{2});
  const Ballot old{1, "p1"};
  EXPECT_TRUE(Step(t, ElectAnswered{0, old, State(old, TpcState::kWaiting)}).empty());
  EXPECT_TRUE(Step(t, PreDecideAnswered{0, old, Ack(old)}).empty());
}

TEST(ThreePhase, DecisionReportedByParticipantsIsLoggedAndAdopted) {
  ThreePhaseTxn t = PreCommitted();
  Effects fx = Step(t, DecisionReported{Decision::kAbort, "p1"});
  ASSERT_EQ(Count<LogDecision>(fx), 1);
  EXPECT_EQ(All<LogDecision>(fx)[0].decision, Decision::kAbort);
  fx = Step(t, DecisionLogged{Decision::kAbort});
  EXPECT_EQ(Count<ReplyToClient>(fx), 1);
  EXPECT_EQ(OutcomeState(t), TxnState::kAborted);
  // The same again changes nothing; the opposite is kept visible, never applied.
  EXPECT_TRUE(Step(t, DecisionReported{Decision::kAbort, "p2"}).empty());
  EXPECT_TRUE(Step(t, DecisionReported{Decision::kCommit, "p0"}).empty());
  EXPECT_NE(t.conflict.find("p0"), std::string::npos);
}

TEST(ThreePhase, DecidedReplyToB0IsAdopted) {
  ThreePhaseTxn t = PreCommitted();
  Effects fx = Step(t, PreDecideAnswered{2, InitialBallot(),
                                         TpcReply{.kind = TpcReply::Kind::kDecided,
                                                  .state = TpcState::kCommitted}});
  ASSERT_EQ(Count<LogDecision>(fx), 1);
  EXPECT_EQ(All<LogDecision>(fx)[0].decision, Decision::kCommit);
}

TEST(ThreePhase, DecisionWriteFailureIsInDoubtAndSendsNothing) {
  ThreePhaseTxn t = PreCommitted();
  Step(t, PreDecideAnswered{0, InitialBallot(), Ack(InitialBallot())});
  Step(t, PreDecideAnswered{1, InitialBallot(), Ack(InitialBallot())});
  Effects fx = Step(t, DecisionLogFailed{"disk full"});
  EXPECT_EQ(t.state, TxnState::kInDoubt);
  EXPECT_EQ(Count<SendCommit>(fx), 0);
  EXPECT_EQ(Count<ReplyToClient>(fx), 1);
  EXPECT_EQ(OutcomeState(t), TxnState::kInDoubt);
  EXPECT_EQ(Count<StartAckTimer>(fx), 1);
  // The decision is final (a majority accepted B0): the next timeout writes it again.
  fx = Step(t, AckTimedOut{});
  ASSERT_EQ(Count<LogDecision>(fx), 1);
  EXPECT_EQ(All<LogDecision>(fx)[0].decision, Decision::kCommit);
  fx = Step(t, DecisionLogged{Decision::kCommit});
  EXPECT_EQ(Count<SendCommit>(fx), 3);
}

TEST(ThreePhase, AReportWhileInDoubtIsLoggedToo) {
  ThreePhaseTxn t = PreCommitted();
  Step(t, PreDecideAnswered{0, InitialBallot(), Ack(InitialBallot())});
  Step(t, PreDecideAnswered{1, InitialBallot(), Ack(InitialBallot())});
  Step(t, DecisionLogFailed{"disk full"});
  Effects fx = Step(t, DecisionReported{Decision::kCommit, "p0"});
  EXPECT_EQ(Count<LogDecision>(fx), 1);
}

TEST(ThreePhase, ACommitReportedInTheVotePhaseIsRefusedAndKeptVisible) {
  ThreePhaseTxn t = Preparing();
  EXPECT_TRUE(Step(t, DecisionReported{Decision::kCommit, "p2"}).empty());
  EXPECT_EQ(t.state, TxnState::kPreparing);
  EXPECT_NE(t.conflict.find("before any PRE_COMMIT"), std::string::npos);
  // An abort reported then is legitimate (a round may abort members that are all W).
  Effects fx = Step(t, DecisionReported{Decision::kAbort, "p2"});
  EXPECT_EQ(All<LogDecision>(fx)[0].decision, Decision::kAbort);
}

TEST(ThreePhase, MalformedDecidedReplyIsIgnored) {
  ThreePhaseTxn t = PreCommitted();
  EXPECT_TRUE(Step(t, PreDecideAnswered{2, InitialBallot(),
                                        TpcReply{.kind = TpcReply::Kind::kDecided,
                                                 .state = TpcState::kWaiting}})
                  .empty());
}

TEST(ThreePhase, RestartWithStartOnlyRunsTerminationNeverPresumesAbort) {
  ThreePhaseTxn t = MakeTxn();
  Effects fx = Resume(t, Decision::kNone, 3);
  EXPECT_EQ(t.state, TxnState::kPreCommitted);
  EXPECT_EQ(Count<LogDecision>(fx), 0);
  EXPECT_EQ(Count<SendRollback>(fx), 0);
  ASSERT_EQ(Count<LogBallot>(fx), 1);
  EXPECT_EQ(All<LogBallot>(fx)[0].round, 4u);  // above every ballot it may have used
  fx = Step(t, BallotLogged{4});
  EXPECT_EQ(Count<SendElect>(fx), 3);
}

TEST(ThreePhase, RestartWithADecisionResendsIt) {
  ThreePhaseTxn t = MakeTxn();
  Effects fx = Resume(t, Decision::kCommit, 2);
  EXPECT_EQ(Count<SendCommit>(fx), 3);
  EXPECT_EQ(Count<ReplyToClient>(fx), 0);
  EXPECT_EQ(DecisionOf(t), Decision::kCommit);
  ThreePhaseTxn u = MakeTxn();
  fx = Resume(u, Decision::kAbort, 1);
  EXPECT_EQ(Count<SendRollback>(fx), 3);
  EXPECT_EQ(DecisionOf(u), Decision::kAbort);
}

TEST(ThreePhase, BallotWriteFailureSendsNoElectAndRetries) {
  ThreePhaseTxn t = PreCommitted();
  Step(t, AckTimedOut{});
  Effects fx = Step(t, BallotLogFailed{"disk full"});
  EXPECT_EQ(Count<SendElect>(fx), 0);
  EXPECT_EQ(Count<StartAckTimer>(fx), 1);
  fx = Step(t, AckTimedOut{});
  EXPECT_EQ(Count<LogBallot>(fx), 1);
}

}  // namespace
}  // namespace txn::core
