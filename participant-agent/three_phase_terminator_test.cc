// Agents terminating a 3PC transaction among themselves: three in-process agents (noop databases,
// records in memory through the same ThreePhaseRecords the real agent uses), a coordinator that is
// silent or answers, and links between the agents that can be cut.
#include "participant-agent/three_phase_terminator.h"

#include <gtest/gtest.h>

#include <set>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "participant-agent/adapters/noop/noop_adapter.h"

namespace txn::agent {
namespace {

const std::vector<std::string> kMembers = {"p0", "p1", "p2"};
const char kTxn[] = "n1-1-5";

class SilentCoordinator final : public DecisionSource {
 public:
  absl::StatusOr<v1::Decision> GetDecision(const std::string&) override {
    if (answer) return *answer;
    return absl::UnavailableError("coordinator down");
  }
  absl::Status ReportDecision(const std::string& txn_id, const std::string& participant,
                              v1::Decision d) override {
    reports.push_back(absl::StrCat(txn_id, " ", participant, " ", v1::Decision_Name(d)));
    return absl::OkStatus();
  }
  std::optional<v1::Decision> answer;
  std::vector<std::string> reports;
};

struct Agent {
  Agent(common::Clock* clock, const std::string& name)
      : records(&adapter, name), registry(&adapter, clock, BranchRegistryOptions{}) {
    registry.set_three_phase(&records);
  }
  NoopAdapter adapter;
  ThreePhaseRecords records;
  BranchRegistry registry;
};

class Network final : public PeerSet {
 public:
  std::map<std::string, Agent*> agents;
  std::set<std::string> cut;  // agents unreachable from the others
  Agent* Reach(const std::string& peer) {
    if (cut.count(peer) || !agents.count(peer)) return nullptr;
    return agents[peer];
  }
  absl::StatusOr<v1::TerminationReply> Elect(const std::string& peer,
                                             const v1::ElectRequest& req) override {
    Agent* a = Reach(peer);
    if (!a) return absl::UnavailableError("unreachable");
    return a->records.Elect(req);
  }
  absl::StatusOr<v1::TerminationReply> PreDecide(const std::string& peer,
                                                 const v1::PreDecideRequest& req) override {
    Agent* a = Reach(peer);
    if (!a) return absl::UnavailableError("unreachable");
    return a->records.PreDecide(req);
  }
  absl::Status Commit(const std::string& peer, const v1::CommitBranchRequest& req) override {
    Agent* a = Reach(peer);
    if (!a) return absl::UnavailableError("unreachable");
    return a->registry.Commit(req).status();
  }
  absl::Status Rollback(const std::string& peer, const v1::RollbackBranchRequest& req) override {
    Agent* a = Reach(peer);
    if (!a) return absl::UnavailableError("unreachable");
    return a->registry.Rollback(req).status();
  }
};

// A peer set as seen from one agent: a cut agent reaches nobody.
class View final : public PeerSet {
 public:
  View(Network* net, std::string self) : net_(net), self_(std::move(self)) {}
  bool isolated() const { return net_->cut.count(self_) > 0; }
  absl::StatusOr<v1::TerminationReply> Elect(const std::string& p,
                                             const v1::ElectRequest& r) override {
    if (isolated()) return absl::UnavailableError("unreachable");
    return net_->Elect(p, r);
  }
  absl::StatusOr<v1::TerminationReply> PreDecide(const std::string& p,
                                                 const v1::PreDecideRequest& r) override {
    if (isolated()) return absl::UnavailableError("unreachable");
    return net_->PreDecide(p, r);
  }
  absl::Status Commit(const std::string& p, const v1::CommitBranchRequest& r) override {
    if (isolated()) return absl::UnavailableError("unreachable");
    return net_->Commit(p, r);
  }
  absl::Status Rollback(const std::string& p, const v1::RollbackBranchRequest& r) override {
    if (isolated()) return absl::UnavailableError("unreachable");
    return net_->Rollback(p, r);
  }

 private:
  Network* net_;
  std::string self_;
};

class TerminatorTest : public testing::Test {
 protected:
  void SetUp() override {
    for (size_t i = 0; i < kMembers.size(); ++i) {
      agents_.push_back(std::make_unique<Agent>(&clock_, kMembers[i]));
      net_.agents[kMembers[i]] = agents_.back().get();
      views_.push_back(std::make_unique<View>(&net_, kMembers[i]));
      terminators_.push_back(std::make_unique<ThreePhaseTerminator>(
          kMembers[i], &agents_[i]->records, &agents_[i]->registry,
          &coordinator_, views_[i].get(), &clock_, TerminatorOptions{.timeout_ms = 100}));
    }
  }
  std::string Gid(size_t i) { return common::BranchGid(kTxn, static_cast<uint32_t>(i)); }
  // Every member prepared and voted YES (record W); those in `pre_committed` accepted B0.
  void AllPrepared(std::set<size_t> pre_committed = {}) {
    for (size_t i = 0; i < kMembers.size(); ++i) {
      agents_[i]->adapter.MarkPrepared(Gid(i));
      ASSERT_TRUE(*agents_[i]->records.RecordYes(Gid(i), kMembers));
      if (pre_committed.count(i)) {
        v1::PreDecideRequest req;
        req.mutable_ref()->set_txn_id(kTxn);
        req.mutable_ref()->set_branch(static_cast<uint32_t>(i));
        req.mutable_ballot()->set_round(1);
        req.set_direction(v1::PRE_DECISION_PRE_COMMIT);
        ASSERT_EQ(agents_[i]->records.PreDecide(req)->kind(), v1::TerminationReply::KIND_ACK);
      }
    }
  }
  protocol::TpcState State(size_t i) {
    auto rec = agents_[i]->records.Load(Gid(i));
    return rec.ok() && *rec ? (*rec)->state : protocol::TpcState::kNone;
  }
  bool IsPrepared(size_t i) { return *agents_[i]->adapter.IsPrepared(Gid(i)); }
  // Runs every agent's pass `rounds` times, the clock moving a timeout each time.
  void Run(int rounds = 20) {
    for (int r = 0; r < rounds; ++r) {
      clock_.Advance(100);
      for (auto& t : terminators_) ASSERT_TRUE(t->RunOnce().ok());
    }
  }

  common::ManualClock clock_;
  SilentCoordinator coordinator_;
  Network net_;
  std::vector<std::unique_ptr<Agent>> agents_;
  std::vector<std::unique_ptr<View>> views_;
  std::vector<std::unique_ptr<ThreePhaseTerminator>> terminators_;
};

TEST_F(TerminatorTest, NothingHappensBeforeTheTimeout) {
  AllPrepared();
  for (auto& t : terminators_) ASSERT_TRUE(t->RunOnce().ok());
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(State(i), protocol::TpcState::kWaiting);
}

TEST_F(TerminatorTest, AllWaitingWithTheCoordinatorGoneAborts) {
  AllPrepared();
  Run();
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(State(i), protocol::TpcState::kAborted) << i;
    EXPECT_FALSE(IsPrepared(i)) << "rolled back";
  }
}

TEST_F(TerminatorTest, OnePreCommittedMemberMakesTheMajorityCommit) {
  AllPrepared({0});
  Run();
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(State(i), protocol::TpcState::kCommitted) << i;
    EXPECT_FALSE(IsPrepared(i)) << "committed in the database";
  }
  // The round's candidate (p0, first in turn) told the coordinator.
  EXPECT_EQ(coordinator_.reports, std::vector<std::string>{"n1-1-5 p0 DECISION_COMMIT"});
}

TEST_F(TerminatorTest, TheCoordinatorsAnswerIsTakenWithoutARound) {
  AllPrepared();
  coordinator_.answer = v1::DECISION_COMMIT;
  Run(6);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(State(i), protocol::TpcState::kCommitted) << i;
  auto rec = agents_[1]->records.Load(Gid(1));
  EXPECT_EQ((*rec)->promised, protocol::InitialBallot()) << "no round ran";
  EXPECT_TRUE(coordinator_.reports.empty()) << "nothing to tell the coordinator it decided";
}

TEST_F(TerminatorTest, AnIsolatedMinorityDecidesNothingAndFollowsAfterHealing) {
  AllPrepared({0});  // p0 pre-committed, then cut off with the coordinator gone
  net_.cut = {"p0"};
  Run();
  // The majority {p1, p2} sees only W: it pre-aborts and aborts; p0 alone waits.
  EXPECT_EQ(State(1), protocol::TpcState::kAborted);
  EXPECT_EQ(State(2), protocol::TpcState::kAborted);
  EXPECT_EQ(State(0), protocol::TpcState::kPreCommitted) << "a minority never decides";
  EXPECT_TRUE(IsPrepared(0));
  net_.cut.clear();
  Run();
  EXPECT_EQ(State(0), protocol::TpcState::kAborted) << "follows the majority after healing";
  EXPECT_FALSE(IsPrepared(0));
}

TEST_F(TerminatorTest, AMisroutedElectIsRefusedNotAnsweredWithAnAbort) {
  AllPrepared();
  v1::ElectRequest req;
  req.mutable_ref()->set_txn_id(kTxn);
  req.mutable_ref()->set_branch(1);
  req.mutable_ballot()->set_round(2);
  req.mutable_ballot()->set_owner("p0");
  req.set_participant("p1");
  // p1's request delivered to p2 (a wrong --peer address): refused, nothing recorded there.
  EXPECT_EQ(agents_[2]->records.Elect(req).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(agents_[2]->records.Load(common::BranchGid(kTxn, 1))->has_value());
  EXPECT_EQ(agents_[1]->records.Elect(req)->kind(), v1::TerminationReply::KIND_STATE);
}

TEST_F(TerminatorTest, TwoMembersCutOffBlockEveryoneUntilHealing) {
  AllPrepared({0});
  net_.cut = {"p1", "p2"};  // nobody has a majority
  Run();
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_FALSE(protocol::IsFinal(State(i))) << i;
    EXPECT_TRUE(IsPrepared(i)) << i;
  }
  net_.cut.clear();
  Run();
  const protocol::TpcState s = State(0);
  EXPECT_TRUE(protocol::IsFinal(s));
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(State(i), s) << "the same outcome everywhere";
}

// Found by the simulation (tests/sim): the members commit among themselves, an agent restarts
// (its registry forgets the branch; the database no longer holds it prepared), and the
// coordinator's own round sends Commit without the native id. The agent's C record says it
// committed: the answer is COMMITTED, not UNKNOWN (which the coordinator took for a mixed
// outcome). A Prepare that comes again then (a retry from before the decision) does not run the
// branch's work a second time.
TEST_F(TerminatorTest, AfterTheMembersCommittedARestartedAgentAnswersFromItsRecord) {
  AllPrepared({0});
  Run();
  ASSERT_EQ(State(1), protocol::TpcState::kCommitted);
  BranchRegistry restarted(&agents_[1]->adapter, &clock_, BranchRegistryOptions{});
  restarted.set_three_phase(&agents_[1]->records);
  v1::CommitBranchRequest commit;
  commit.mutable_ref()->set_txn_id(kTxn);
  commit.mutable_ref()->set_branch(1);
  commit.set_three_phase(true);
  auto committed = restarted.Commit(commit);
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_EQ(committed->result(), v1::BRANCH_RESULT_COMMITTED);

  BranchRegistry restarted_again(&agents_[1]->adapter, &clock_, BranchRegistryOptions{});
  restarted_again.set_three_phase(&agents_[1]->records);
  v1::PrepareBranchRequest prepare;
  *prepare.mutable_ref() = commit.ref();
  prepare.set_begin(true);
  prepare.add_operations()->mutable_sql()->set_text("UPDATE acct SET bal = bal + 1 WHERE id = 1");
  for (const auto& m : kMembers) prepare.add_three_phase_members(m);
  auto voted = restarted_again.Prepare(prepare);
  ASSERT_TRUE(voted.ok()) << voted.status();
  EXPECT_EQ(voted->vote(), v1::VOTE_YES) << "it voted YES before, and the members committed";
  EXPECT_FALSE(IsPrepared(1)) << "its work did not run and prepare again";
}

// The other side of the test above: the record says C but the commit was not carried out yet
// (the database still holds the branch prepared). A Prepare that comes again leaves it prepared,
// and the Commit that follows commits it in the database.
TEST_F(TerminatorTest, ARepeatedPrepareBeforeTheRecordedCommitIsCarriedOutLeavesItPrepared) {
  AllPrepared();
  ASSERT_TRUE(agents_[1]->records.RecordDecision(Gid(1), protocol::Decision::kCommit).ok());
  ASSERT_TRUE(IsPrepared(1));
  BranchRegistry restarted(&agents_[1]->adapter, &clock_, BranchRegistryOptions{});
  restarted.set_three_phase(&agents_[1]->records);
  v1::PrepareBranchRequest prepare;
  prepare.mutable_ref()->set_txn_id(kTxn);
  prepare.mutable_ref()->set_branch(1);
  prepare.set_begin(true);
  prepare.add_operations()->mutable_sql()->set_text("UPDATE acct SET bal = bal + 1 WHERE id = 1");
  for (const auto& m : kMembers) prepare.add_three_phase_members(m);
  auto voted = restarted.Prepare(prepare);
  ASSERT_TRUE(voted.ok()) << voted.status();
  EXPECT_EQ(voted->vote(), v1::VOTE_YES);
  EXPECT_TRUE(IsPrepared(1)) << "still waiting for its commit";
  v1::CommitBranchRequest commit;
  *commit.mutable_ref() = prepare.ref();
  commit.set_three_phase(true);
  auto committed = restarted.Commit(commit);
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_EQ(committed->result(), v1::BRANCH_RESULT_COMMITTED);
  EXPECT_FALSE(IsPrepared(1)) << "committed in the database";
}

}  // namespace
}  // namespace txn::agent
