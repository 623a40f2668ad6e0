#include "coordinator/driver/foreign_branches.h"

#include <gtest/gtest.h>

namespace txn::driver {
namespace {

v1::ReportForeignBranchesRequest ReportOf(const std::string& participant, int n) {
  v1::ReportForeignBranchesRequest r;
  r.set_participant(participant);
  for (int i = 0; i < n; ++i) {
    v1::ForeignBranch* b = r.add_branches();
    b->set_gid("txc_n7-1-" + std::to_string(i) + "_0");
    b->set_node_id("n7");
    b->set_seen_ms(1000 * i);
  }
  return r;
}

TEST(ForeignBranchBookTest, TheLastReportOfEachAgentIsListedUntilItExpires) {
  common::ManualClock clock;
  ForeignBranchBook book(&clock, /*ttl_ms=*/30'000);
  book.Report(ReportOf("orders", 2));
  book.Report(ReportOf("ledger", 1));
  EXPECT_EQ(book.List().branches_size(), 3);
  // A new report replaces the agent's last one; an empty one clears it.
  book.Report(ReportOf("orders", 1));
  EXPECT_EQ(book.List().branches_size(), 2);
  book.Report(ReportOf("ledger", 0));
  v1::ListForeignBranchesResponse listed = book.List();
  ASSERT_EQ(listed.branches_size(), 1);
  EXPECT_EQ(listed.branches(0).participant(), "orders");
  EXPECT_EQ(listed.branches(0).branch().node_id(), "n7");
  EXPECT_EQ(listed.branches(0).reported_unix_ms(), clock.NowUnixMs());
  // An agent that stops reporting is dropped after the TTL.
  clock.Advance(30'001);
  EXPECT_EQ(book.List().branches_size(), 0);
}

TEST(ForeignBranchBookTest, OneAgentKeepsAtMostItsShare) {
  common::ManualClock clock;
  ForeignBranchBook book(&clock, 30'000);
  book.Report(ReportOf("orders", ForeignBranchBook::kMaxPerParticipant + 50));
  EXPECT_EQ(book.List().branches_size(), ForeignBranchBook::kMaxPerParticipant);
}

}  // namespace
}  // namespace txn::driver
