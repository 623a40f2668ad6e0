#include "participant-agent/branch_registry.h"

#include <gtest/gtest.h>

#include <map>

#include "participant-agent/adapters/noop/noop_adapter.h"
#include "participant-agent/in_doubt_reconciler.h"

namespace txn::agent {
namespace {

v1::BranchRef Ref(const std::string& txn = "n1-1-1", uint32_t branch = 0) {
  v1::BranchRef r;
  r.set_txn_id(txn);
  r.set_branch(branch);
  return r;
}

v1::Operation Sql(const std::string& text, int64_t expect = -1) {
  v1::Operation op;
  op.mutable_sql()->set_text(text);
  if (expect >= 0) op.mutable_sql()->set_expect_rows_affected(expect);
  return op;
}

class BranchRegistryTest : public testing::Test {
 protected:
  v1::PrepareBranchResponse Prepare(const v1::BranchRef& ref, std::vector<v1::Operation> ops) {
    v1::PrepareBranchRequest req;
    *req.mutable_ref() = ref;
    req.set_begin(true);
    for (auto& op : ops) *req.add_operations() = op;
    auto r = registry_.Prepare(req);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : v1::PrepareBranchResponse();
  }
  v1::BranchResult Commit(const v1::BranchRef& ref) {
    v1::CommitBranchRequest req;
    *req.mutable_ref() = ref;
    auto r = registry_.Commit(req);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->result() : v1::BRANCH_RESULT_UNSPECIFIED;
  }
  v1::BranchResult Rollback(const v1::BranchRef& ref) {
    v1::RollbackBranchRequest req;
    *req.mutable_ref() = ref;
    auto r = registry_.Rollback(req);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->result() : v1::BRANCH_RESULT_UNSPECIFIED;
  }

  NoopAdapter adapter_;
  common::ManualClock clock_;
  BranchRegistry registry_{
      &adapter_, &clock_, BranchRegistryOptions{.idle_timeout_ms = 1000, .tombstone_ttl_ms = 5000}};
};

TEST_F(BranchRegistryTest, PrepareWithWorkVotesYesAndIsIdempotent) {
  EXPECT_EQ(Prepare(Ref(), {Sql("UPDATE t SET a = 1")}).vote(), v1::VOTE_YES);
  EXPECT_EQ(Prepare(Ref(), {}).vote(), v1::VOTE_YES);
  EXPECT_TRUE(*adapter_.IsPrepared("txc_n1-1-1_0"));
}

TEST_F(BranchRegistryTest, AFirstSendOfANewBranchDoesNotAskTheDatabaseWhetherItIsPrepared) {
  v1::PrepareBranchRequest req;
  *req.mutable_ref() = Ref("n1-1-7");
  req.set_begin(true);
  req.set_first_send(true);
  *req.add_operations() = Sql("UPDATE t SET a = 1");
  ASSERT_EQ(registry_.Prepare(req)->vote(), v1::VOTE_YES);
  *req.mutable_ref() = Ref("n1-1-8");
  ASSERT_EQ(registry_.Prepare(req)->vote(), v1::VOTE_YES);
  EXPECT_EQ(adapter_.is_prepared_calls(), 0);
  // Without first_send (an older coordinator, a tool) the database is asked.
  req.set_first_send(false);
  *req.mutable_ref() = Ref("n1-1-9");
  ASSERT_EQ(registry_.Prepare(req)->vote(), v1::VOTE_YES);
  EXPECT_EQ(adapter_.is_prepared_calls(), 1);
}

TEST_F(BranchRegistryTest, AFirstSendOfABranchPreparedBeforeARestartIsAnsweredFromTheDatabase) {
  // An earlier agent process prepared the branch, and a duplicate of its first Prepare reaches
  // this one (gRPC never delivers that; the simulation's network does). Running its work again
  // would vote NO here (the noop adapter affects 0 rows); the database says it is prepared.
  adapter_.MarkPrepared("txc_n1-1-7_0");
  v1::PrepareBranchRequest req;
  *req.mutable_ref() = Ref("n1-1-7");
  req.set_begin(true);
  req.set_first_send(true);
  *req.add_operations() = Sql("UPDATE t SET a = 1", 1);
  auto r = registry_.Prepare(req);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->vote(), v1::VOTE_YES) << r->reason();
  EXPECT_EQ(Commit(Ref("n1-1-7")), v1::BRANCH_RESULT_COMMITTED);
  EXPECT_FALSE(*adapter_.IsPrepared("txc_n1-1-7_0"));
}

TEST_F(BranchRegistryTest, PrepareWithoutWorkVotesReadOnly) {
  EXPECT_EQ(Prepare(Ref(), {}).vote(), v1::VOTE_READ_ONLY);
  EXPECT_EQ(Commit(Ref()), v1::BRANCH_RESULT_COMMITTED);
}

TEST_F(BranchRegistryTest, ExpectationMismatchVotesNoWithReason) {
  auto resp = Prepare(Ref(), {Sql("UPDATE stock SET qty = qty - 1", 1)});
  EXPECT_EQ(resp.vote(), v1::VOTE_NO);
  EXPECT_NE(resp.reason().find("expected 1 rows affected, got 0"), std::string::npos)
      << resp.reason();
  EXPECT_FALSE(*adapter_.IsPrepared("txc_n1-1-1_0"));
}

TEST_F(BranchRegistryTest, ACommitWhoseOutcomeIsUnknownLeavesAnUnknownBranchUnknown) {
  // After a restart this agent knows nothing of the branch, and the database cannot tell: the
  // answer is UNKNOWN, and a retry asks the database again (it was refused as "not prepared").
  EXPECT_EQ(Commit(Ref()), v1::BRANCH_RESULT_UNKNOWN);
  EXPECT_EQ(Commit(Ref()), v1::BRANCH_RESULT_UNKNOWN);
  EXPECT_EQ(Rollback(Ref()), v1::BRANCH_RESULT_ABORTED);
}

TEST_F(BranchRegistryTest, CommitTwiceAnswersCommittedTwice) {
  Prepare(Ref(), {Sql("x")});
  EXPECT_EQ(Commit(Ref()), v1::BRANCH_RESULT_COMMITTED);
  EXPECT_EQ(Commit(Ref()), v1::BRANCH_RESULT_COMMITTED);
}

TEST_F(BranchRegistryTest, CommitForUnknownGidIsUnknownNotCommitted) {
  EXPECT_EQ(Commit(Ref("n1-1-99")), v1::BRANCH_RESULT_UNKNOWN);
}

TEST_F(BranchRegistryTest, RollbackBeforePrepareMakesLatePrepareVoteNo) {
  EXPECT_EQ(Rollback(Ref()), v1::BRANCH_RESULT_ABORTED);
  auto resp = Prepare(Ref(), {Sql("x")});
  EXPECT_EQ(resp.vote(), v1::VOTE_NO);
  EXPECT_FALSE(*adapter_.IsPrepared("txc_n1-1-1_0")) << "a late prepare must not prepare";
}

TEST_F(BranchRegistryTest, PrepareAfterRollbackOfPreparedVotesNo) {
  Prepare(Ref(), {Sql("x")});
  EXPECT_EQ(Rollback(Ref()), v1::BRANCH_RESULT_ABORTED);
  EXPECT_EQ(Prepare(Ref(), {}).vote(), v1::VOTE_NO);
  EXPECT_EQ(Rollback(Ref()), v1::BRANCH_RESULT_ABORTED);
}

TEST_F(BranchRegistryTest, RollbackAfterCommitReportsCommitted) {
  Prepare(Ref(), {Sql("x")});
  Commit(Ref());
  EXPECT_EQ(Rollback(Ref()), v1::BRANCH_RESULT_COMMITTED);
}

TEST_F(BranchRegistryTest, CommitOfActiveBranchIsFailedPrecondition) {
  ASSERT_TRUE(registry_.Begin(Ref()).ok());
  v1::CommitBranchRequest req;
  *req.mutable_ref() = Ref();
  EXPECT_EQ(registry_.Commit(req).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(BranchRegistryTest, InvalidRefIsInvalidArgument) {
  v1::PrepareBranchRequest req;
  *req.mutable_ref() = Ref("n1-1-1'; DROP TABLE x");
  EXPECT_EQ(registry_.Prepare(req).status().code(), absl::StatusCode::kInvalidArgument);
  *req.mutable_ref() = Ref("n1-1-1", 5000);
  EXPECT_EQ(registry_.Prepare(req).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(BranchRegistryTest, ExecuteMismatchAbortsNowAndPrepareVotesNo) {
  v1::ExecuteBranchRequest req;
  *req.mutable_ref() = Ref();
  req.set_begin(true);
  *req.add_operations() = Sql("UPDATE t", 1);
  auto r = registry_.Execute(req);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(Prepare(Ref(), {}).vote(), v1::VOTE_NO);
}

TEST_F(BranchRegistryTest, OnePhaseCommitIsIdempotentAndUnknownBranchQueryIsUnknown) {
  v1::CommitOnePhaseRequest req;
  *req.mutable_ref() = Ref();
  req.set_begin(true);
  *req.add_operations() = Sql("x");
  EXPECT_EQ(registry_.CommitOnePhase(req)->result(), v1::BRANCH_RESULT_COMMITTED);
  req.clear_operations();
  req.set_begin(false);
  req.set_retry(true);
  EXPECT_EQ(registry_.CommitOnePhase(req)->result(), v1::BRANCH_RESULT_COMMITTED);
  *req.mutable_ref() = Ref("n1-1-2");
  EXPECT_EQ(registry_.CommitOnePhase(req)->result(), v1::BRANCH_RESULT_UNKNOWN)
      << "the noop adapter keeps no commit markers";
  req.set_retry(false);
  *req.mutable_ref() = Ref("n1-1-3");
  EXPECT_EQ(registry_.CommitOnePhase(req)->result(), v1::BRANCH_RESULT_ABORTED)
      << "a first commit of a branch this agent never saw: its work was lost";
}

TEST_F(BranchRegistryTest, OnePhaseMismatchAborts) {
  v1::CommitOnePhaseRequest req;
  *req.mutable_ref() = Ref();
  req.set_begin(true);
  *req.add_operations() = Sql("x", 1);
  auto r = registry_.CommitOnePhase(req);
  EXPECT_EQ(r->result(), v1::BRANCH_RESULT_ABORTED);
  EXPECT_NE(r->reason().find("expected 1"), std::string::npos);
}

TEST_F(BranchRegistryTest, BranchWhoseWorkWasLostVotesNoInsteadOfReadOnly) {
  // The agent restarted after an interactive Execute: the registry is empty, the work is gone.
  v1::PrepareBranchRequest req;
  *req.mutable_ref() = Ref("n1-1-8");
  auto resp = registry_.Prepare(req);
  ASSERT_TRUE(resp.ok());
  EXPECT_EQ(resp->vote(), v1::VOTE_NO);
  EXPECT_NE(resp->reason().find("lost"), std::string::npos);
  v1::ExecuteBranchRequest ex;
  *ex.mutable_ref() = Ref("n1-1-9");
  *ex.add_operations() = Sql("x");
  EXPECT_EQ(registry_.Execute(ex).status().code(), absl::StatusCode::kAborted);
}

TEST_F(BranchRegistryTest, IdleActiveBranchIsRolledBackBySweep) {
  ASSERT_TRUE(registry_.Begin(Ref()).ok());
  clock_.Advance(500);
  registry_.Sweep();
  EXPECT_EQ(Prepare(Ref(), {Sql("x")}).vote(), v1::VOTE_YES) << "not idle long enough yet";
  ASSERT_TRUE(registry_.Begin(Ref("n1-1-2")).ok());
  clock_.Advance(1500);
  registry_.Sweep();
  auto resp = Prepare(Ref("n1-1-2"), {Sql("x")});
  EXPECT_EQ(resp.vote(), v1::VOTE_NO);
  EXPECT_NE(resp.reason().find("idle timeout"), std::string::npos);
}

TEST_F(BranchRegistryTest, TombstonesExpireButPreparedBranchesStay) {
  Rollback(Ref("n1-1-1"));
  Prepare(Ref("n1-1-2"), {Sql("x")});
  EXPECT_EQ(registry_.size(), 2u);
  clock_.Advance(6000);
  registry_.Sweep();
  EXPECT_EQ(registry_.size(), 1u);
}

TEST_F(BranchRegistryTest, ATombstoneTouchedAgainLivesItsFullTimeFromTheLastTouch) {
  Rollback(Ref("n1-1-1"));
  clock_.Advance(4000);
  Rollback(Ref("n1-1-1"));  // a duplicate call: remembered from now on
  clock_.Advance(2000);     // past the first call's expiry, not the second's
  registry_.Sweep();
  EXPECT_EQ(registry_.size(), 1u);
  clock_.Advance(4000);
  registry_.Sweep();
  EXPECT_EQ(registry_.size(), 0u);
}

class FakeDecisions final : public DecisionSource {
 public:
  absl::StatusOr<v1::Decision> GetDecision(const std::string& txn_id) override {
    auto it = decisions.find(txn_id);
    if (it == decisions.end()) return absl::UnavailableError("coordinator down");
    return it->second;
  }
  std::map<std::string, v1::Decision> decisions;
};

TEST_F(BranchRegistryTest, ReconcilerFollowsTheCoordinatorAndNeverGuesses) {
  Prepare(Ref("n1-1-1"), {Sql("x")});
  Prepare(Ref("n1-1-2"), {Sql("x")});
  Prepare(Ref("n1-1-3"), {Sql("x")});
  Prepare(Ref("n1-1-4"), {Sql("x")});
  FakeDecisions fake;
  fake.decisions = {{"n1-1-1", v1::DECISION_COMMIT},
                    {"n1-1-2", v1::DECISION_ABORT},
                    {"n1-1-3", v1::DECISION_UNKNOWN}};
  InDoubtReconciler reconciler(&registry_, &fake);
  auto pass = reconciler.RunOnce();
  ASSERT_TRUE(pass.ok());
  EXPECT_EQ(pass->committed, 1);
  EXPECT_EQ(pass->aborted, 1);
  EXPECT_EQ(pass->undecided, 2);
  EXPECT_EQ(Commit(Ref("n1-1-1")), v1::BRANCH_RESULT_COMMITTED);
  EXPECT_TRUE(*adapter_.IsPrepared("txc_n1-1-3_0"));
  EXPECT_TRUE(*adapter_.IsPrepared("txc_n1-1-4_0"));
  EXPECT_FALSE(*adapter_.IsPrepared("txc_n1-1-2_0"));
}

}  // namespace
}  // namespace txn::agent
