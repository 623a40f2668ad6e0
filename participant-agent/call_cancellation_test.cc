#include "participant-agent/call_cancellation.h"

#include <gtest/gtest.h>

namespace txn::agent {
namespace {

TEST(CallCancellationTest, CancelInterruptsTheStatementRunningNow) {
  CallCancellation call;
  CallCancellation::Scope scope(&call);
  int interrupts = 0;
  {
    CallCancellation::Interruptible statement([&] { ++interrupts; });
    EXPECT_FALSE(statement.interrupted());
    call.Cancel();
    call.Cancel();  // idempotent
    EXPECT_EQ(interrupts, 1);
    EXPECT_TRUE(statement.interrupted());
  }
  EXPECT_TRUE(call.cancelled());
}

TEST(CallCancellationTest, CancelAfterTheStatementEndedInterruptsNothing) {
  CallCancellation call;
  CallCancellation::Scope scope(&call);
  int interrupts = 0;
  { CallCancellation::Interruptible statement([&] { ++interrupts; }); }
  call.Cancel();
  EXPECT_EQ(interrupts, 0);
}

TEST(CallCancellationTest, CancelledBeforeTheStatementSaysDoNotSendIt) {
  CallCancellation call;
  call.Cancel();
  CallCancellation::Scope scope(&call);
  int interrupts = 0;
  CallCancellation::Interruptible statement([&] { ++interrupts; });
  EXPECT_TRUE(statement.interrupted());
  EXPECT_EQ(interrupts, 0);  // an interrupt now would reach an idle session and be lost
}

TEST(CallCancellationTest, OutsideAScopeNothingIsInterruptible) {
  EXPECT_EQ(CallCancellation::Current(), nullptr);
  int interrupts = 0;
  CallCancellation::Interruptible statement([&] { ++interrupts; });
  EXPECT_FALSE(statement.interrupted());
  EXPECT_EQ(interrupts, 0);
}

TEST(CallCancellationTest, ScopesNestAndRestore) {
  CallCancellation outer, inner;
  CallCancellation::Scope a(&outer);
  {
    CallCancellation::Scope b(&inner);
    EXPECT_EQ(CallCancellation::Current(), &inner);
  }
  EXPECT_EQ(CallCancellation::Current(), &outer);
}

}  // namespace
}  // namespace txn::agent
