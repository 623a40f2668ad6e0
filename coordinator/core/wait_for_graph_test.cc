#include "coordinator/core/wait_for_graph.h"

#include <gtest/gtest.h>

namespace txn::core {
namespace {

WaitEdge Edge(std::string waiter, std::string holder, int64_t waited_ms = 60,
              std::string participant = "orders") {
  return WaitEdge{std::move(waiter), std::move(holder), std::move(participant), "", waited_ms};
}

// Transactions t1, t2, ... started in that order, all executing unless told otherwise.
struct World {
  std::map<std::string, MemberStanding> standing;
  std::set<std::string> refuse_abort;
  std::set<uint64_t> stale_calls;  // calls that have returned
  std::vector<std::string> aborted;

  World& Txn(const std::string& id, uint64_t order, bool executing = true) {
    standing[id] = MemberStanding{executing, order};
    return *this;
  }
  WaitForGraph::StandingFn Standing() {
    return [this](const WaitEdge& e) -> std::optional<MemberStanding> {
      if (stale_calls.count(e.waiter_call)) return MemberStanding{false, standing[e.waiter].start_order};
      auto it = standing.find(e.waiter);
      if (it == standing.end()) return std::nullopt;
      return it->second;
    };
  }
  WaitForGraph::AbortFn Abort() {
    return [this](const DeadlockVictim& v) {
      if (refuse_abort.count(v.txn_id)) return false;
      aborted.push_back(v.txn_id);
      return true;
    };
  }
};

TEST(WaitForGraph, TwoTransactionsAcrossTwoDatabasesLoseTheYoungest) {
  WaitForGraph g(500, 2000);
  World w;
  w.Txn("t1", 1).Txn("t2", 2);
  ASSERT_TRUE(g.Report("orders", 1, {Edge("t2", "t1", 80, "orders")}, 1000));
  EXPECT_TRUE(g.BreakDeadlocks(1000, w.Standing(), w.Abort()).empty());  // no cycle yet
  ASSERT_TRUE(g.Report("ledger", 1, {Edge("t1", "t2", 55, "ledger")}, 1010));
  std::vector<DeadlockVictim> v = g.BreakDeadlocks(1010, w.Standing(), w.Abort());
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].txn_id, "t2");
  EXPECT_EQ(v[0].cycle, (std::vector<std::string>{"t2", "t1"}));
  EXPECT_EQ(v[0].participants, (std::vector<std::string>{"orders", "ledger"}));
  EXPECT_EQ(v[0].cycle_age_ms, 55);  // the cycle closed when t1's (shorter) wait began
  EXPECT_EQ(w.aborted, (std::vector<std::string>{"t2"}));
  // The victim's edges are gone, and later reports naming it are ignored while it rolls back.
  EXPECT_TRUE(g.Edges(1010).empty());
  ASSERT_TRUE(g.Report("orders", 2, {Edge("t2", "t1", 100)}, 1020));
  EXPECT_TRUE(g.Edges(1020).empty());
  EXPECT_TRUE(g.BreakDeadlocks(1020, w.Standing(), w.Abort()).empty());
  EXPECT_EQ(w.aborted.size(), 1u);
}

TEST(WaitForGraph, ACycleThroughThreeDatabasesHasOneVictim) {
  WaitForGraph g(500, 2000);
  World w;
  w.Txn("t1", 1).Txn("t2", 3).Txn("t3", 2);
  g.Report("a", 1, {Edge("t1", "t2")}, 0);
  g.Report("b", 1, {Edge("t2", "t3")}, 0);
  g.Report("c", 1, {Edge("t3", "t1")}, 0);
  std::vector<DeadlockVictim> v = g.BreakDeadlocks(0, w.Standing(), w.Abort());
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].txn_id, "t2");
  EXPECT_EQ(v[0].cycle, (std::vector<std::string>{"t2", "t3", "t1"}));
}

TEST(WaitForGraph, TwoCyclesSharingATransactionCostOneVictimWhenItIsTheYoungest) {
  WaitForGraph g(500, 2000);
  World w;
  w.Txn("t1", 1).Txn("t2", 2).Txn("t9", 9);
  g.Report("a", 1, {Edge("t1", "t9"), Edge("t2", "t9")}, 0);
  g.Report("b", 1, {Edge("t9", "t1"), Edge("t9", "t2")}, 0);
  std::vector<DeadlockVictim> v = g.BreakDeadlocks(0, w.Standing(), w.Abort());
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].txn_id, "t9");
}

TEST(WaitForGraph, DisjointCyclesEachLoseOne) {
  WaitForGraph g(500, 2000);
  World w;
  w.Txn("t1", 1).Txn("t2", 2).Txn("t3", 3).Txn("t4", 4);
  g.Report("a", 1, {Edge("t1", "t2"), Edge("t3", "t4")}, 0);
  g.Report("b", 1, {Edge("t2", "t1"), Edge("t4", "t3")}, 0);
  std::vector<DeadlockVictim> v = g.BreakDeadlocks(0, w.Standing(), w.Abort());
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(w.aborted, (std::vector<std::string>{"t2", "t4"}));
}

TEST(WaitForGraph, ATransactionWaitingForItselfIsACycle) {
  // Two branches of one transaction on one database (two participants, one server).
  WaitForGraph g(500, 2000);
  World w;
  w.Txn("t1", 1);
  g.Report("a", 1, {Edge("t1", "t1")}, 0);
  ASSERT_EQ(g.BreakDeadlocks(0, w.Standing(), w.Abort()).size(), 1u);
  EXPECT_EQ(w.aborted, (std::vector<std::string>{"t1"}));
}

TEST(WaitForGraph, AMemberThatNoLongerExecutesMeansTheCycleIsStale) {
  // t1's wait was reported, then t1 got its lock, prepared everything and decided: its edge is
  // stale, so nobody is aborted, not even the younger t2.
  WaitForGraph g(500, 2000);
  World w;
  w.Txn("t1", 1, /*executing=*/false).Txn("t2", 2);
  g.Report("a", 1, {Edge("t1", "t2")}, 0);
  g.Report("b", 1, {Edge("t2", "t1")}, 0);
  EXPECT_TRUE(g.BreakDeadlocks(0, w.Standing(), w.Abort()).empty());
  EXPECT_TRUE(w.aborted.empty());
  // A member the coordinator does not know (finished, or another coordinator's) likewise.
  w.standing.erase("t1");
  EXPECT_TRUE(g.BreakDeadlocks(0, w.Standing(), w.Abort()).empty());
  EXPECT_TRUE(w.aborted.empty());
}

TEST(WaitForGraph, AWaitOfACallThatHasReturnedIsStale) {
  // t1's statement timed out (its call returned) and t1 sent another call, which does not wait;
  // the report that would have cleared the old wait was lost. The old edge must not count.
  WaitForGraph g(500, 2000);
  World w;
  w.Txn("t1", 1).Txn("t2", 2);
  WaitEdge old_wait = Edge("t1", "t2");
  old_wait.waiter_call = 7;
  w.stale_calls.insert(7);
  g.Report("a", 1, {old_wait}, 0);
  g.Report("b", 1, {Edge("t2", "t1")}, 0);
  EXPECT_TRUE(g.BreakDeadlocks(0, w.Standing(), w.Abort()).empty());
  // The same pair through another participant, whose call is in flight, is a real cycle.
  WaitEdge live_wait = Edge("t1", "t2", 60, "stock");
  live_wait.waiter_call = 8;
  g.Report("c", 1, {live_wait}, 0);
  ASSERT_EQ(g.BreakDeadlocks(0, w.Standing(), w.Abort()).size(), 1u);
  EXPECT_EQ(w.aborted, (std::vector<std::string>{"t2"}));
}

TEST(WaitForGraph, ARefusedAbortIsNoVictimAndNoOtherMemberIsTaken) {
  // The youngest got a decision between the standing check and the abort: the cycle was not a
  // deadlock any more, and the older member must not pay for it.
  WaitForGraph g(500, 2000);
  World w;
  w.Txn("t1", 1).Txn("t2", 2);
  w.refuse_abort.insert("t2");
  g.Report("a", 1, {Edge("t1", "t2")}, 0);
  g.Report("b", 1, {Edge("t2", "t1")}, 0);
  EXPECT_TRUE(g.BreakDeadlocks(0, w.Standing(), w.Abort()).empty());
  EXPECT_TRUE(w.aborted.empty());
}

TEST(WaitForGraph, WaitsOnSessionsThatAreNotOursAreShownButNeverOnACycle) {
  WaitForGraph g(500, 2000);
  World w;
  w.Txn("t1", 1);
  WaitEdge external = Edge("t1", "");
  external.holder_description = "backend pid 4242 (psql, user alice)";
  g.Report("a", 1, {external}, 0);
  EXPECT_TRUE(g.BreakDeadlocks(0, w.Standing(), w.Abort()).empty());
  std::vector<WaitEdge> edges = g.Edges(30);
  ASSERT_EQ(edges.size(), 1u);
  EXPECT_EQ(edges[0].holder_description, "backend pid 4242 (psql, user alice)");
  EXPECT_EQ(edges[0].waited_ms, 90);  // 60 when reported, 30 ms ago
}

TEST(WaitForGraph, ASnapshotReplacesTheReportersEdgesAndAnEmptyOneClearsThem) {
  WaitForGraph g(500, 2000);
  World w;
  w.Txn("t1", 1).Txn("t2", 2);
  g.Report("a", 1, {Edge("t1", "t2")}, 0);
  g.Report("a", 2, {}, 10);  // t1 got its lock
  g.Report("b", 1, {Edge("t2", "t1")}, 20);
  EXPECT_TRUE(g.BreakDeadlocks(20, w.Standing(), w.Abort()).empty());
  EXPECT_EQ(g.Edges(20).size(), 1u);
}

TEST(WaitForGraph, ALateReportChangesNothing) {
  WaitForGraph g(500, 2000);
  World w;
  w.Txn("t1", 1).Txn("t2", 2);
  ASSERT_TRUE(g.Report("a", 5, {}, 0));
  EXPECT_FALSE(g.Report("a", 4, {Edge("t1", "t2")}, 10));  // sent before report 5
  EXPECT_FALSE(g.Report("a", 5, {Edge("t1", "t2")}, 10));
  g.Report("b", 1, {Edge("t2", "t1")}, 10);
  EXPECT_TRUE(g.BreakDeadlocks(10, w.Standing(), w.Abort()).empty());
}

TEST(WaitForGraph, EdgesNotRenewedExpire) {
  WaitForGraph g(500, 2000);
  World w;
  w.Txn("t1", 1).Txn("t2", 2);
  g.Report("a", 1, {Edge("t1", "t2")}, 0);  // then agent a went silent
  g.Report("b", 1, {Edge("t2", "t1")}, 600);
  g.Expire(600);
  EXPECT_TRUE(g.BreakDeadlocks(600, w.Standing(), w.Abort()).empty());
  // Renewed in time, the cycle is found.
  g.Report("a", 2, {Edge("t1", "t2")}, 700);
  g.Expire(700);
  EXPECT_EQ(g.BreakDeadlocks(700, w.Standing(), w.Abort()).size(), 1u);
}

TEST(WaitForGraph, AnExclusionEndsAndItsSequenceStaysTaken) {
  WaitForGraph g(500, 100);
  World w;
  w.Txn("t1", 1).Txn("t2", 2);
  g.Report("a", 1, {Edge("t1", "t2")}, 0);
  g.Report("b", 1, {Edge("t2", "t1")}, 0);
  ASSERT_EQ(g.BreakDeadlocks(0, w.Standing(), w.Abort()).size(), 1u);
  EXPECT_TRUE(g.excluded("t2"));
  g.Expire(100);
  EXPECT_FALSE(g.excluded("t2"));
  // t2 is aborting now, so a late-seen cycle through it is stale.
  w.standing["t2"].executing = false;
  g.Report("a", 2, {Edge("t1", "t2")}, 100);
  g.Report("b", 2, {Edge("t2", "t1")}, 100);
  EXPECT_TRUE(g.BreakDeadlocks(100, w.Standing(), w.Abort()).empty());
  EXPECT_EQ(w.aborted.size(), 1u);
}

}  // namespace
}  // namespace txn::core
