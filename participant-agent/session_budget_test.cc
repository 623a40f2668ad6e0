#include "participant-agent/session_budget.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "participant-agent/call_cancellation.h"

namespace txn::agent {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

TEST(SessionBudgetTest, ABranchBeyondTheBudgetWaitsThenIsRefusedNamingTheLimit) {
  SessionBudget budget(2, /*max_wait_ms=*/100);
  ASSERT_TRUE(budget.Acquire().ok());
  ASSERT_TRUE(budget.Acquire().ok());
  const auto start = steady_clock::now();
  absl::Status refused = budget.Acquire();
  EXPECT_GE(steady_clock::now() - start, milliseconds(100));
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(refused.message().find("--max-db-connections"), absl::string_view::npos);
  EXPECT_EQ(budget.held(), 2u);
  EXPECT_EQ(budget.waiting(), 0u);
}

TEST(SessionBudgetTest, AWaitingBranchGetsTheSlotAReleaseFrees) {
  SessionBudget budget(1, /*max_wait_ms=*/5'000);
  ASSERT_TRUE(budget.Acquire().ok());
  std::atomic<bool> got{false};
  std::thread waiter([&] {
    ASSERT_TRUE(budget.Acquire().ok());
    got = true;
  });
  while (budget.waiting() == 0) std::this_thread::sleep_for(milliseconds(1));
  EXPECT_FALSE(got);
  budget.Release();
  waiter.join();
  EXPECT_TRUE(got);
  EXPECT_EQ(budget.held(), 1u);
}

TEST(SessionBudgetTest, TheWaitEndsWithTheCallsDeadlineAndItsCancellation) {
  SessionBudget budget(1, /*max_wait_ms=*/60'000);
  ASSERT_TRUE(budget.Acquire().ok());
  auto call = std::make_shared<CallCancellation>();
  call->set_deadline(std::chrono::system_clock::now() + milliseconds(50));
  {
    CallCancellation::Scope scope(call.get());
    const auto start = steady_clock::now();
    EXPECT_EQ(budget.Acquire().code(), absl::StatusCode::kResourceExhausted);
    EXPECT_LT(steady_clock::now() - start, milliseconds(5'000));
  }
  auto cancelled = std::make_shared<CallCancellation>();
  std::thread canceller([&] {
    std::this_thread::sleep_for(milliseconds(30));
    cancelled->Cancel();
  });
  {
    CallCancellation::Scope scope(cancelled.get());
    EXPECT_EQ(budget.Acquire().code(), absl::StatusCode::kCancelled);
  }
  canceller.join();
  EXPECT_EQ(budget.held(), 1u);
}

TEST(SessionBudgetTest, ZeroMeansNoLimit) {
  SessionBudget budget(0, 0);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(budget.Acquire().ok());
  EXPECT_EQ(budget.held(), 1000u);
}

}  // namespace
}  // namespace txn::agent
