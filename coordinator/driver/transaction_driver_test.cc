// TransactionDriver, two-phase commit: commit, abort, timeouts, one phase, last resource, recovery,
// a failing log, open circuits, deadlock victims.
#include "coordinator/driver/driver_test_fixture.h"

namespace txn::driver {
namespace {

TEST_F(TransactionDriverTest, TwoBranchesCommitAndTheDecisionIsLogged) {
  auto out = RunSync(Transfer());
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->state(), v1::TXN_STATE_COMMITTED);
  EXPECT_EQ(orders_->commits, 1);
  EXPECT_EQ(inventory_->native_ids, std::vector<std::string>{"42"});
  WaitIdle();
  auto record = log_.Get(out->txn_id());
  ASSERT_TRUE(record.ok() && record->has_value());
  EXPECT_EQ((*record)->decision(), v1::DECISION_COMMIT);
  EXPECT_EQ(*driver_->GetDecision(out->txn_id()), v1::DECISION_COMMIT);
  auto txn = driver_->GetTransaction(out->txn_id());
  ASSERT_TRUE(txn.ok());
  EXPECT_EQ(txn->state(), v1::TXN_STATE_COMMITTED);
}

TEST_F(TransactionDriverTest, NoVoteAbortsWithoutLogRecordAndRollsBackTheOther) {
  inventory_->vote = v1::VOTE_NO;
  auto out = RunSync(Transfer());
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->state(), v1::TXN_STATE_ABORTED);
  EXPECT_NE(out->reason().find("inventory voted NO"), std::string::npos) << out->reason();
  WaitIdle();
  EXPECT_EQ(orders_->rollbacks, 1);
  EXPECT_EQ(orders_->commits, 0);
  EXPECT_FALSE(log_.Get(out->txn_id())->has_value()) << "presumed abort writes nothing";
  EXPECT_EQ(*driver_->GetDecision(out->txn_id()), v1::DECISION_ABORT);
}

TEST_F(TransactionDriverTest, SilentParticipantTimesOutAndAborts) {
  inventory_->silent = true;
  auto out = RunSync(Transfer());
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->state(), v1::TXN_STATE_ABORTED);
  EXPECT_NE(out->reason().find("timed out waiting for inventory"), std::string::npos);
}

TEST_F(TransactionDriverTest, CommitIsRetriedUntilAcknowledged) {
  orders_->commit_failures = 3;
  auto out = RunSync(Transfer(/*wait=*/true));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->state(), v1::TXN_STATE_COMMITTED);
  EXPECT_EQ(orders_->commits, 4);
}

TEST_F(TransactionDriverTest, SingleBranchUsesOnePhaseAndNoLog) {
  v1::RunRequest req = Transfer();
  req.mutable_branches()->RemoveLast();
  auto out = RunSync(req);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->state(), v1::TXN_STATE_COMMITTED);
  EXPECT_EQ(orders_->one_phase, 1);
  EXPECT_EQ(orders_->prepares, 0);
  EXPECT_FALSE(log_.Get(out->txn_id())->has_value());
}

// Found by the simulation (tests/sim): a one-phase commit has no COMMIT record, so its key lived
// only in memory and a retry after a restart ran the transfer a second time. A keyed
// single-branch transaction is prepared and logged instead.
TEST_F(TransactionDriverTest, KeyedSingleBranchIsLoggedSoARetryAfterARestartRunsOnce) {
  v1::RunRequest req = Transfer();
  req.mutable_branches()->RemoveLast();
  req.set_idempotency_key("order-1pc");
  auto out = RunSync(req);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->state(), v1::TXN_STATE_COMMITTED);
  // The COMMIT record with the key is durable by the time the client hears COMMITTED.
  auto record = log_.Get(out->txn_id());
  ASSERT_TRUE(record.ok() && record->has_value());
  EXPECT_EQ((*record)->idempotency_key(), "order-1pc");
  WaitIdle();
  // Its completion (done) is written after the answer, unsynced: it lands soon after.
  for (int i = 0; i < 200 && !(*log_.Get(out->txn_id()))->done(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE((*log_.Get(out->txn_id()))->done());
  MakeDriver();
  auto retry = RunSync(req);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_EQ(retry->txn_id(), out->txn_id());
  EXPECT_EQ(retry->state(), v1::TXN_STATE_COMMITTED);
  EXPECT_EQ(orders_->one_phase, 0);
  EXPECT_EQ(orders_->prepares, 1) << "the retry must not run the transfer again";
  EXPECT_EQ(driver_->GetDecision(out->txn_id()).value(), v1::DECISION_COMMIT);
}

TEST_F(TransactionDriverTest, BadRequestsAreRejectedBeforeAnythingStarts) {
  v1::RunRequest req = Transfer();
  req.set_protocol(v1::PROTOCOL_UNSPECIFIED);
  EXPECT_EQ(RunSync(req).status().code(), absl::StatusCode::kInvalidArgument);
  req = Transfer();
  req.clear_branches();
  EXPECT_EQ(RunSync(req).status().code(), absl::StatusCode::kInvalidArgument);
  req = Transfer();
  req.mutable_branches(1)->set_participant("nowhere");
  auto s = RunSync(req).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(s.message().find("branches[1].participant 'nowhere'"), std::string::npos) << s;
  req = Transfer();
  req.mutable_branches(0)->mutable_operations(0)->mutable_sql()->set_text("COMMIT");
  EXPECT_EQ(RunSync(req).status().code(), absl::StatusCode::kInvalidArgument);
  req = Transfer();
  req.mutable_branches(0)->add_compensations()->mutable_sql()->set_text("x");
  EXPECT_EQ(RunSync(req).status().code(), absl::StatusCode::kInvalidArgument);
  req = Transfer();
  req.set_protocol(v1::PROTOCOL_THREE_PHASE);
  req.mutable_branches(0)->mutable_operations(0)->mutable_sql()->set_text("COMMIT");
  EXPECT_EQ(RunSync(req).status().code(), absl::StatusCode::kInvalidArgument);
  req = Transfer();
  req.set_protocol(v1::PROTOCOL_SAGA);
  req.mutable_branches(1)->add_compensations()->mutable_sql()->set_text("COMMIT");
  EXPECT_EQ(RunSync(req).status().code(), absl::StatusCode::kInvalidArgument);
  v1::BeginRequest begin;
  begin.set_protocol(v1::PROTOCOL_SAGA);
  EXPECT_EQ(driver_->Begin(begin).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(orders_->prepares + inventory_->prepares, 0);
}

TEST_F(TransactionDriverTest, RecoveryRedrivesALoggedCommit) {
  log::DecisionRecord r;
  r.set_txn_id("n1-1-5");
  r.set_decision(v1::DECISION_COMMIT);
  r.set_protocol(v1::PROTOCOL_TWO_PHASE);
  for (const char* p : {"orders", "inventory"}) {
    auto* b = r.add_branches();
    b->set_participant(p);
    b->set_state(static_cast<int>(core::BranchState::kPrepared));
    b->set_native_id("77");
  }
  ASSERT_TRUE(log_.Write({r}, true).ok());
  MakeDriver();
  WaitIdle();
  EXPECT_EQ(orders_->commits, 1);
  EXPECT_EQ(inventory_->native_ids, std::vector<std::string>{"77"});
  for (int i = 0; i < 200 && !(*log_.Get("n1-1-5"))->done(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE((*log_.Get("n1-1-5"))->done());
  EXPECT_EQ(*driver_->GetDecision("n1-1-5"), v1::DECISION_COMMIT);
}

TEST_F(TransactionDriverTest, NewIdsAfterRestartNeverRepeat) {
  auto a = RunSync(Transfer());
  MakeDriver();
  auto b = RunSync(Transfer());
  EXPECT_NE(a->txn_id(), b->txn_id());
}

TEST_F(TransactionDriverTest, LastResourceCommitsLastWithItsOperations) {
  dir_.cannot_prepare = {"inventory"};
  auto out = RunSync(Transfer());
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->state(), v1::TXN_STATE_COMMITTED);
  EXPECT_EQ(inventory_->prepares, 0) << "a last resource is never asked to prepare";
  ASSERT_EQ(inventory_->one_phase_requests.size(), 1u);
  EXPECT_TRUE(inventory_->one_phase_requests[0].begin());
  EXPECT_EQ(inventory_->one_phase_requests[0].operations_size(), 1);
  EXPECT_EQ(orders_->commits, 1);
  WaitIdle();
  auto record = log_.Get(out->txn_id());
  ASSERT_TRUE(record.ok() && record->has_value());
  EXPECT_EQ((*record)->decision(), v1::DECISION_COMMIT);
  EXPECT_EQ((*record)->last_resource(), 1u);
}

TEST_F(TransactionDriverTest, LastResourceAbortRollsBackTheOthers) {
  dir_.cannot_prepare = {"inventory"};
  inventory_->one_phase_result = v1::BRANCH_RESULT_ABORTED;
  auto out = RunSync(Transfer());
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->state(), v1::TXN_STATE_ABORTED);
  WaitIdle();
  EXPECT_EQ(orders_->rollbacks, 1);
  EXPECT_EQ(orders_->commits, 0);
  EXPECT_EQ(*driver_->GetDecision(out->txn_id()), v1::DECISION_ABORT);
}

TEST_F(TransactionDriverTest, TwoLastResourcesAreRefused) {
  dir_.cannot_prepare = {"inventory", "orders"};
  auto s = RunSync(Transfer()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("allow_heuristic"), std::string::npos);
  EXPECT_EQ(orders_->prepares + inventory_->one_phase, 0);
}

TEST_F(TransactionDriverTest, AllowHeuristicCommitsTwoNonPreparableBranchesOnePhaseEach) {
  dir_.cannot_prepare = {"inventory", "orders"};
  v1::RunRequest req = Transfer();
  req.set_allow_heuristic(true);
  auto out = RunSync(req);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->state(), v1::TXN_STATE_COMMITTED);
  EXPECT_EQ(orders_->prepares + inventory_->prepares, 0);
  EXPECT_EQ(orders_->one_phase + inventory_->one_phase, 2);
}

TEST_F(TransactionDriverTest, AllowHeuristicReportsAMixedOutcome) {
  dir_.cannot_prepare = {"inventory", "orders"};
  inventory_->one_phase_result = v1::BRANCH_RESULT_ABORTED;  // the second one, after COMMIT
  v1::RunRequest req = Transfer();
  req.set_allow_heuristic(true);
  auto out = RunSync(req);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->state(), v1::TXN_STATE_HEURISTIC_MIXED);
  EXPECT_EQ(out->branches(1).state(), v1::BRANCH_STATE_HEURISTIC);
}

TEST_F(TransactionDriverTest, LastResourceTimeoutBeyondItsLifetimeIsRefused) {
  dir_.cannot_prepare = {"inventory"};
  v1::RunRequest req = Transfer();
  req.set_timeout_ms(60'000);
  auto s = RunSync(req).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("lifetime limit of 30000 ms"), std::string::npos) << s;
}

TEST_F(TransactionDriverTest, RecoveryAsksTheLastResourceThenFinishes) {
  log::DecisionRecord r;
  r.set_txn_id("n1-1-9");
  r.set_committing_last(true);
  r.set_last_resource(1);
  r.set_protocol(v1::PROTOCOL_TWO_PHASE);
  auto* b0 = r.add_branches();
  b0->set_participant("orders");
  b0->set_state(static_cast<int>(core::BranchState::kPrepared));
  auto* b1 = r.add_branches();
  b1->set_participant("inventory");
  b1->set_state(static_cast<int>(core::BranchState::kActive));
  ASSERT_TRUE(log_.Write({r}, true).ok());
  MakeDriver();
  WaitIdle();
  ASSERT_EQ(inventory_->one_phase_requests.size(), 1u);
  EXPECT_TRUE(inventory_->one_phase_requests[0].retry()) << "a query, never a second commit";
  EXPECT_EQ(orders_->commits, 1);
  EXPECT_EQ((*log_.Get("n1-1-9"))->decision(), v1::DECISION_COMMIT);
}

TEST_F(TransactionDriverTest, FailedDecisionWriteFailsClosedUntilTheLogWorks) {
  FlakyLog flaky;
  log::GroupCommitLog group(&flaky);
  TransactionDriver driver(DriverDeps{&flaky, &group, &dir_, &clock_, &timers_}, DriverOptions{});
  ASSERT_TRUE(driver.Recover().ok());
  auto run = [&](const v1::RunRequest& req) {
    std::promise<absl::StatusOr<v1::Outcome>> p;
    driver.Run(req, [&](absl::StatusOr<v1::Outcome> o) { p.set_value(o); });
    return p.get_future().get();
  };
  flaky.failing = true;
  auto first = run(Transfer());
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->state(), v1::TXN_STATE_IN_DOUBT) << "never a guessed COMMITTED or ABORTED";
  EXPECT_EQ(orders_->commits, 0) << "no Commit without a durable decision";
  EXPECT_FALSE(driver.accepting());
  EXPECT_EQ(run(Transfer()).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(driver.ProbeLog().ok());
  flaky.failing = false;
  EXPECT_TRUE(driver.ProbeLog().ok());
  EXPECT_TRUE(driver.accepting());
  auto later = run(Transfer());
  ASSERT_TRUE(later.ok());
  EXPECT_EQ(later->state(), v1::TXN_STATE_COMMITTED);
}

TEST_F(TransactionDriverTest, UnknownTransactionIsNotFound) {
  EXPECT_EQ(driver_->GetTransaction("n1-1-12345").status().code(), absl::StatusCode::kNotFound);
  std::promise<absl::StatusOr<v1::Outcome>> p;
  v1::CommitRequest c;
  c.set_txn_id("n1-1-12345");
  driver_->Commit(c, [&](absl::StatusOr<v1::Outcome> o) { p.set_value(o); });
  EXPECT_EQ(p.get_future().get().status().code(), absl::StatusCode::kNotFound);
}

TEST_F(TransactionDriverTest, OpenCircuitFailsNewTransactionsFastAndSendsNothing) {
  dir_.circuit_open.insert("inventory");
  auto out = RunSync(Transfer());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(out.status().message().find("inventory"), std::string::npos);
  EXPECT_EQ(orders_->prepares, 0);
  EXPECT_EQ(driver_->active_count(), 0u);

  v1::BeginRequest begin;
  begin.set_protocol(v1::PROTOCOL_TWO_PHASE);
  auto txn = driver_->Begin(begin);
  ASSERT_TRUE(txn.ok());
  v1::ExecuteRequest exec;
  exec.set_txn_id(txn->txn_id());
  exec.set_participant("inventory");
  exec.mutable_operation()->mutable_sql()->set_text("UPDATE t SET a = 1");
  std::promise<absl::StatusOr<v1::ExecuteResult>> p;
  driver_->Execute(exec, [&](absl::StatusOr<v1::ExecuteResult> r) { p.set_value(r); });
  EXPECT_EQ(p.get_future().get().status().code(), absl::StatusCode::kUnavailable);

  dir_.circuit_open.clear();
  auto later = RunSync(Transfer());
  ASSERT_TRUE(later.ok());
  EXPECT_EQ(later->state(), v1::TXN_STATE_COMMITTED);
}

TEST_F(TransactionDriverTest, ADeadlockVictimIsTakenOnlyWhileItsWaitingCallIsInFlightAndUndecided) {
  inventory_->silent = true;  // its Prepare "waits for a lock" and never answers
  std::promise<absl::StatusOr<v1::Outcome>> p;
  driver_->Run(Transfer(), [&](absl::StatusOr<v1::Outcome> o) { p.set_value(o); });
  const std::string id = WaitForTheOnePreparing();
  ASSERT_FALSE(id.empty());
  uint64_t call = 0;
  {
    std::lock_guard<std::mutex> lock(inventory_->mu);
    call = inventory_->last_call_number;
  }
  ASSERT_NE(call, 0u);
  core::WaitEdge wait{id, "n1-9-9", "inventory", "", 80, call};
  std::optional<core::MemberStanding> standing = driver_->DeadlockStanding(wait);
  ASSERT_TRUE(standing.has_value());
  EXPECT_TRUE(standing->executing);
  // A wait of another call (an earlier one, whose statement timed out) is not this one.
  core::WaitEdge other_call = wait;
  other_call.waiter_call = call + 7;
  EXPECT_FALSE(driver_->DeadlockStanding(other_call)->executing);
  // orders has voted: its call returned, so no wait of it can be current.
  core::WaitEdge voted = wait;
  voted.participant = "orders";
  EXPECT_FALSE(driver_->DeadlockStanding(voted)->executing);
  EXPECT_FALSE(driver_->DeadlockStanding(core::WaitEdge{"n1-9-9", id, "orders"}).has_value());

  ASSERT_TRUE(driver_->AbortDeadlockVictim(id, "chosen as the victim of a deadlock"));
  auto client = p.get_future().get();
  ASSERT_TRUE(client.ok());
  EXPECT_EQ(client->state(), v1::TXN_STATE_ABORTED);
  EXPECT_EQ(client->reason(), "chosen as the victim of a deadlock");
  EXPECT_FALSE(driver_->AbortDeadlockVictim(id, "again"));
}

TEST_F(TransactionDriverTest, ADecidedTransactionIsNeverADeadlockVictim) {
  orders_->commit_failures = 1'000'000;  // stays COMMITTING, decision logged
  std::promise<absl::StatusOr<v1::Outcome>> p;
  driver_->Run(Transfer(/*wait=*/false), [&](absl::StatusOr<v1::Outcome> o) { p.set_value(o); });
  auto out = p.get_future().get();
  ASSERT_TRUE(out.ok());
  ASSERT_EQ(out->state(), v1::TXN_STATE_COMMITTED);
  EXPECT_FALSE(driver_->AbortDeadlockVictim(out->txn_id(), "victim"));
  std::optional<core::MemberStanding> s =
      driver_->DeadlockStanding(core::WaitEdge{out->txn_id(), "", "orders", "", 80, 1});
  ASSERT_TRUE(s.has_value());  // still in memory, committing
  EXPECT_FALSE(s->executing);
  EXPECT_EQ(*driver_->GetDecision(out->txn_id()), v1::DECISION_COMMIT);
}

TEST_F(TransactionDriverTest, ARetryOfAnAnsweredTransactionIsAnsweredOutsideItsLock) {
  orders_->commit_failures = 1'000'000;
  ExpectARetryIsAnsweredOutsideTheLock(*driver_, Transfer());
  orders_->commit_failures = 0;
  WaitIdle();
}

}  // namespace
}  // namespace txn::driver
