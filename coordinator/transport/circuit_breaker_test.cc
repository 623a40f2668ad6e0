#include "coordinator/transport/circuit_breaker.h"

#include <gtest/gtest.h>

namespace txn::transport {
namespace {

CircuitOptions Options() { return {.failure_threshold = 3, .open_ms = 100, .max_open_ms = 350}; }

TEST(CircuitBreakerTest, StaysClosedBelowTheThreshold) {
  CircuitBreaker cb(Options());
  cb.RecordFailure(0, "a");
  cb.RecordFailure(0, "b");
  EXPECT_EQ(cb.StateAt(0), CircuitState::kClosed);
  EXPECT_TRUE(cb.AllowNewWork(0));
  EXPECT_EQ(cb.consecutive_failures(), 2);
  EXPECT_EQ(cb.last_error(), "b");
}

TEST(CircuitBreakerTest, ASuccessResetsTheCount) {
  CircuitBreaker cb(Options());
  cb.RecordFailure(0, "a");
  cb.RecordFailure(0, "a");
  cb.RecordSuccess();
  cb.RecordFailure(0, "a");
  cb.RecordFailure(0, "a");
  EXPECT_TRUE(cb.AllowNewWork(0));
}

TEST(CircuitBreakerTest, OpensAtTheThresholdAndRefusesNewWork) {
  CircuitBreaker cb(Options());
  for (int i = 0; i < 3; ++i) cb.RecordFailure(10, "down");
  EXPECT_EQ(cb.StateAt(10), CircuitState::kOpen);
  EXPECT_FALSE(cb.AllowNewWork(10));
  EXPECT_FALSE(cb.AllowNewWork(109));
  EXPECT_EQ(cb.open_until_ms(), 110);
}

TEST(CircuitBreakerTest, HalfOpenAfterThePeriodAndASuccessCloses) {
  CircuitBreaker cb(Options());
  for (int i = 0; i < 3; ++i) cb.RecordFailure(0, "down");
  EXPECT_EQ(cb.StateAt(100), CircuitState::kHalfOpen);
  EXPECT_TRUE(cb.AllowNewWork(100));
  cb.RecordSuccess();
  EXPECT_EQ(cb.StateAt(100), CircuitState::kClosed);
  EXPECT_EQ(cb.consecutive_failures(), 0);
}

TEST(CircuitBreakerTest, AFailedTrialReopensForLongerUpToTheCap) {
  CircuitBreaker cb(Options());
  for (int i = 0; i < 3; ++i) cb.RecordFailure(0, "down");  // open 100
  ASSERT_TRUE(cb.AllowNewWork(100));
  cb.RecordFailure(100, "still down");  // open 200
  EXPECT_FALSE(cb.AllowNewWork(299));
  ASSERT_TRUE(cb.AllowNewWork(300));
  cb.RecordFailure(300, "still down");  // 400 -> capped at 350
  EXPECT_EQ(cb.open_until_ms(), 650);
  ASSERT_TRUE(cb.AllowNewWork(650));
  cb.RecordSuccess();
  for (int i = 0; i < 3; ++i) cb.RecordFailure(700, "down again");  // back to the first period
  EXPECT_EQ(cb.open_until_ms(), 800);
}

TEST(CircuitBreakerTest, FailuresOfCallsAlreadyUnderWayDoNotExtendThePeriod) {
  CircuitBreaker cb(Options());
  for (int i = 0; i < 3; ++i) cb.RecordFailure(0, "down");
  cb.RecordFailure(50, "late");
  EXPECT_EQ(cb.open_until_ms(), 100);
}

}  // namespace
}  // namespace txn::transport
