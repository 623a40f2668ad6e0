// Three-phase commit through TransactionDriver: pre-commit, quorum, termination rounds, restarts,
// decisions reported by the agents, deadlock victims.
#include "coordinator/driver/driver_test_fixture.h"

namespace txn::driver {
namespace {

class ThreePhaseDriverTest : public TransactionDriverTest {
 protected:
  void SetUp() override {
    TransactionDriverTest::SetUp();
    ledger_ = dir_.Add("ledger");
  }
  static v1::RunRequest ThreePhase(bool wait = true) {
    v1::RunRequest req;
    req.set_protocol(v1::PROTOCOL_THREE_PHASE);
    req.set_wait_for_completion(wait);
    for (const char* p : {"orders", "inventory", "ledger"}) {
      auto* b = req.add_branches();
      b->set_participant(p);
      b->add_operations()->mutable_sql()->set_text("UPDATE t SET a = 1");
    }
    return req;
  }
  std::vector<ScriptedChannel*> all() { return {orders_, inventory_, ledger_}; }
  ScriptedChannel* ledger_;
};

TEST_F(ThreePhaseDriverTest, CommitsAfterPreCommitAndLogsStartFirst) {
  auto out = RunSync(ThreePhase());
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->state(), v1::TXN_STATE_COMMITTED) << out->reason();
  WaitIdle();
  for (ScriptedChannel* ch : all()) {
    EXPECT_EQ(ch->three_phase_calls,
              (std::vector<std::string>{"pre_commit 1/coordinator", "commit"}))
        << ch->name();
    ASSERT_TRUE(ch->record.has_value());
    EXPECT_EQ(ch->record->state, protocol::TpcState::kCommitted);
    EXPECT_EQ(ch->record->members, (std::vector<std::string>{"orders", "inventory", "ledger"}));
  }
  auto record = log_.Get(out->txn_id());
  ASSERT_TRUE(record.ok() && record->has_value());
  EXPECT_EQ((*record)->protocol(), v1::PROTOCOL_THREE_PHASE);
  EXPECT_EQ((*record)->decision(), v1::DECISION_COMMIT);
  EXPECT_EQ((*record)->three_phase_max_round(), 1u);
  EXPECT_EQ(*driver_->GetDecision(out->txn_id()), v1::DECISION_COMMIT);
  auto t = driver_->GetTransaction(out->txn_id());
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->protocol(), v1::PROTOCOL_THREE_PHASE);
}

TEST_F(ThreePhaseDriverTest, NoVoteAbortsWithoutAnyPreCommit) {
  inventory_->vote = v1::VOTE_NO;
  auto out = RunSync(ThreePhase());
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->state(), v1::TXN_STATE_ABORTED);
  EXPECT_NE(out->reason().find("inventory"), std::string::npos) << out->reason();
  WaitIdle();
  EXPECT_EQ(orders_->three_phase_calls, std::vector<std::string>{"rollback"});
  EXPECT_EQ(orders_->commits, 0);
  EXPECT_EQ((*log_.Get(out->txn_id()))->decision(), v1::DECISION_ABORT);
  EXPECT_EQ(*driver_->GetDecision(out->txn_id()), v1::DECISION_ABORT);
}

TEST_F(ThreePhaseDriverTest, AQuorumOfAcksIsEnough) {
  ledger_->silent_at_b0 = true;
  auto out = RunSync(ThreePhase());
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->state(), v1::TXN_STATE_COMMITTED);
  WaitIdle();
  EXPECT_EQ(ledger_->record->state, protocol::TpcState::kCommitted) << "told the decision";
}

TEST_F(ThreePhaseDriverTest, StalledAcksAreFinishedByATerminationRound) {
  inventory_->silent_at_b0 = true;
  ledger_->silent_at_b0 = true;
  auto out = RunSync(ThreePhase());
  ASSERT_TRUE(out.ok());
  // orders pre-committed at B0; the round sees it as the latest attempt and pre-commits.
  EXPECT_EQ(out->state(), v1::TXN_STATE_COMMITTED) << out->reason();
  WaitIdle();
  EXPECT_EQ(inventory_->three_phase_calls,
            (std::vector<std::string>{"pre_commit 1/coordinator", "elect 2/coordinator",
                                      "pre_commit 2/coordinator", "commit"}));
  EXPECT_EQ((*log_.Get(out->txn_id()))->three_phase_max_round(), 2u);
}

TEST_F(ThreePhaseDriverTest, RestartWithStartOnlyTerminatesInsteadOfPresumingAbort) {
  // The log holds START (decision unspecified); every participant pre-committed at B0 before the
  // coordinator died.
  log::DecisionRecord r;
  r.set_txn_id("n1-1-7");
  r.set_protocol(v1::PROTOCOL_THREE_PHASE);
  r.set_state(static_cast<int>(core::TxnState::kPreparing));
  r.set_three_phase_max_round(1);
  for (ScriptedChannel* ch : all()) {
    r.add_branches()->set_participant(ch->name());
    ch->record = protocol::TpcRecord{.state = protocol::TpcState::kPreCommitted,
                                 .promised = protocol::InitialBallot(),
                                 .attempted = protocol::InitialBallot(),
                                 .members = {"orders", "inventory", "ledger"}};
  }
  ASSERT_TRUE(log_.Write({r}, true).ok());
  EXPECT_EQ(*driver_->GetDecision("n1-1-7"), v1::DECISION_UNKNOWN) << "never presumed aborted";
  MakeDriver();  // the restart: Recover takes it up
  WaitIdle();
  EXPECT_EQ(*driver_->GetDecision("n1-1-7"), v1::DECISION_COMMIT);
  for (ScriptedChannel* ch : all()) {
    EXPECT_EQ(ch->record->state, protocol::TpcState::kCommitted) << ch->name();
    EXPECT_EQ(ch->rollbacks, 0);
  }
}

TEST_F(ThreePhaseDriverTest, RestartAfterAParticipantRoundAbortedFollowsIt) {
  log::DecisionRecord r;
  r.set_txn_id("n1-1-8");
  r.set_protocol(v1::PROTOCOL_THREE_PHASE);
  r.set_state(static_cast<int>(core::TxnState::kPreparing));
  r.set_three_phase_max_round(1);
  for (ScriptedChannel* ch : all()) r.add_branches()->set_participant(ch->name());
  orders_->record = protocol::TpcRecord{.state = protocol::TpcState::kAborted};
  inventory_->record = protocol::TpcRecord{.state = protocol::TpcState::kAborted};
  ledger_->record = protocol::WaitingRecord({"orders", "inventory", "ledger"});
  ASSERT_TRUE(log_.Write({r}, true).ok());
  MakeDriver();
  WaitIdle();
  EXPECT_EQ(*driver_->GetDecision("n1-1-8"), v1::DECISION_ABORT);
  EXPECT_EQ(ledger_->record->state, protocol::TpcState::kWaiting) << "the scripted agent only counts";
  EXPECT_EQ(ledger_->rollbacks, 1);
}

TEST_F(ThreePhaseDriverTest, ADecisionReportedByTheAgentsIsLoggedAndAnswered) {
  for (ScriptedChannel* ch : all()) ch->silent_at_b0 = true;  // no ACK ever: only a report ends it
  std::promise<absl::StatusOr<v1::Outcome>> p;
  driver_->Run(ThreePhase(), [&](absl::StatusOr<v1::Outcome> o) { p.set_value(o); });
  std::string txn_id;
  for (int i = 0; i < 200 && txn_id.empty(); ++i) {
    absl::StatusOr<v1::ListTransactionsResponse> listed =
        driver_->ListTransactions(v1::ListTransactionsRequest());
    ASSERT_TRUE(listed.ok());
    for (const auto& t : listed->transactions()) {
      if (t.state() == v1::TXN_STATE_PRECOMMITTED) txn_id = t.txn_id();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_FALSE(txn_id.empty());
  v1::ReportDecisionRequest report;
  report.set_txn_id(txn_id);
  report.set_participant("stranger");
  report.set_decision(v1::DECISION_COMMIT);
  EXPECT_EQ(driver_->ReportDecision(report).code(), absl::StatusCode::kInvalidArgument);
  report.set_participant("ledger");
  report.set_decision(v1::DECISION_COMMIT);
  ASSERT_TRUE(driver_->ReportDecision(report).ok());
  auto out = p.get_future().get();
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->state(), v1::TXN_STATE_COMMITTED);
  WaitIdle();
  EXPECT_EQ((*log_.Get(txn_id))->decision(), v1::DECISION_COMMIT);
  // Reporting again after it finished is accepted and changes nothing; nonsense is refused.
  EXPECT_TRUE(driver_->ReportDecision(report).ok());
  report.set_decision(v1::DECISION_UNKNOWN);
  EXPECT_EQ(driver_->ReportDecision(report).code(), absl::StatusCode::kInvalidArgument);
  report.set_decision(v1::DECISION_ABORT);
  report.set_txn_id("n1-9-9");
  EXPECT_EQ(driver_->ReportDecision(report).code(), absl::StatusCode::kNotFound);
}

TEST_F(ThreePhaseDriverTest, ADeadlockVictimIsTakenInItsVotePhaseAndAbortedThroughTheLog) {
  inventory_->silent = true;  // its Prepare "waits for a lock" and never answers
  std::promise<absl::StatusOr<v1::Outcome>> p;
  driver_->Run(ThreePhase(), [&](absl::StatusOr<v1::Outcome> o) { p.set_value(o); });
  const std::string id = WaitForTheOnePreparing();
  ASSERT_FALSE(id.empty());
  uint64_t call = 0;
  for (int i = 0; i < 500; ++i) {  // PREPARING shows from the start; Prepare follows START
    {
      std::lock_guard<std::mutex> lock(inventory_->mu);
      if (inventory_->prepares > 0) {
        call = inventory_->last_call_number;
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_NE(call, 0u) << "a three-phase Prepare carries its call number";
  core::WaitEdge wait{id, "n1-9-9", "inventory", "", 80, call};
  std::optional<core::MemberStanding> standing = driver_->DeadlockStanding(wait);
  ASSERT_TRUE(standing.has_value());
  EXPECT_TRUE(standing->executing);
  core::WaitEdge other_call = wait;
  other_call.waiter_call = call + 7;
  EXPECT_FALSE(driver_->DeadlockStanding(other_call)->executing);
  core::WaitEdge voted = wait;  // orders answered its Prepare: none of its waits is current
  voted.participant = "orders";
  EXPECT_FALSE(driver_->DeadlockStanding(voted)->executing);

  ASSERT_TRUE(driver_->AbortDeadlockVictim(id, "chosen as the victim of a deadlock"));
  auto client = p.get_future().get();
  ASSERT_TRUE(client.ok());
  EXPECT_EQ(client->state(), v1::TXN_STATE_ABORTED);
  EXPECT_EQ(client->reason(), "chosen as the victim of a deadlock");
  EXPECT_FALSE(driver_->AbortDeadlockVictim(id, "again"));
  // The ABORT was logged (START was) before the rollbacks; nothing was pre-committed.
  EXPECT_EQ((*log_.Get(id))->decision(), v1::DECISION_ABORT);
  EXPECT_EQ(*driver_->GetDecision(id), v1::DECISION_ABORT);
  std::vector<std::string> calls;
  for (int i = 0; i < 500 && calls.empty(); ++i) {  // the rollbacks follow the answer
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    std::lock_guard<std::mutex> lock(orders_->mu);
    calls = orders_->three_phase_calls;
  }
  EXPECT_EQ(calls, std::vector<std::string>{"rollback"});
}

TEST_F(ThreePhaseDriverTest, APreCommittedUndecidedTransactionIsNeverADeadlockVictim) {
  // PRE_COMMIT(B0) went out and one ACK of three came back: PRECOMMITTED, no decision yet, until
  // the termination round (after termination_timeout_ms) commits it.
  inventory_->silent_at_b0 = true;
  ledger_->silent_at_b0 = true;
  std::promise<absl::StatusOr<v1::Outcome>> p;
  driver_->Run(ThreePhase(), [&](absl::StatusOr<v1::Outcome> o) { p.set_value(o); });
  std::string id;
  for (int i = 0; i < 500 && id.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    bool all_pre_committed = true;
    for (ScriptedChannel* ch : all()) {
      std::lock_guard<std::mutex> lock(ch->mu);
      all_pre_committed = all_pre_committed && !ch->three_phase_calls.empty();
    }
    auto listed = driver_->ListTransactions(v1::ListTransactionsRequest());
    if (all_pre_committed && listed.ok() && listed->transactions_size() == 1) {
      id = listed->transactions(0).txn_id();
    }
  }
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(*driver_->GetDecision(id), v1::DECISION_UNKNOWN) << "not decided yet";
  EXPECT_FALSE(driver_->AbortDeadlockVictim(id, "victim"));
  std::optional<core::MemberStanding> s =
      driver_->DeadlockStanding(core::WaitEdge{id, "", "orders", "", 80, 1});
  ASSERT_TRUE(s.has_value());
  EXPECT_FALSE(s->executing);
  auto out = p.get_future().get();
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->state(), v1::TXN_STATE_COMMITTED) << out->reason();
  WaitIdle();
}

TEST_F(ThreePhaseDriverTest, ADecidedThreePhaseTransactionIsNeverADeadlockVictim) {
  orders_->commit_failures = 1'000'000;  // stays COMMITTING, decision logged
  auto out = RunSync(ThreePhase(/*wait=*/false));
  ASSERT_TRUE(out.ok());
  ASSERT_EQ(out->state(), v1::TXN_STATE_COMMITTED);
  EXPECT_FALSE(driver_->AbortDeadlockVictim(out->txn_id(), "victim"));
  std::optional<core::MemberStanding> s =
      driver_->DeadlockStanding(core::WaitEdge{out->txn_id(), "", "orders", "", 80, 1});
  ASSERT_TRUE(s.has_value());  // still in memory, committing
  EXPECT_FALSE(s->executing);
  EXPECT_EQ(*driver_->GetDecision(out->txn_id()), v1::DECISION_COMMIT);
}

TEST_F(ThreePhaseDriverTest, BeginAndCannotPrepareParticipantsAreRefused) {
  v1::BeginRequest begin;
  begin.set_protocol(v1::PROTOCOL_THREE_PHASE);
  EXPECT_EQ(driver_->Begin(begin).status().code(), absl::StatusCode::kUnimplemented);
  v1::RunRequest twice = ThreePhase();
  twice.mutable_branches(2)->set_participant("orders");
  auto dup = RunSync(twice);
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(dup.status().message().find("appears twice"), std::string::npos);
  dir_.cannot_prepare.insert("ledger");
  auto out = RunSync(ThreePhase());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(out.status().message().find("ledger"), std::string::npos);
  EXPECT_EQ(orders_->prepares, 0);
}

TEST_F(ThreePhaseDriverTest, ARetryOfAnAnsweredTransactionIsAnsweredOutsideItsLock) {
  orders_->commit_failures = 1'000'000;
  ExpectARetryIsAnsweredOutsideTheLock(*driver_, ThreePhase());
  orders_->commit_failures = 0;
  WaitIdle();
}

}  // namespace
}  // namespace txn::driver
