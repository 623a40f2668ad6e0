#include "coordinator/driver/foreign_branches.h"

#include <gtest/gtest.h>

namespace txn::driver {
namespace {

v1::ReportForeignBranchesRequest ReportOf(const std::string& participant, int n) {
  v1::ReportForeignBranchesRequest r;
  r.set_participant(participant);
  for (int i = 0; i < n; ++i) {
    v1::ForeignBranch* b = r.add_branches();
    b->set_gid("txc_n7-0000abcd-1-" + std::to_string(i) + "_0");
    b->set_node_id("n7");
    b->set_seen_ms(1000 * i);
  }
  return r;
}

TEST(ForeignBranchBookTest, TheLastReportOfEachAgentIsListedUntilItExpires) {
  common::ManualClock clock;
  ForeignBranchBook book(&clock, /*ttl_ms=*/30'000, "n1");
  ASSERT_TRUE(book.Report(ReportOf("orders", 2)).ok());
  ASSERT_TRUE(book.Report(ReportOf("ledger", 1)).ok());
  EXPECT_EQ(book.List().branches_size(), 3);
  // A new report replaces the agent's last one; an empty one clears it.
  ASSERT_TRUE(book.Report(ReportOf("orders", 1)).ok());
  EXPECT_EQ(book.List().branches_size(), 2);
  ASSERT_TRUE(book.Report(ReportOf("ledger", 0)).ok());
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
  ForeignBranchBook book(&clock, 30'000, "n1");
  ASSERT_TRUE(book.Report(ReportOf("orders", ForeignBranchBook::kMaxPerParticipant + 50)).ok());
  EXPECT_EQ(book.List().branches_size(), ForeignBranchBook::kMaxPerParticipant);
}

// What an agent cannot have found is refused, whole: the operator's list shows only branches
// that are in some database and that this coordinator will never resolve.
TEST(ForeignBranchBookTest, AReportWithABranchThatIsNotForeignIsRefusedWhole) {
  common::ManualClock clock;
  ForeignBranchBook book(&clock, 30'000, "n1");
  auto refused = [&](const std::string& gid, const std::string& node, const std::string& why) {
    v1::ReportForeignBranchesRequest r = ReportOf("orders", 2);
    v1::ForeignBranch* b = r.add_branches();
    b->set_gid(gid);
    b->set_node_id(node);
    absl::Status s = book.Report(r);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << gid;
    EXPECT_NE(s.message().find("branches[2]"), std::string::npos) << s;
    EXPECT_NE(s.message().find(why), std::string::npos) << s;
    EXPECT_EQ(book.List().branches_size(), 0) << gid;
  };
  refused("someone_else's", "n7", "not a txcoord branch name");
  refused(std::string(300, 'x'), "n7", "not a txcoord branch name");
  refused("txc_n7-0000abcd-1-1_0", "n8", "not the node its gid names");
  refused("txc_n1-0000abcd-1-1_0", "n1", "this coordinator's own branch");
  EXPECT_TRUE(book.Report(ReportOf("orders", 2)).ok());
  EXPECT_EQ(book.List().branches_size(), 2);
}

}  // namespace
}  // namespace txn::driver
