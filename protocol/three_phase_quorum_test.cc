#include "protocol/three_phase_quorum.h"

#include <gtest/gtest.h>

namespace txn::protocol {
namespace {

const std::vector<std::string> kMembers = {"p0", "p1", "p2"};
using Kind = TpcReply::Kind;
using NextKind = TerminationRound::Next::Kind;

Ballot B(uint64_t round, std::string owner) { return Ballot{round, std::move(owner)}; }

TpcRecord Rec(TpcState s, Ballot promised, Ballot attempted = {}) {
  return TpcRecord{.state = s, .promised = promised, .attempted = attempted, .members = kMembers};
}

TpcReply State(const Ballot& b, TpcState s, Ballot attempted = {}) {
  return TpcReply{.kind = Kind::kState, .ballot = b, .state = s, .attempted = attempted};
}
TpcReply Ack(const Ballot& b) { return TpcReply{.kind = Kind::kAck, .ballot = b}; }

TEST(Ballot, OrdersByRoundThenOwnerAndTheCoordinatorOwnsB0) {
  EXPECT_LT(InitialBallot(), B(1, "p0"));
  EXPECT_LT(B(1, "p9"), B(2, ""));
  EXPECT_LT(B(2, "p0"), B(2, "p1"));
  EXPECT_TRUE(Ballot{}.empty());
  EXPECT_LT(Ballot{}, InitialBallot());
  EXPECT_EQ(BallotString(InitialBallot()), "1/coordinator");
  EXPECT_EQ(NextBallot(4, "p1"), B(5, "p1"));
}

TEST(Quorum, IsAMajority) {
  EXPECT_EQ(QuorumOf(1), 1u);
  EXPECT_EQ(QuorumOf(2), 2u);
  EXPECT_EQ(QuorumOf(3), 2u);
  EXPECT_EQ(QuorumOf(4), 3u);
  EXPECT_EQ(QuorumOf(5), 3u);
}

TEST(Participant, YesVoteRecordPromisesB0) {
  TpcRecord r = WaitingRecord(kMembers);
  EXPECT_EQ(r.state, TpcState::kWaiting);
  EXPECT_EQ(r.promised, InitialBallot());
  EXPECT_TRUE(r.attempted.empty());
  EXPECT_EQ(r.members, kMembers);
}

// E1
TEST(Participant, ElectWithoutRecordAbortsUnilaterally) {
  Handled h = OnElect(std::nullopt, B(2, "p1"));
  ASSERT_TRUE(h.persist.has_value());
  EXPECT_EQ(h.persist->state, TpcState::kAborted);
  EXPECT_EQ(h.reply.kind, Kind::kDecided);
  EXPECT_EQ(h.reply.state, TpcState::kAborted);
}

TEST(Participant, ElectWithHigherBallotPersistsThePromiseAndReportsState) {
  TpcRecord pc = Rec(TpcState::kPreCommitted, InitialBallot(), InitialBallot());
  Handled h = OnElect(pc, B(2, "p1"));
  ASSERT_TRUE(h.persist.has_value());
  EXPECT_EQ(h.persist->promised, B(2, "p1"));
  EXPECT_EQ(h.persist->state, TpcState::kPreCommitted);  // the state does not change
  EXPECT_EQ(h.reply.kind, Kind::kState);
  EXPECT_EQ(h.reply.ballot, B(2, "p1"));
  EXPECT_EQ(h.reply.state, TpcState::kPreCommitted);
  EXPECT_EQ(h.reply.attempted, InitialBallot());
}

TEST(Participant, RetransmittedElectAnswersAgainWithoutWriting) {
  Handled h = OnElect(Rec(TpcState::kWaiting, B(2, "p1")), B(2, "p1"));
  EXPECT_FALSE(h.persist.has_value());
  EXPECT_EQ(h.reply.kind, Kind::kState);
}

TEST(Participant, StaleElectIsNackedWithThePromise) {
  // Same round, lower owner: a different candidate that lost.
  Handled h = OnElect(Rec(TpcState::kWaiting, B(2, "p1")), B(2, "p0"));
  EXPECT_FALSE(h.persist.has_value());
  EXPECT_EQ(h.reply.kind, Kind::kNack);
  EXPECT_EQ(h.reply.ballot, B(2, "p1"));
  EXPECT_EQ(OnElect(Rec(TpcState::kWaiting, B(3, "p0")), B(2, "p2")).reply.kind, Kind::kNack);
}

TEST(Participant, DecidedAnswersElectAndPreDecideWithTheDecision) {
  for (TpcState s : {TpcState::kCommitted, TpcState::kAborted}) {
    Handled e = OnElect(Rec(s, B(2, "p1")), B(9, "p2"));
    EXPECT_FALSE(e.persist.has_value());
    EXPECT_EQ(e.reply.kind, Kind::kDecided);
    EXPECT_EQ(e.reply.state, s);
    Handled p = OnPreDecide(Rec(s, B(2, "p1")), B(9, "p2"), Direction::kPreAbort);
    EXPECT_FALSE(p.persist.has_value());
    EXPECT_EQ(p.reply.kind, Kind::kDecided);
    EXPECT_EQ(p.reply.state, s);
  }
}

// E2
TEST(Participant, PreDecideAtOrAboveThePromiseIsAcceptedInOneWrite) {
  Handled h =
      OnPreDecide(Rec(TpcState::kWaiting, InitialBallot()), InitialBallot(), Direction::kPreCommit);
  ASSERT_TRUE(h.persist.has_value());
  EXPECT_EQ(h.persist->state, TpcState::kPreCommitted);
  EXPECT_EQ(h.persist->attempted, InitialBallot());
  EXPECT_EQ(h.persist->promised, InitialBallot());
  EXPECT_EQ(h.reply.kind, Kind::kAck);
  EXPECT_EQ(h.reply.ballot, InitialBallot());

  // Above the promise: promise and attempt both move.
  Handled up = OnPreDecide(Rec(TpcState::kWaiting, B(2, "p0")), B(3, "p2"), Direction::kPreAbort);
  ASSERT_TRUE(up.persist.has_value());
  EXPECT_EQ(up.persist->state, TpcState::kPreAborted);
  EXPECT_EQ(up.persist->attempted, B(3, "p2"));
  EXPECT_EQ(up.persist->promised, B(3, "p2"));
}

TEST(Participant, PreCommitAndPreAbortMayReplaceEachOtherAtHigherBallots) {
  TpcRecord pc = Rec(TpcState::kPreCommitted, InitialBallot(), InitialBallot());
  Handled h = OnPreDecide(pc, B(2, "p1"), Direction::kPreAbort);
  ASSERT_TRUE(h.persist.has_value());
  EXPECT_EQ(h.persist->state, TpcState::kPreAborted);
  Handled back = OnPreDecide(*h.persist, B(3, "p0"), Direction::kPreCommit);
  ASSERT_TRUE(back.persist.has_value());
  EXPECT_EQ(back.persist->state, TpcState::kPreCommitted);
}

TEST(Participant, PreDecideBelowThePromiseIsNacked) {
  // The coordinator's late PRE_COMMIT(B0) after the participant promised a termination round:
  // exactly what keeps the two from both reaching a quorum.
  Handled h =
      OnPreDecide(Rec(TpcState::kWaiting, B(2, "p1")), InitialBallot(), Direction::kPreCommit);
  EXPECT_FALSE(h.persist.has_value());
  EXPECT_EQ(h.reply.kind, Kind::kNack);
  EXPECT_EQ(h.reply.ballot, B(2, "p1"));
}

TEST(Participant, DuplicatePreDecideIsAckedWithoutAWrite) {
  TpcRecord pc = Rec(TpcState::kPreCommitted, B(2, "p1"), B(2, "p1"));
  Handled h = OnPreDecide(pc, B(2, "p1"), Direction::kPreCommit);
  EXPECT_FALSE(h.persist.has_value());
  EXPECT_EQ(h.reply.kind, Kind::kAck);
}

TEST(Participant, PreDecideWithoutRecordIsNacked) {
  Handled h = OnPreDecide(std::nullopt, B(2, "p1"), Direction::kPreAbort);
  EXPECT_FALSE(h.persist.has_value());
  EXPECT_EQ(h.reply.kind, Kind::kNack);
}

// E3
TEST(Participant, DecisionIsPersistedOnceAndNeverChanges) {
  Handled c = OnDecision(Rec(TpcState::kPreCommitted, B(2, "p1"), B(2, "p1")), Decision::kCommit);
  ASSERT_TRUE(c.persist.has_value());
  EXPECT_EQ(c.persist->state, TpcState::kCommitted);
  EXPECT_EQ(c.persist->members, kMembers);
  Handled again = OnDecision(*c.persist, Decision::kCommit);
  EXPECT_FALSE(again.persist.has_value());
  EXPECT_TRUE(DecisionConflicts(*c.persist, Decision::kAbort));
  EXPECT_FALSE(DecisionConflicts(*c.persist, Decision::kCommit));
  Handled opposite = OnDecision(*c.persist, Decision::kAbort);
  EXPECT_FALSE(opposite.persist.has_value());
  EXPECT_EQ(opposite.reply.state, TpcState::kCommitted);

  Handled a = OnDecision(std::nullopt, Decision::kAbort);
  ASSERT_TRUE(a.persist.has_value());
  EXPECT_EQ(a.persist->state, TpcState::kAborted);
}

// Section 4.
TEST(Rule, AnAbortedOrCommittedMemberDecides) {
  EXPECT_EQ(ApplyTerminationRule({{TpcState::kAborted, {}}}, 3), RuleAction::kAbort);
  EXPECT_EQ(ApplyTerminationRule({{TpcState::kCommitted, {}}}, 3), RuleAction::kCommit);
}

TEST(Rule, LessThanAQuorumBlocks) {
  EXPECT_EQ(ApplyTerminationRule({{TpcState::kPreCommitted, InitialBallot()}}, 3),
            RuleAction::kBlock);
  EXPECT_EQ(ApplyTerminationRule({}, 3), RuleAction::kBlock);
}

TEST(Rule, AllWaitingPreAborts) {
  EXPECT_EQ(ApplyTerminationRule({{TpcState::kWaiting, {}}, {TpcState::kWaiting, {}}}, 3),
            RuleAction::kPreAbort);
}

TEST(Rule, TheLatestAttemptDecidesTheDirectionNotTheHeadCount) {
  // One PC at B0, one PA at a later ballot: PA wins (section 6's second example).
  EXPECT_EQ(
      ApplyTerminationRule(
          {{TpcState::kPreCommitted, InitialBallot()}, {TpcState::kPreAborted, B(2, "p1")}}, 3),
      RuleAction::kPreAbort);
  // One PC at B0 and one W: pre-commit (B0 may have had its quorum).
  EXPECT_EQ(ApplyTerminationRule(
                {{TpcState::kPreCommitted, InitialBallot()}, {TpcState::kWaiting, {}}}, 3),
            RuleAction::kPreCommit);
  // A later PC beats an earlier PA.
  EXPECT_EQ(ApplyTerminationRule({{TpcState::kPreAborted, B(2, "p1")},
                                  {TpcState::kPreCommitted, B(3, "p0")},
                                  {TpcState::kWaiting, {}}},
                                 3),
            RuleAction::kPreCommit);
}

// T2-T7.
TEST(Round, QuorumOfStatesThenQuorumOfAcksDecides) {
  TerminationRound r(B(2, "p1"), kMembers);
  EXPECT_EQ(r.OnElectReply("p1", State(B(2, "p1"), TpcState::kWaiting)).kind, NextKind::kWait);
  auto n = r.OnElectReply("p2", State(B(2, "p1"), TpcState::kPreCommitted, InitialBallot()));
  ASSERT_EQ(n.kind, NextKind::kSendPreDecide);
  EXPECT_EQ(n.direction, Direction::kPreCommit);
  EXPECT_TRUE(r.pre_deciding());
  // A late STATE changes nothing now.
  EXPECT_EQ(r.OnElectReply("p0", State(B(2, "p1"), TpcState::kWaiting)).kind, NextKind::kWait);
  EXPECT_EQ(r.OnPreDecideReply("p1", Ack(B(2, "p1"))).kind, NextKind::kWait);
  // A duplicated ACK from the same member is not a quorum.
  EXPECT_EQ(r.OnPreDecideReply("p1", Ack(B(2, "p1"))).kind, NextKind::kWait);
  n = r.OnPreDecideReply("p0", Ack(B(2, "p1")));
  ASSERT_EQ(n.kind, NextKind::kDecided);
  EXPECT_EQ(n.decision, Decision::kCommit);
  // Finished: nothing more.
  EXPECT_EQ(r.OnPreDecideReply("p2", Ack(B(2, "p1"))).kind, NextKind::kWait);
}

TEST(Round, PreAbortQuorumAborts) {
  TerminationRound r(B(2, "p1"), kMembers);
  r.OnElectReply("p1", State(B(2, "p1"), TpcState::kWaiting));
  auto n = r.OnElectReply("p0", State(B(2, "p1"), TpcState::kWaiting));
  ASSERT_EQ(n.kind, NextKind::kSendPreDecide);
  EXPECT_EQ(n.direction, Direction::kPreAbort);
  r.OnPreDecideReply("p1", Ack(B(2, "p1")));
  n = r.OnPreDecideReply("p0", Ack(B(2, "p1")));
  ASSERT_EQ(n.kind, NextKind::kDecided);
  EXPECT_EQ(n.decision, Decision::kAbort);
}

TEST(Round, DuplicateStatesFromOneMemberAreNotAQuorum) {
  TerminationRound r(B(2, "p1"), kMembers);
  r.OnElectReply("p1", State(B(2, "p1"), TpcState::kWaiting));
  EXPECT_EQ(r.OnElectReply("p1", State(B(2, "p1"), TpcState::kWaiting)).kind, NextKind::kWait);
}

TEST(Round, RepliesForOtherBallotsOrFromStrangersAreIgnored) {
  TerminationRound r(B(3, "p1"), kMembers);
  EXPECT_EQ(r.OnElectReply("p0", State(B(2, "p1"), TpcState::kWaiting)).kind, NextKind::kWait);
  EXPECT_EQ(r.OnElectReply("p7", State(B(3, "p1"), TpcState::kWaiting)).kind, NextKind::kWait);
  EXPECT_EQ(r.OnElectReply("p1", State(B(3, "p1"), TpcState::kWaiting)).kind, NextKind::kWait);
  // Only one valid STATE so far.
  EXPECT_FALSE(r.pre_deciding());
  // An ACK before the round pre-decides is ignored.
  EXPECT_EQ(r.OnPreDecideReply("p1", Ack(B(3, "p1"))).kind, NextKind::kWait);
}

TEST(Round, StaleAckFromAnEarlierRoundDoesNotCount) {
  TerminationRound r(B(3, "p1"), kMembers);
  r.OnElectReply("p1", State(B(3, "p1"), TpcState::kWaiting));
  r.OnElectReply("p2", State(B(3, "p1"), TpcState::kWaiting));
  r.OnPreDecideReply("p1", Ack(B(3, "p1")));
  EXPECT_EQ(r.OnPreDecideReply("p2", Ack(B(2, "p0"))).kind, NextKind::kWait);
}

TEST(Round, NackAbandonsAndRemembersTheHigherRound) {
  TerminationRound r(B(2, "p1"), kMembers);
  auto n = r.OnElectReply("p0", TpcReply{.kind = Kind::kNack, .ballot = B(5, "p2")});
  EXPECT_EQ(n.kind, NextKind::kAbandon);
  EXPECT_EQ(r.highest_round_seen(), 5u);
  EXPECT_EQ(NextBallot(r.highest_round_seen(), "p1"), B(6, "p1"));
  // Abandoned: later replies change nothing.
  EXPECT_EQ(r.OnElectReply("p1", State(B(2, "p1"), TpcState::kWaiting)).kind, NextKind::kWait);
}

TEST(Round, NackDuringPreDecideAbandonsEvenWithOneAck) {
  TerminationRound r(B(2, "p1"), kMembers);
  r.OnElectReply("p1", State(B(2, "p1"), TpcState::kWaiting));
  r.OnElectReply("p0", State(B(2, "p1"), TpcState::kWaiting));
  r.OnPreDecideReply("p1", Ack(B(2, "p1")));
  EXPECT_EQ(r.OnPreDecideReply("p0", TpcReply{.kind = Kind::kNack, .ballot = B(3, "p2")}).kind,
            NextKind::kAbandon);
}

TEST(Round, DecidedReplyIsAdoptedAtOnce) {
  TerminationRound r(B(2, ""), kMembers);  // the coordinator's round
  auto n = r.OnElectReply("p2", TpcReply{.kind = Kind::kDecided, .state = TpcState::kCommitted});
  ASSERT_EQ(n.kind, NextKind::kDecided);
  EXPECT_EQ(n.decision, Decision::kCommit);
}

// The scenario of docs/three-phase.md section 5: p2 reports W to two candidates. With ballots, the one
// it promised last wins and the other's PRE_x is refused, so the two cannot both decide.
TEST(Scenario, TwoCandidatesSharingAMemberCannotBothDecide) {
  std::optional<TpcRecord> p0 = Rec(TpcState::kPreCommitted, InitialBallot(), InitialBallot());
  std::optional<TpcRecord> p1 = WaitingRecord(kMembers);
  std::optional<TpcRecord> p2 = WaitingRecord(kMembers);
  auto apply = [](std::optional<TpcRecord>& rec, const Handled& h) {
    if (h.persist) rec = *h.persist;
    return h.reply;
  };
  // Candidate p0 at (2,p0) and candidate p2 at (2,p2): each promises itself, then asks p1.
  TerminationRound c0(B(2, "p0"), kMembers), c2(B(2, "p2"), kMembers);
  c0.OnElectReply("p0", apply(p0, OnElect(p0, c0.ballot())));
  c2.OnElectReply("p2", apply(p2, OnElect(p2, c2.ballot())));
  auto n0 = c0.OnElectReply("p1", apply(p1, OnElect(p1, c0.ballot())));
  ASSERT_EQ(n0.kind, NextKind::kSendPreDecide);
  EXPECT_EQ(n0.direction, Direction::kPreCommit);
  auto n2 = c2.OnElectReply("p1", apply(p1, OnElect(p1, c2.ballot())));  // (2,p2) > (2,p0)
  ASSERT_EQ(n2.kind, NextKind::kSendPreDecide);
  EXPECT_EQ(n2.direction, Direction::kPreAbort);
  // c0's PRE_COMMIT: p0 accepts its own, p1 refuses (it promised (2,p2)).
  c0.OnPreDecideReply("p0", apply(p0, OnPreDecide(p0, c0.ballot(), Direction::kPreCommit)));
  EXPECT_EQ(
      c0.OnPreDecideReply("p1", apply(p1, OnPreDecide(p1, c0.ballot(), Direction::kPreCommit)))
          .kind,
      NextKind::kAbandon);
  // c2's PRE_ABORT reaches a quorum and aborts; p0 later learns it.
  c2.OnPreDecideReply("p2", apply(p2, OnPreDecide(p2, c2.ballot(), Direction::kPreAbort)));
  auto d = c2.OnPreDecideReply("p1", apply(p1, OnPreDecide(p1, c2.ballot(), Direction::kPreAbort)));
  ASSERT_EQ(d.kind, NextKind::kDecided);
  EXPECT_EQ(d.decision, Decision::kAbort);
  EXPECT_EQ(apply(p0, OnDecision(p0, Decision::kAbort)).state, TpcState::kAborted);
}

// The candidate applies its own promise check: a candidate that has since promised a later
// round fails its own PRE_x and abandons (the mistake the SPIN model caught).
TEST(Scenario, CandidateThatPromisedALaterRoundAbandonsItsOwn) {
  std::optional<TpcRecord> p2 = WaitingRecord(kMembers);
  TerminationRound mine(B(2, "p2"), kMembers);
  mine.OnElectReply("p2", OnElect(p2, mine.ballot()).reply);
  p2 = OnElect(p2, mine.ballot()).persist;
  p2 = OnPreDecide(p2, B(3, "p1"), Direction::kPreAbort).persist;  // p1's round reached p2
  auto n = mine.OnElectReply("p0", State(B(2, "p2"), TpcState::kPreCommitted, InitialBallot()));
  ASSERT_EQ(n.kind, NextKind::kSendPreDecide);
  Handled own = OnPreDecide(p2, mine.ballot(), n.direction);
  EXPECT_FALSE(own.persist.has_value());
  EXPECT_EQ(mine.OnPreDecideReply("p2", own.reply).kind, NextKind::kAbandon);
}

}  // namespace
}  // namespace txn::protocol
