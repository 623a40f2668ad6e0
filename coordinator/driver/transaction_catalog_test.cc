// TransactionDriver's catalog: GetDecision (other incarnations too), ListTransactions,
// ResolveTransaction, stats.
#include "coordinator/driver/driver_test_fixture.h"

namespace txn::driver {
namespace {

v1::Transaction Finished(const std::string& id, v1::TxnState state) {
  v1::Transaction t;
  t.set_txn_id(id);
  t.set_state(state);
  return t;
}

TEST(FinishedTransactions, KeepsTheMostRecentAndCountsEveryOne) {
  FinishedTransactions finished(2);
  finished.Add(Finished("a", v1::TXN_STATE_COMMITTED));
  finished.Add(Finished("b", v1::TXN_STATE_ABORTED));
  finished.Add(Finished("c", v1::TXN_STATE_COMMITTED));
  EXPECT_FALSE(finished.Find("a").has_value()) << "the oldest beyond the capacity is forgotten";
  ASSERT_TRUE(finished.Find("b").has_value());
  EXPECT_EQ(finished.Find("b")->state(), v1::TXN_STATE_ABORTED);
  EXPECT_EQ(finished.All().size(), 2u);
  EXPECT_EQ(finished.Counts()[v1::TXN_STATE_COMMITTED], 2u) << "counted, remembered or not";
  EXPECT_EQ(finished.Counts()[v1::TXN_STATE_ABORTED], 1u);
  finished.Add(Finished("c", v1::TXN_STATE_HEURISTIC_MIXED));  // the same one again
  finished.Add(Finished("d", v1::TXN_STATE_COMMITTED));
  EXPECT_TRUE(finished.Find("c").has_value()) << "one place in the order per transaction";
  EXPECT_EQ(finished.Find("c")->state(), v1::TXN_STATE_HEURISTIC_MIXED);
  EXPECT_EQ(finished.Counts()[v1::TXN_STATE_HEURISTIC_MIXED], 0u) << "counted once";
  EXPECT_EQ(finished.Counts()[v1::TXN_STATE_COMMITTED], 3u);
}

TEST_F(TransactionDriverTest, GetDecisionPresumesAbortAndRejectsForeignIds) {
  EXPECT_EQ(*driver_->GetDecision("n1-" + log_.incarnation() + "-1-999"), v1::DECISION_ABORT);
  EXPECT_EQ(*driver_->GetDecision("n1-1-999"), v1::DECISION_UNKNOWN)
      << "an id from before incarnations may be an earlier log's commit";
  EXPECT_EQ(driver_->GetDecision("n2-1-1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(driver_->GetDecision("garbage").status().code(), absl::StatusCode::kInvalidArgument);
}

// The data folder is lost after a COMMIT decision whose commits did not all land: the new
// incarnation must not presume abort for the old transaction (that would roll back a branch of a
// transaction the client was told COMMITTED); it answers UNKNOWN, lists it, and takes an
// operator's decision for it.
TEST_F(TransactionDriverTest, AReplacedDataFolderAnswersUnknownForTheOldIncarnationsIds) {
  orders_->commit_failures = 1'000'000;
  auto committed = RunSync(Transfer(/*wait=*/false));
  ASSERT_TRUE(committed.ok()) << committed.status();
  for (int i = 0; i < 200 && orders_->commits == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(*driver_->GetDecision(committed->txn_id()), v1::DECISION_COMMIT);
  driver_.reset();

  log::MemoryDecisionLog new_folder("0000000b");
  log::GroupCommitLog group(&new_folder);
  DriverOptions options;
  options.prepare_timeout_ms = 200;
  TransactionDriver driver(DriverDeps{&new_folder, &group, &dir_, &clock_, &timers_}, options);
  ASSERT_TRUE(driver.Recover().ok());
  EXPECT_EQ(*driver.GetDecision(committed->txn_id()), v1::DECISION_UNKNOWN);
  EXPECT_EQ(*driver.GetDecision(committed->txn_id()), v1::DECISION_UNKNOWN) << "asked again";
  v1::ListTransactionsRequest list;
  list.add_states(v1::TXN_STATE_IN_DOUBT);
  auto listed = driver.ListTransactions(list);
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->transactions_size(), 1);
  EXPECT_EQ(listed->transactions(0).txn_id(), committed->txn_id());
  EXPECT_NE(listed->transactions(0).reason().find("incarnation " + log_.incarnation()),
            std::string::npos)
      << listed->transactions(0).reason();
  // New ids never repeat the old incarnation's.
  v1::BeginRequest begin;
  begin.set_protocol(v1::PROTOCOL_TWO_PHASE);
  auto fresh = driver.Begin(begin);
  ASSERT_TRUE(fresh.ok());
  EXPECT_NE(fresh->txn_id().find("-0000000b-"), std::string::npos) << fresh->txn_id();
  EXPECT_EQ(*driver.GetDecision("n1-0000000b-1-999"), v1::DECISION_ABORT) << "its own: presumed";

  v1::ResolveTransactionRequest resolve;
  resolve.set_txn_id(committed->txn_id());
  resolve.set_decision(v1::DECISION_COMMIT);
  std::promise<absl::StatusOr<v1::Outcome>> resolved;
  driver.ResolveTransaction(resolve, [&](absl::StatusOr<v1::Outcome> o) { resolved.set_value(o); });
  auto outcome = resolved.get_future().get();
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_EQ(outcome->state(), v1::TXN_STATE_COMMITTED);
  EXPECT_EQ(*driver.GetDecision(committed->txn_id()), v1::DECISION_COMMIT);
  listed = driver.ListTransactions(list);
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->transactions_size(), 0) << "resolved: no longer in doubt";
}

TEST_F(TransactionDriverTest, ListTransactionsFiltersByStateInIdOrderAndPages) {
  std::vector<std::string> committed;
  for (int i = 0; i < 3; ++i) committed.push_back(RunSync(Transfer())->txn_id());
  inventory_->vote = v1::VOTE_NO;
  const std::string aborted = RunSync(Transfer())->txn_id();
  WaitIdle();

  v1::ListTransactionsRequest req;
  req.add_states(v1::TXN_STATE_COMMITTED);
  req.set_limit(2);
  auto page = driver_->ListTransactions(req);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->transactions_size(), 2);
  EXPECT_EQ(page->transactions(0).txn_id(), committed[0]);
  EXPECT_EQ(page->transactions(1).txn_id(), committed[1]);
  ASSERT_EQ(page->next_page_token(), committed[1]);
  req.set_page_token(page->next_page_token());
  page = driver_->ListTransactions(req);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->transactions_size(), 1);
  EXPECT_EQ(page->transactions(0).txn_id(), committed[2]);
  EXPECT_TRUE(page->next_page_token().empty());

  v1::ListTransactionsRequest aborted_only;
  aborted_only.add_states(v1::TXN_STATE_ABORTED);
  page = driver_->ListTransactions(aborted_only);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->transactions_size(), 1);
  EXPECT_EQ(page->transactions(0).txn_id(), aborted);

  v1::ListTransactionsRequest bad;
  bad.add_states(static_cast<v1::TxnState>(77));
  EXPECT_EQ(driver_->ListTransactions(bad).status().code(), absl::StatusCode::kInvalidArgument);
  bad.Clear();
  bad.set_limit(5000);
  EXPECT_EQ(driver_->ListTransactions(bad).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(TransactionDriverTest, ResolveAnInDoubtTransactionAfterTheLogWorksAgain) {
  FlakyLog flaky;
  log::GroupCommitLog group(&flaky);
  TransactionDriver driver(DriverDeps{&flaky, &group, &dir_, &clock_, &timers_}, DriverOptions{});
  ASSERT_TRUE(driver.Recover().ok());
  flaky.failing = true;
  std::promise<absl::StatusOr<v1::Outcome>> p;
  driver.Run(Transfer(), [&](absl::StatusOr<v1::Outcome> o) { p.set_value(o); });
  auto first = p.get_future().get();
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->state(), v1::TXN_STATE_IN_DOUBT);

  v1::ListTransactionsRequest in_doubt;
  in_doubt.add_states(v1::TXN_STATE_IN_DOUBT);
  auto listed = driver.ListTransactions(in_doubt);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->transactions_size(), 1);
  EXPECT_EQ(listed->transactions(0).txn_id(), first->txn_id());

  // While the disk still fails, the resolution cannot be written: still in doubt, nothing sent.
  ASSERT_TRUE(Resolve(driver, first->txn_id(), v1::DECISION_ABORT).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(driver.GetTransaction(first->txn_id())->state(), v1::TXN_STATE_IN_DOUBT);
  EXPECT_EQ(orders_->rollbacks, 0);

  flaky.failing = false;
  absl::StatusOr<v1::Outcome> resolved;
  for (int i = 0; i < 100; ++i) {  // until the failed write has been reported
    resolved = Resolve(driver, first->txn_id(), v1::DECISION_ABORT);
    if (resolved.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  for (int i = 0; i < 500 && driver.active_count() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_EQ(driver.GetTransaction(first->txn_id())->state(), v1::TXN_STATE_ABORTED);
  EXPECT_EQ(orders_->rollbacks, 1);
  EXPECT_EQ(orders_->commits, 0);
  auto record = flaky.inner.Get(first->txn_id());
  ASSERT_TRUE(record.ok() && record->has_value()) << "the ABORT replaces any COMMIT on disk";
  EXPECT_EQ((*record)->decision(), v1::DECISION_ABORT);
  EXPECT_EQ(*driver.GetDecision(first->txn_id()), v1::DECISION_ABORT);

  auto again = Resolve(driver, first->txn_id(), v1::DECISION_COMMIT);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(TransactionDriverTest, ResolveRefusesWhatItCannotDo) {
  auto done = RunSync(Transfer());
  ASSERT_TRUE(done.ok());
  WaitIdle();
  auto r = Resolve(*driver_, done->txn_id(), v1::DECISION_ABORT);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("COMMITTED"), std::string::npos) << r.status();
  EXPECT_EQ(Resolve(*driver_, "n1-" + log_.incarnation() + "-1-999999", v1::DECISION_ABORT)
                .status()
                .code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(Resolve(*driver_, done->txn_id(), v1::DECISION_UNKNOWN).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Resolve(*driver_, "nope", v1::DECISION_ABORT).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(TransactionDriverTest, ResolveAbortsAnUndecidedTransaction) {
  inventory_->silent = true;  // never votes
  std::promise<absl::StatusOr<v1::Outcome>> p;
  driver_->Run(Transfer(), [&](absl::StatusOr<v1::Outcome> o) { p.set_value(o); });
  const std::string id = WaitForTheOnePreparing();
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(Resolve(*driver_, id, v1::DECISION_COMMIT).status().code(),
            absl::StatusCode::kFailedPrecondition);
  auto r = Resolve(*driver_, id, v1::DECISION_ABORT);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->state(), v1::TXN_STATE_ABORTED);
  auto client = p.get_future().get();
  ASSERT_TRUE(client.ok());
  EXPECT_EQ(client->state(), v1::TXN_STATE_ABORTED);
  EXPECT_EQ(client->reason(), "aborted by an operator");
}

TEST_F(TransactionDriverTest, StatsCountFinishedAndActiveTransactions) {
  ASSERT_TRUE(RunSync(Transfer()).ok());
  inventory_->vote = v1::VOTE_NO;
  ASSERT_TRUE(RunSync(Transfer()).ok());
  WaitIdle();
  auto stats = driver_->GetStats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->finished_by_state().at("TXN_STATE_COMMITTED"), 1u);
  EXPECT_EQ(stats->finished_by_state().at("TXN_STATE_ABORTED"), 1u);
  EXPECT_EQ(stats->log_records(), 1u) << "only the COMMIT is logged";
  EXPECT_TRUE(stats->accepting());
  EXPECT_TRUE(stats->active_by_state().empty());
}

// --- sagas ---

}  // namespace
}  // namespace txn::driver
