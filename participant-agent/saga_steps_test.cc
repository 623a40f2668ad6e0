// The barrier rules, against the noop adapter's in-memory barrier (the same rules run against
// real PostgreSQL and MariaDB in tests/integration/test_saga.py).
#include "participant-agent/saga_steps.h"

#include <gtest/gtest.h>

#include "participant-agent/adapters/noop/noop_adapter.h"

namespace txn::agent {
namespace {

v1::ExecuteLocalRequest Step(const std::string& txn, uint32_t branch, bool fail = false) {
  v1::ExecuteLocalRequest req;
  req.mutable_ref()->set_txn_id(txn);
  req.mutable_ref()->set_branch(branch);
  auto* sql = req.add_operations()->mutable_sql();
  sql->set_text("UPDATE accounts SET balance = balance - 1");
  if (fail) sql->set_expect_rows_affected(1);  // the noop adapter affects 0 rows
  return req;
}

v1::CompensateRequest Compensation(const std::string& txn, uint32_t branch, bool fail = false) {
  v1::CompensateRequest req;
  req.mutable_ref()->set_txn_id(txn);
  req.mutable_ref()->set_branch(branch);
  auto* sql = req.add_operations()->mutable_sql();
  sql->set_text("UPDATE accounts SET balance = balance + 1");
  if (fail) sql->set_expect_rows_affected(1);
  return req;
}

class SagaStepsTest : public testing::Test {
 protected:
  NoopAdapter adapter_;
  SagaSteps steps_{&adapter_};
};

TEST_F(SagaStepsTest, AStepRunsOnceHoweverOftenItIsSent) {
  auto first = steps_.ExecuteLocal(Step("n1-1-1", 0));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->result(), v1::LOCAL_RESULT_DONE);
  EXPECT_FALSE(first->already_done());
  auto again = steps_.ExecuteLocal(Step("n1-1-1", 0));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->result(), v1::LOCAL_RESULT_DONE);
  EXPECT_TRUE(again->already_done());
}

TEST_F(SagaStepsTest, AFailedStepLeavesNoBarrierAndCanRunLater) {
  auto failed = steps_.ExecuteLocal(Step("n1-1-2", 0, /*fail=*/true));
  ASSERT_TRUE(failed.ok());
  EXPECT_EQ(failed->result(), v1::LOCAL_RESULT_FAILED);
  EXPECT_NE(failed->reason().find("operations[0]: expected 1 rows affected"), std::string::npos)
      << failed->reason();
  EXPECT_EQ(adapter_.BarrierOrigin("txc_n1-1-2_0", "action"), "");
  auto later = steps_.ExecuteLocal(Step("n1-1-2", 0));
  ASSERT_TRUE(later.ok());
  EXPECT_EQ(later->result(), v1::LOCAL_RESULT_DONE);
  EXPECT_FALSE(later->already_done());
}

TEST_F(SagaStepsTest, CompensationAfterTheStepRunsItsOperationsOnce) {
  ASSERT_TRUE(steps_.ExecuteLocal(Step("n1-1-3", 1)).ok());
  auto comp = steps_.Compensate(Compensation("n1-1-3", 1));
  ASSERT_TRUE(comp.ok());
  EXPECT_EQ(comp->result(), v1::LOCAL_RESULT_DONE);
  EXPECT_FALSE(comp->null_compensation());
  EXPECT_FALSE(comp->already_done());
  auto again = steps_.Compensate(Compensation("n1-1-3", 1));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->already_done());
}

TEST_F(SagaStepsTest, CompensationBeforeTheStepIsNullAndTheLateStepIsRefused) {
  auto comp = steps_.Compensate(Compensation("n1-1-4", 0));
  ASSERT_TRUE(comp.ok());
  EXPECT_EQ(comp->result(), v1::LOCAL_RESULT_DONE);
  EXPECT_TRUE(comp->null_compensation());
  auto late = steps_.ExecuteLocal(Step("n1-1-4", 0));
  ASSERT_TRUE(late.ok());
  EXPECT_EQ(late->result(), v1::LOCAL_RESULT_REFUSED);
  EXPECT_NE(late->reason().find("compensation ran first"), std::string::npos);
}

TEST_F(SagaStepsTest, AFailedCompensationWritesNothingAndCanBeRetried) {
  ASSERT_TRUE(steps_.ExecuteLocal(Step("n1-1-5", 0)).ok());
  auto failed = steps_.Compensate(Compensation("n1-1-5", 0, /*fail=*/true));
  ASSERT_TRUE(failed.ok());
  EXPECT_EQ(failed->result(), v1::LOCAL_RESULT_FAILED);
  EXPECT_EQ(adapter_.BarrierOrigin("txc_n1-1-5_0", "compensation"), "");
  auto retried = steps_.Compensate(Compensation("n1-1-5", 0));
  ASSERT_TRUE(retried.ok());
  EXPECT_EQ(retried->result(), v1::LOCAL_RESULT_DONE);
  EXPECT_FALSE(retried->null_compensation());
}

TEST_F(SagaStepsTest, BadRefsAreInvalidArgument) {
  EXPECT_EQ(steps_.ExecuteLocal(Step("x'; --", 0)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(steps_.Compensate(Compensation("", 0)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace txn::agent
