#include "participant-agent/wait_ages.h"

#include <gtest/gtest.h>

#include "participant-agent/lock_wait_reporter.h"

namespace txn::agent {
namespace {

using Looked = WaitAges::Looked;
using Found = WaitAges::Found;

TEST(WaitAges, AFirstSeenWaitIsAsOldAsItsCall) {
  WaitAges ages;
  EXPECT_EQ(ages.Pass(1'000, {Looked{"w", 1, 900}}, {Found{"w", "h1"}}),
            std::vector<int64_t>{100});
}

TEST(WaitAges, AWaitThatGoesOnKeepsItsBeginning) {
  WaitAges ages;
  ages.Pass(1'000, {Looked{"w", 1, 900}}, {Found{"w", "h1"}});
  EXPECT_EQ(ages.Pass(1'150, {Looked{"w", 1, 900}}, {Found{"w", "h1"}}),
            std::vector<int64_t>{250});
}

TEST(WaitAges, ANewHolderOfTheSameCallIsNoOlderThanTheLastLook) {
  WaitAges ages;
  // The call queued behind h1 since 900; by the next pass h1 is gone and h2 blocks it: that
  // wait began after the pass at 1,000 at the earliest.
  ages.Pass(1'000, {Looked{"w", 1, 900}}, {Found{"w", "h1"}});
  EXPECT_EQ(ages.Pass(1'150, {Looked{"w", 1, 900}}, {Found{"w", "h2"}, {"w", "h1"}}),
            (std::vector<int64_t>{150, 250}));
}

TEST(WaitAges, ALookThatFoundNothingBoundsTheNextWait) {
  WaitAges ages;
  ages.Pass(1'000, {Looked{"w", 1, 900}}, {});  // running, but waiting for nobody
  EXPECT_EQ(ages.Pass(1'150, {Looked{"w", 1, 900}}, {Found{"w", "h1"}}),
            std::vector<int64_t>{150});
}

TEST(WaitAges, ANewCallStartsOver) {
  WaitAges ages;
  ages.Pass(1'000, {Looked{"w", 1, 900}}, {Found{"w", "h1"}});
  // Call 2 started at 1,100: neither call 1's wait nor call 1's last look says anything of it.
  EXPECT_EQ(ages.Pass(1'150, {Looked{"w", 2, 1'100}}, {Found{"w", "h1"}}),
            std::vector<int64_t>{50});
}

TEST(WaitAges, APassThatDidNotLookAtTheWaiterBoundsNothing) {
  WaitAges ages;
  ages.Pass(1'000, {Looked{"other", 1, 900}}, {});
  EXPECT_EQ(ages.Pass(1'150, {Looked{"w", 1, 900}}, {Found{"w", "h1"}}),
            std::vector<int64_t>{250});
  // A waiter that was not looked up this pass has no age.
  EXPECT_EQ(ages.Pass(1'200, {}, {Found{"w", "h1"}}), std::vector<int64_t>{0});
}

TEST(WaitAges, AWaitThatStoppedAndCameBackIsNew) {
  WaitAges ages;
  ages.Pass(1'000, {Looked{"w", 1, 900}}, {Found{"w", "h1"}});
  ages.Pass(1'150, {Looked{"w", 1, 900}}, {Found{"w", "h2"}});
  EXPECT_EQ(ages.Pass(1'300, {Looked{"w", 1, 900}}, {Found{"w", "h1"}}),
            std::vector<int64_t>{150});
}

}  // namespace
}  // namespace txn::agent

namespace txn::agent {
namespace {

std::vector<std::string> Gids(const std::vector<LiveBranch>& branches) {
  std::vector<std::string> out;
  for (const LiveBranch& b : branches) out.push_back(b.gid);
  return out;
}

TEST(CallsToLookUp, NothingIsAskedUntilSomeCallHasRunTheThreshold) {
  std::vector<LiveBranch> live{{"a", 11, 49, 1}, {"b", 12, -1, 0}, {"c", 13, 10, 4}};
  EXPECT_TRUE(CallsToLookUp(live, 50).empty());
}

TEST(CallsToLookUp, ThenEveryRunningCallIsAskedAbout) {
  // c's wait may be the one that closes a cycle although it has just begun; b runs no call.
  std::vector<LiveBranch> live{{"a", 11, 50, 1}, {"b", 12, -1, 0}, {"c", 13, 0, 4}};
  EXPECT_EQ(Gids(CallsToLookUp(live, 50)), (std::vector<std::string>{"a", "c"}));
}

}  // namespace
}  // namespace txn::agent
