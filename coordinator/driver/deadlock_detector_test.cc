#include "coordinator/driver/deadlock_detector.h"
#include "coordinator/driver/driver_skeleton.h"

#include <gtest/gtest.h>

#include <map>

namespace txn::driver {
namespace {

class FakeTarget final : public DeadlockTarget {
 public:
  std::optional<core::MemberStanding> DeadlockStanding(const core::WaitEdge& edge) override {
    auto it = standing.find(edge.waiter);
    if (it == standing.end()) return std::nullopt;
    return it->second;
  }
  bool AbortDeadlockVictim(const std::string& txn_id, const std::string& reason) override {
    aborted[txn_id] = reason;
    standing[txn_id].executing = false;
    return true;
  }
  std::map<std::string, core::MemberStanding> standing;
  std::map<std::string, std::string> aborted;
};

v1::ReportWaitsRequest Report(const std::string& participant, uint64_t seq,
                              std::vector<std::pair<std::string, std::string>> waits) {
  v1::ReportWaitsRequest req;
  req.set_participant(participant);
  req.set_sequence(seq);
  for (const auto& [waiter, holder] : waits) {
    v1::LockWait* w = req.add_waits();
    w->set_waiter_txn_id(waiter);
    w->set_holder_txn_id(holder);
    w->set_waited_ms(70);
  }
  return req;
}

struct Fixture {
  explicit Fixture(DeadlockOptions options = {})
      : detector(&target, &clock,
                 [](const std::string& name) { return name == "orders" || name == "ledger"; },
                 options) {
    target.standing["n1-1-1"] = {true, 1};
    target.standing["n1-1-2"] = {true, 2};
  }
  FakeTarget target;
  common::ManualClock clock;
  DeadlockDetector detector;
};

TEST(DeadlockDetector, AbortsTheYoungestAndSaysWhyInItsReason) {
  Fixture f;
  ASSERT_TRUE(f.detector.Report(Report("orders", 1, {{"n1-1-2", "n1-1-1"}})).ok());
  EXPECT_EQ(f.detector.ListWaits().waits_size(), 1);
  ASSERT_TRUE(f.detector.Report(Report("ledger", 1, {{"n1-1-1", "n1-1-2"}})).ok());
  ASSERT_EQ(f.target.aborted.size(), 1u);
  EXPECT_EQ(f.target.aborted.begin()->first, "n1-1-2");
  EXPECT_EQ(f.target.aborted.begin()->second,
            "chosen as the victim of a deadlock across databases (the youngest transaction on "
            "the cycle): it waited for n1-1-1 in orders, n1-1-1 waited for it in ledger");
  v1::ListWaitsResponse waits = f.detector.ListWaits();
  EXPECT_EQ(waits.deadlocks_broken(), 1u);
  EXPECT_EQ(waits.waits_size(), 0);
}

TEST(DeadlockDetector, WithDetectionOffItOnlyShowsTheWaits) {
  Fixture f(DeadlockOptions{.enabled = false});
  ASSERT_TRUE(f.detector.Report(Report("orders", 1, {{"n1-1-2", "n1-1-1"}})).ok());
  ASSERT_TRUE(f.detector.Report(Report("ledger", 1, {{"n1-1-1", "n1-1-2"}})).ok());
  EXPECT_TRUE(f.target.aborted.empty());
  EXPECT_EQ(f.detector.ListWaits().waits_size(), 2);
}

TEST(DeadlockDetector, ReportsExpireWhenNotRenewed) {
  Fixture f(DeadlockOptions{.edge_ttl_ms = 500});
  ASSERT_TRUE(f.detector.Report(Report("orders", 1, {{"n1-1-2", "n1-1-1"}})).ok());
  f.clock.Advance(600);
  EXPECT_EQ(f.detector.ListWaits().waits_size(), 0);
  ASSERT_TRUE(f.detector.Report(Report("ledger", 1, {{"n1-1-1", "n1-1-2"}})).ok());
  EXPECT_TRUE(f.target.aborted.empty());
}

TEST(DeadlockDetector, RefusesReportsFromStrangersAndMalformedOnes) {
  Fixture f;
  EXPECT_EQ(f.detector.Report(Report("mallory", 1, {{"n1-1-2", "n1-1-1"}})).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(f.detector.Report(Report("", 1, {})).code(), absl::StatusCode::kInvalidArgument);
  absl::Status bad = f.detector.Report(Report("orders", 1, {{"not an id", "n1-1-1"}}));
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.message(), "waits[0].waiter_txn_id is not a txn id");
  EXPECT_EQ(f.detector.Report(Report("orders", 2, {{"n1-1-2", "x y"}})).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(f.detector.ListWaits().waits_size(), 0);
}

TEST(CallsInFlight, AWaitCountsOnlyWhileItsCallIsInFlightOnThatParticipant) {
  // A Run may have two branches on one participant: a wait of either's call counts.
  std::vector<core::BranchStatus> branches{
      {.participant = "orders"}, {.participant = "ledger"}, {.participant = "orders"}};
  CallsInFlight calls;
  const uint64_t first = calls.Start(0);
  const uint64_t ledger = calls.Start(1);
  const uint64_t second = calls.Start(2);
  EXPECT_TRUE(calls.Waits(branches, "orders", first));
  EXPECT_TRUE(calls.Waits(branches, "orders", second));
  EXPECT_TRUE(calls.Waits(branches, "ledger", ledger));
  EXPECT_FALSE(calls.Waits(branches, "orders", ledger)) << "another participant's call";
  EXPECT_FALSE(calls.Waits(branches, "orders", 0)) << "a report that names no call";
  calls.End(2, second);
  EXPECT_FALSE(calls.Waits(branches, "orders", second)) << "it returned";
  const uint64_t later = calls.Start(0);  // a later call to branch 0 replaces the first
  calls.End(0, first);                    // the first one's late completion changes nothing
  EXPECT_FALSE(calls.Waits(branches, "orders", first));
  EXPECT_TRUE(calls.Waits(branches, "orders", later));
}

}  // namespace
}  // namespace txn::driver
