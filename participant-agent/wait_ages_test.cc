#include "participant-agent/wait_ages.h"

#include <gtest/gtest.h>

namespace txn::agent {
namespace {

using Looked = WaitAges::Looked;
using Found = WaitAges::Found;
using Began = std::vector<int64_t>;

TEST(WaitAges, AFirstSeenWaitBeganWithItsCall) {
  WaitAges ages;
  EXPECT_EQ(ages.Pass(1'000, {Looked{"w", 1, 900}}, {Found{"w", "h1"}}), Began{900});
}

TEST(WaitAges, AWaitThatGoesOnKeepsItsBeginning) {
  WaitAges ages;
  ages.Pass(1'000, {Looked{"w", 1, 900}}, {Found{"w", "h1"}});
  EXPECT_EQ(ages.Pass(1'150, {Looked{"w", 1, 900}}, {Found{"w", "h1"}}), Began{900});
}

TEST(WaitAges, ANewHolderOfTheSameCallBeganAfterTheLastLook) {
  WaitAges ages;
  // The call queued behind h1 since 900; by the next pass h1 is gone and h2 blocks it: that
  // wait began after the pass at 1,000 at the earliest.
  ages.Pass(1'000, {Looked{"w", 1, 900}}, {Found{"w", "h1"}});
  EXPECT_EQ(ages.Pass(1'150, {Looked{"w", 1, 900}}, {Found{"w", "h2"}, {"w", "h1"}}),
            (Began{1'000, 900}));
}

TEST(WaitAges, ALookThatFoundNothingBoundsTheNextWait) {
  WaitAges ages;
  ages.Pass(1'000, {Looked{"w", 1, 900}}, {});  // running, but waiting for nobody
  EXPECT_EQ(ages.Pass(1'150, {Looked{"w", 1, 900}}, {Found{"w", "h1"}}), Began{1'000});
}

TEST(WaitAges, AHolderTheLastLookCouldNotNameMayHaveBeenTheNewOne) {
  WaitAges ages;
  // At 1,000 the database showed w blocked by a session it could not map to a branch (a branch
  // between its live and its parked connection): that may have been h2 all along.
  ages.Pass(1'000, {Looked{"w", 1, 900}}, {Found{"w", "thread 88 (prepared)", false}});
  EXPECT_EQ(ages.Pass(1'150, {Looked{"w", 1, 900}}, {Found{"w", "h2"}}), Began{900});
  // An unnamed holder whose description changed keeps its beginning the same way.
  ages.Pass(1'300, {Looked{"v", 1, 1'200}}, {Found{"v", "thread 9 (RUNNING)", false}});
  EXPECT_EQ(ages.Pass(1'450, {Looked{"v", 1, 1'200}}, {Found{"v", "thread 9 (LOCK WAIT)", false}}),
            Began{1'200});
}

TEST(WaitAges, ANewCallStartsOver) {
  WaitAges ages;
  ages.Pass(1'000, {Looked{"w", 1, 900}}, {Found{"w", "h1"}});
  // Call 2 started at 1,100: neither call 1's wait nor call 1's last look says anything of it.
  EXPECT_EQ(ages.Pass(1'150, {Looked{"w", 2, 1'100}}, {Found{"w", "h1"}}), Began{1'100});
}

TEST(WaitAges, APassThatDidNotLookAtTheWaiterBoundsNothing) {
  WaitAges ages;
  ages.Pass(1'000, {Looked{"other", 1, 900}}, {});
  EXPECT_EQ(ages.Pass(1'150, {Looked{"w", 1, 900}}, {Found{"w", "h1"}}), Began{900});
  // A waiter that was not looked up this pass has no beginning.
  EXPECT_EQ(ages.Pass(1'200, {}, {Found{"w", "h1"}}), Began{WaitAges::kUnknown});
}

TEST(WaitAges, AWaitThatStoppedAndCameBackIsNew) {
  WaitAges ages;
  ages.Pass(1'000, {Looked{"w", 1, 900}}, {Found{"w", "h1"}});
  ages.Pass(1'150, {Looked{"w", 1, 900}}, {Found{"w", "h2"}});
  EXPECT_EQ(ages.Pass(1'300, {Looked{"w", 1, 900}}, {Found{"w", "h1"}}), Began{1'150});
}

}  // namespace
}  // namespace txn::agent
