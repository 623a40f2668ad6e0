// Sagas through TransactionDriver: steps in order, compensation, retries, resuming after a restart.
#include "coordinator/driver/driver_test_fixture.h"

namespace txn::driver {
namespace {

v1::RunRequest Saga(int steps) {
  v1::RunRequest req;
  req.set_protocol(v1::PROTOCOL_SAGA);
  for (int i = 0; i < steps; ++i) {
    auto* b = req.add_branches();
    b->set_participant(i % 2 == 0 ? "orders" : "inventory");
    b->add_operations()->mutable_sql()->set_text("UPDATE t SET a = a - 1");
    b->add_compensations()->mutable_sql()->set_text("UPDATE t SET a = a + 1");
  }
  return req;
}

TEST_F(TransactionDriverTest, SagaRunsEveryStepInOrderAndCommits) {
  ScriptedChannel::TakeJournal();
  auto out = RunSync(Saga(3));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->state(), v1::TXN_STATE_COMMITTED);
  EXPECT_EQ(ScriptedChannel::TakeJournal(),
            (std::vector<std::string>{"step 0@orders", "step 1@inventory", "step 2@orders"}));
  EXPECT_EQ(orders_->prepares, 0) << "no 2PC";
  WaitIdle();
  auto t = driver_->GetTransaction(out->txn_id());
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->protocol(), v1::PROTOCOL_SAGA);
  EXPECT_EQ(t->state(), v1::TXN_STATE_COMMITTED);
}

// A saga whose final record fails to write: the client hears IN_DOUBT (the outcome is not
// durable), and once the log works again the saga finishes without a restart.
TEST_F(TransactionDriverTest, ASagaWhoseFinalRecordFailedFinishesOnceTheLogWorksAgain) {
  FlakyLog flaky;
  log::GroupCommitLog group(&flaky);
  DriverOptions options;
  options.retry_backoff = {.initial_ms = 1, .max_ms = 5, .multiplier = 2};
  TransactionDriver driver(DriverDeps{&flaky, &group, &dir_, &clock_, &timers_}, options);
  ASSERT_TRUE(driver.Recover().ok());
  // The START record lands; the log breaks as the step is answered.
  std::promise<absl::StatusOr<v1::Outcome>> p;
  {
    std::lock_guard<std::mutex> lock(orders_->mu);
    orders_->on_local = [&flaky] { flaky.failing = true; };
  }
  driver.Run(Saga(1), [&](absl::StatusOr<v1::Outcome> o) { p.set_value(o); });
  absl::StatusOr<v1::Outcome> out = p.get_future().get();
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->state(), v1::TXN_STATE_IN_DOUBT) << "never COMMITTED before it is durable";
  EXPECT_NE(out->reason().find("No space left on device"), std::string::npos) << out->reason();
  EXPECT_FALSE(driver.accepting());
  EXPECT_EQ(driver.active_count(), 1u);
  flaky.failing = false;
  for (int i = 0; i < 400 && driver.active_count() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(driver.active_count(), 0u) << "finished without a restart";
  auto record = flaky.inner.Get(out->txn_id());
  ASSERT_TRUE(record.ok() && record->has_value());
  EXPECT_TRUE((*record)->done());
  EXPECT_EQ((*record)->state(), v1::TXN_STATE_COMMITTED);
  auto shown = driver.GetTransaction(out->txn_id());
  ASSERT_TRUE(shown.ok());
  EXPECT_EQ(shown->state(), v1::TXN_STATE_COMMITTED);
}

TEST_F(TransactionDriverTest, SagaFailureCompensatesTheDoneStepsInReverse) {
  ScriptedChannel::TakeJournal();
  // Step 2 runs on orders (steps alternate), step 1 on inventory: make inventory fail.
  inventory_->local_result = v1::LOCAL_RESULT_FAILED;
  auto out = RunSync(Saga(3));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->state(), v1::TXN_STATE_ABORTED);
  EXPECT_NE(out->reason().find("step 1 (participant inventory) failed: insufficient funds"),
            std::string::npos)
      << out->reason();
  EXPECT_EQ(ScriptedChannel::TakeJournal(),
            (std::vector<std::string>{"step 0@orders", "step 1@inventory", "compensate 1@inventory",
                                      "compensate 0@orders"}));
  EXPECT_EQ(out->branches(0).state(), v1::BRANCH_STATE_COMPENSATED);
  EXPECT_EQ(out->branches(2).state(), v1::BRANCH_STATE_ACTIVE) << "never ran";
}

TEST_F(TransactionDriverTest, SagaStepOnAParticipantWithoutSagasFailsAndCompensatesCleanly) {
  inventory_->no_sagas = true;
  auto out = RunSync(Saga(2));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->state(), v1::TXN_STATE_ABORTED) << out->reason();
  EXPECT_NE(out->reason().find("does not run saga steps"), std::string::npos);
  EXPECT_EQ(out->branches(1).state(), v1::BRANCH_STATE_COMPENSATED);
  EXPECT_EQ(orders_->compensate_calls, 1);
}

TEST_F(TransactionDriverTest, SagaStepWithLostAnswersIsRetried) {
  orders_->local_transport_failures = 2;
  auto out = RunSync(Saga(1));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->state(), v1::TXN_STATE_COMMITTED);
  EXPECT_EQ(orders_->local_calls, 3);
}

TEST_F(TransactionDriverTest, SagaCompensationThatKeepsFailingIsFailedCompensationAndKept) {
  inventory_->local_result = v1::LOCAL_RESULT_FAILED;
  orders_->compensate_failures = 1000;
  auto out = RunSync(Saga(2));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->state(), v1::TXN_STATE_FAILED_COMPENSATION);
  EXPECT_EQ(out->branches(0).state(), v1::BRANCH_STATE_HEURISTIC);
  EXPECT_EQ(orders_->compensate_calls, core::kMaxCompensationAttempts);
  WaitIdle();
  v1::ListTransactionsRequest req;
  req.add_states(v1::TXN_STATE_FAILED_COMPENSATION);
  auto listed = driver_->ListTransactions(req);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->transactions_size(), 1);
  for (int i = 0; i < 500; ++i) {  // the final record is written after the client's answer
    auto r = log_.Get(out->txn_id());
    if (r.ok() && r->has_value() && (*r)->done()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  clock_.Advance(int64_t{48} * 3600 * 1000);
  ASSERT_TRUE(driver_->CollectGarbage().ok());
  auto record = log_.Get(out->txn_id());
  ASSERT_TRUE(record.ok() && record->has_value()) << "never collected";
  EXPECT_EQ((*record)->state(), v1::TXN_STATE_FAILED_COMPENSATION);
}

TEST_F(TransactionDriverTest, SagaIsResumedFromTheLogAfterARestart) {
  // A saga whose step 0 is done and whose step 1 had not answered when the coordinator died.
  log::DecisionRecord r;
  r.set_txn_id("n1-1-77");
  r.set_protocol(v1::PROTOCOL_SAGA);
  r.set_state(v1::TXN_STATE_ACTIVE);
  v1::RunRequest req = Saga(2);
  for (int i = 0; i < 2; ++i) {
    auto* b = r.add_branches();
    b->set_participant(req.branches(i).participant());
    b->set_state(i == 0 ? v1::BRANCH_STATE_COMMITTED : v1::BRANCH_STATE_PREPARING);
    *r.add_saga_steps() = req.branches(i);
  }
  ASSERT_TRUE(log_.Write({r}, true).ok());
  ScriptedChannel::TakeJournal();
  MakeDriver();
  WaitIdle();
  EXPECT_EQ(ScriptedChannel::TakeJournal(), std::vector<std::string>{"step 1@inventory"});
  auto t = driver_->GetTransaction("n1-1-77");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->state(), v1::TXN_STATE_COMMITTED);
  bool done = false;
  for (int i = 0; i < 500 && !done; ++i) {  // the final record lands after the saga is finished
    auto rec = log_.Get("n1-1-77");
    done = rec.ok() && rec->has_value() && (*rec)->done();
    if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_TRUE(done);
}

TEST_F(TransactionDriverTest, SagaIsNotDrivenByCommitOrResolve) {
  orders_->local_transport_failures = 1000;  // keeps the saga running
  std::promise<absl::StatusOr<v1::Outcome>> p;
  driver_->Run(Saga(1), [&](absl::StatusOr<v1::Outcome> o) { p.set_value(o); });
  std::string id;
  for (int i = 0; i < 100 && id.empty(); ++i) {
    auto listed = driver_->ListTransactions(v1::ListTransactionsRequest());
    if (listed.ok() && listed->transactions_size() == 1) id = listed->transactions(0).txn_id();
  }
  ASSERT_FALSE(id.empty());
  v1::CommitRequest commit;
  commit.set_txn_id(id);
  std::promise<absl::StatusOr<v1::Outcome>> c;
  driver_->Commit(commit, [&](absl::StatusOr<v1::Outcome> o) { c.set_value(o); });
  EXPECT_EQ(c.get_future().get().status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Resolve(*driver_, id, v1::DECISION_ABORT).status().code(),
            absl::StatusCode::kFailedPrecondition);
  orders_->local_transport_failures = 0;
  auto out = p.get_future().get();
  ASSERT_TRUE(out.ok());
}

}  // namespace
}  // namespace txn::driver
