#include "participant-agent/work_lane.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>

namespace txn::agent {
namespace {

// A latch the tests open by hand, so that "workers are busy" is a fact, not a timing guess.
class Gate {
 public:
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    ++waiting_;
    cv_.notify_all();
    cv_.wait(lock, [this] { return open_; });
  }
  void WaitForWaiters(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return waiting_ >= n; });
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int waiting_ = 0;
  bool open_ = false;
};

TEST(WorkLaneTest, RunsTasksOnItsWorkersInParallel) {
  WorkLane lane({.name = "work", .workers = 3, .max_queued = 0, .limit_hint = "test"});
  Gate gate;
  std::atomic<int> done{0};
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(lane.Submit([&] {
                      gate.Wait();
                      ++done;
                    })
                    .ok());
  }
  // All three run at once: each waits at the gate until all three are there.
  gate.WaitForWaiters(3);
  EXPECT_EQ(lane.busy(), 3);
  gate.Open();
  while (done.load() < 3) std::this_thread::yield();
}

TEST(WorkLaneTest, RefusesWhenWorkersAndQueueAreFullNamingTheLimit) {
  WorkLane lane({.name = "work", .workers = 1, .max_queued = 1, .limit_hint = "--max-connections=1"});
  Gate gate;
  std::atomic<int> ran{0};
  ASSERT_TRUE(lane.Submit([&] {
                    gate.Wait();
                    ++ran;
                  })
                  .ok());
  gate.WaitForWaiters(1);
  ASSERT_TRUE(lane.Submit([&] { ++ran; }).ok());  // waits in the queue
  EXPECT_EQ(lane.queued(), 1);
  absl::Status refused = lane.Submit([&] { ran += 100; });
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(refused.message().find("--max-connections=1"), absl::string_view::npos)
      << refused.message();
  EXPECT_NE(refused.message().find("work lane"), absl::string_view::npos) << refused.message();
  gate.Open();
  while (ran.load() < 2) std::this_thread::yield();
  EXPECT_EQ(ran.load(), 2);  // the refused task never ran
}

TEST(WorkLaneTest, OneLaneBlockedDoesNotHoldUpAnother) {
  // The point of lanes: Commit/Rollback (finish) never wait behind blocked work.
  WorkLane work({.name = "work", .workers = 2, .max_queued = 10, .limit_hint = "test"});
  WorkLane finish({.name = "finish", .workers = 1, .max_queued = 10, .limit_hint = "test"});
  Gate gate;
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(work.Submit([&] { gate.Wait(); }).ok());
  gate.WaitForWaiters(2);
  std::promise<void> finished;
  ASSERT_TRUE(finish.Submit([&] { finished.set_value(); }).ok());
  EXPECT_EQ(finished.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
  gate.Open();
}

TEST(WorkLaneTest, DestructorRunsEverythingQueued) {
  std::atomic<int> ran{0};
  {
    WorkLane lane({.name = "work", .workers = 1, .max_queued = 100, .limit_hint = "test"});
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(lane.Submit([&] { ++ran; }).ok());
  }
  EXPECT_EQ(ran.load(), 50);
}

}  // namespace
}  // namespace txn::agent
