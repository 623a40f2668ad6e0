// TransactionDriver's front end: idempotency keys (also across restarts), interactive sessions,
// admission per principal.
#include "coordinator/driver/driver_test_fixture.h"

namespace txn::driver {
namespace {

TEST_F(TransactionDriverTest, IdempotencyKeyReturnsTheOriginalOutcome) {
  v1::RunRequest req = Transfer();
  req.set_idempotency_key("order-17");
  auto first = RunSync(req);
  auto second = RunSync(req);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->txn_id(), second->txn_id());
  EXPECT_EQ(second->state(), v1::TXN_STATE_COMMITTED);
  EXPECT_EQ(orders_->prepares, 1);
  req.mutable_branches(0)->mutable_operations(0)->mutable_sql()->set_text("UPDATE t SET a = 2");
  EXPECT_EQ(RunSync(req).status().code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(TransactionDriverTest, IdempotencyKeySurvivesRestartForCommitted) {
  v1::RunRequest req = Transfer();
  req.set_idempotency_key("order-18");
  auto first = RunSync(req);
  WaitIdle();
  MakeDriver();
  auto second = RunSync(req);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->txn_id(), first->txn_id());
  EXPECT_EQ(orders_->prepares, 1);
}

// A crash between the COMMIT decision and the completion write: the restart that finishes the
// commit must keep the record's key, or a second restart forgets it and a retry runs again.
TEST_F(TransactionDriverTest, IdempotencyKeySurvivesTwoRestartsAfterACrashBeforeCompletion) {
  orders_->commit_failures = 1'000'000;  // the commit is decided but never acknowledged
  v1::RunRequest req = Transfer(/*wait=*/false);
  req.set_idempotency_key("order-19");
  auto first = RunSync(req);
  ASSERT_TRUE(first.ok()) << first.status();
  for (int i = 0; i < 200 && orders_->commits == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_GT(orders_->commits, 0) << "the decision is logged and the commit sent";
  {
    std::lock_guard<std::mutex> lock(orders_->mu);
    orders_->commit_failures = 0;
  }
  MakeDriver();  // restart 1 re-drives the commit, which now succeeds
  for (int i = 0; i < 400 && !(*log_.Get(first->txn_id()))->done(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE((*log_.Get(first->txn_id()))->done());
  EXPECT_EQ((*log_.Get(first->txn_id()))->idempotency_key(), "order-19");
  WaitIdle();
  MakeDriver();  // restart 2 knows the key only from the completed record
  const int prepares_before = orders_->prepares;
  auto retry = RunSync(req);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_EQ(retry->txn_id(), first->txn_id());
  EXPECT_EQ(retry->state(), v1::TXN_STATE_COMMITTED);
  EXPECT_EQ(orders_->prepares, prepares_before) << "the retry must not run the transfer again";
  req.mutable_branches(0)->mutable_operations(0)->mutable_sql()->set_text("UPDATE t SET a = 2");
  EXPECT_EQ(RunSync(req).status().code(), absl::StatusCode::kAlreadyExists)
      << "the fingerprint must survive too";
}

// A keyed transaction whose only writer is a last resource (the other branch voted READ_ONLY):
// a crash while its one-phase commit is out must leave a record of the key, or the client's
// retry after the restart commits on the last resource a second time.
TEST_F(TransactionDriverTest, AKeyedLastResourceIsNotCommittedTwiceAcrossACrash) {
  dir_.cannot_prepare = {"inventory"};
  orders_->vote = v1::VOTE_READ_ONLY;
  inventory_->one_phase_result = v1::BRANCH_RESULT_UNKNOWN;  // its answers are lost
  v1::RunRequest req = Transfer(/*wait=*/false);
  req.set_idempotency_key("order-21");
  driver_->Run(req, [](absl::StatusOr<v1::Outcome>) {});
  auto one_phase_calls = [&] {
    std::lock_guard<std::mutex> lock(inventory_->mu);
    return inventory_->one_phase_requests;
  };
  for (int i = 0; i < 400 && one_phase_calls().empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_FALSE(one_phase_calls().empty()) << "the last resource was asked to commit";
  const std::string txn_id = one_phase_calls()[0].ref().txn_id();
  {
    std::lock_guard<std::mutex> lock(inventory_->mu);
    inventory_->one_phase_result = v1::BRANCH_RESULT_COMMITTED;  // it did commit
  }
  MakeDriver();  // the coordinator crashed with the commit's answer lost, and restarted
  WaitIdle();
  auto retry = RunSync(req);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_EQ(retry->txn_id(), txn_id);
  EXPECT_EQ(retry->state(), v1::TXN_STATE_COMMITTED);
  int begun = 0;
  for (const auto& c : one_phase_calls()) begun += c.begin() ? 1 : 0;
  EXPECT_EQ(begun, 1) << "the retry ran the transaction a second time";
}

TEST_F(TransactionDriverTest, OwnerAndScopedKeySurviveARestart) {
  v1::RunRequest req = Transfer();
  req.set_idempotency_key("order-20");
  auto mine = RunSync(req, "alice");
  ASSERT_TRUE(mine.ok()) << mine.status();
  ASSERT_EQ(mine->state(), v1::TXN_STATE_COMMITTED);
  EXPECT_EQ((*log_.Get(mine->txn_id()))->owner(), "alice");
  WaitIdle();
  MakeDriver();
  // Only alice sees it; the principal "" (no tokens configured) sees everything.
  EXPECT_EQ(driver_->GetTransaction(mine->txn_id(), "alice")->owner(), "alice");
  EXPECT_EQ(driver_->GetTransaction(mine->txn_id(), "bob").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(driver_->GetTransaction(mine->txn_id()).ok());
  // Her key still finds it; bob's use of the same key is a transaction of his own.
  const int prepares_before = orders_->prepares;
  EXPECT_EQ(RunSync(req, "alice")->txn_id(), mine->txn_id());
  EXPECT_EQ(orders_->prepares, prepares_before);
  auto bobs = RunSync(req, "bob");
  ASSERT_TRUE(bobs.ok()) << bobs.status();
  EXPECT_NE(bobs->txn_id(), mine->txn_id());
}

TEST_F(TransactionDriverTest, InteractiveBeginExecuteCommit) {
  v1::BeginRequest begin;
  begin.set_protocol(v1::PROTOCOL_TWO_PHASE);
  auto txn = driver_->Begin(begin);
  ASSERT_TRUE(txn.ok());
  for (const char* p : {"orders", "inventory", "orders"}) {
    v1::ExecuteRequest ex;
    ex.set_txn_id(txn->txn_id());
    ex.set_participant(p);
    ex.mutable_operation()->mutable_sql()->set_text("UPDATE t SET a = 1");
    std::promise<absl::StatusOr<v1::ExecuteResult>> p1;
    driver_->Execute(ex, [&](absl::StatusOr<v1::ExecuteResult> r) { p1.set_value(r); });
    ASSERT_TRUE(p1.get_future().get().ok());
  }
  v1::CommitRequest commit;
  commit.set_txn_id(txn->txn_id());
  commit.set_wait_for_completion(true);
  std::promise<absl::StatusOr<v1::Outcome>> p2;
  driver_->Commit(commit, [&](absl::StatusOr<v1::Outcome> o) { p2.set_value(o); });
  auto out = p2.get_future().get();
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->state(), v1::TXN_STATE_COMMITTED);
  EXPECT_EQ(out->branches_size(), 2);
  // Execute after Commit is refused, naming the state.
  v1::ExecuteRequest late;
  late.set_txn_id(txn->txn_id());
  late.set_participant("orders");
  late.mutable_operation()->mutable_sql()->set_text("UPDATE t SET a = 1");
  std::promise<absl::StatusOr<v1::ExecuteResult>> p3;
  driver_->Execute(late, [&](absl::StatusOr<v1::ExecuteResult> r) { p3.set_value(r); });
  EXPECT_EQ(p3.get_future().get().status().code(), absl::StatusCode::kFailedPrecondition);
  // A retried Commit gets the same answer.
  std::promise<absl::StatusOr<v1::Outcome>> p4;
  driver_->Commit(commit, [&](absl::StatusOr<v1::Outcome> o) { p4.set_value(o); });
  EXPECT_EQ(p4.get_future().get()->state(), v1::TXN_STATE_COMMITTED);
}

TEST_F(TransactionDriverTest, APrincipalAtItsInFlightLimitIsRefusedAndOthersAreNot) {
  MakeDriver([](DriverOptions& o) { o.max_active_per_principal = 2; });
  v1::BeginRequest begin;
  begin.set_protocol(v1::PROTOCOL_TWO_PHASE);
  auto first = driver_->Begin(begin, "alice");
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(driver_->Begin(begin, "alice").ok());
  absl::Status refused = driver_->Begin(begin, "alice").status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(refused.message().find("--max-active-per-principal"), absl::string_view::npos);
  v1::RunRequest keyed = Transfer();
  keyed.set_idempotency_key("pay-1");
  EXPECT_EQ(RunSync(keyed, "alice").status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(orders_->prepares, 0);
  // Others are not held back by alice; the anonymous principal has no limit of its own.
  ASSERT_TRUE(driver_->Begin(begin, "bob").ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(driver_->Begin(begin, "").ok());
  // A finished transaction frees its slot, and the refused key was given back: its retry runs.
  v1::RollbackRequest rollback;
  rollback.set_txn_id(first->txn_id());
  std::promise<absl::StatusOr<v1::Outcome>> rolled;
  driver_->Rollback(rollback, [&](absl::StatusOr<v1::Outcome> o) { rolled.set_value(o); },
                    "alice");
  ASSERT_TRUE(rolled.get_future().get().ok());
  for (int i = 0; i < 200 && RunSync(keyed, "alice").status().code() ==
                                 absl::StatusCode::kResourceExhausted;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  auto ran = RunSync(keyed, "alice");
  ASSERT_TRUE(ran.ok()) << ran.status();
  EXPECT_EQ(ran->state(), v1::TXN_STATE_COMMITTED);
  EXPECT_EQ(orders_->prepares, 1);
}

TEST_F(TransactionDriverTest, InteractiveDeadlineRollsBack) {
  v1::BeginRequest begin;
  begin.set_protocol(v1::PROTOCOL_TWO_PHASE);
  begin.set_timeout_ms(50);
  auto txn = driver_->Begin(begin);
  v1::ExecuteRequest ex;
  ex.set_txn_id(txn->txn_id());
  ex.set_participant("orders");
  ex.mutable_operation()->mutable_sql()->set_text("UPDATE t SET a = 1");
  std::promise<absl::StatusOr<v1::ExecuteResult>> p1;
  driver_->Execute(ex, [&](absl::StatusOr<v1::ExecuteResult> r) { p1.set_value(r); });
  ASSERT_TRUE(p1.get_future().get().ok());
  WaitIdle();
  EXPECT_EQ(orders_->rollbacks, 1);
  auto t = driver_->GetTransaction(txn->txn_id());
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->state(), v1::TXN_STATE_ABORTED);
  EXPECT_NE(t->reason().find("deadline"), std::string::npos);
}

}  // namespace
}  // namespace txn::driver
