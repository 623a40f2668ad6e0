// LockWaitReporter over a scripted lock-wait source and sink, on a manual clock.
#include "participant-agent/lock_wait_reporter.h"

#include <gtest/gtest.h>

namespace txn::agent {
namespace {

constexpr char kWaiter[] = "txc_n1-00000001-1-7_0";
constexpr char kHolder[] = "txc_n1-00000001-1-5_1";

class ScriptedSource final : public LockWaitSource {
 public:
  explicit ScriptedSource(int64_t min_interval_ms) : min_interval_ms_(min_interval_ms) {}
  absl::StatusOr<std::vector<LockWaitFound>> FindLockWaits(
      const std::vector<LiveBranch>& waiting, const std::vector<LiveBranch>&) override {
    ++looks;
    asked = waiting;
    if (clock != nullptr) clock->Advance(query_ms);
    if (fail) return absl::UnavailableError("lost the connection");
    return waits;
  }
  int64_t min_lock_wait_interval_ms() const override { return min_interval_ms_; }

  std::vector<LockWaitFound> waits;
  std::vector<LiveBranch> asked;
  int looks = 0;
  bool fail = false;
  common::ManualClock* clock = nullptr;  // advanced by query_ms on each look
  int64_t query_ms = 0;

 private:
  const int64_t min_interval_ms_;
};

class RecordingSink final : public WaitSink {
 public:
  absl::Status ReportWaits(const v1::ReportWaitsRequest& req) override {
    sent.push_back(req);
    return absl::OkStatus();
  }
  std::vector<v1::ReportWaitsRequest> sent;
};

class LockWaitReporterTest : public testing::Test {
 protected:
  LockWaitReporter Make(ScriptedSource* source) {
    return LockWaitReporter("ledger", [this] { return live_; }, source, &sink_, &clock_,
                            LockWaitReporterOptions{.threshold_ms = 50});
  }
  common::ManualClock clock_;
  std::vector<LiveBranch> live_;
  RecordingSink sink_;
};

TEST_F(LockWaitReporterTest, NothingIsAskedOrSentWhileNoCallHasRunTheThreshold) {
  ScriptedSource source(0);
  LockWaitReporter reporter = Make(&source);
  live_ = {{kWaiter, 11, 49, 3}};
  ASSERT_EQ(*reporter.RunOnce(), 0);
  EXPECT_EQ(source.looks, 0);
  EXPECT_TRUE(sink_.sent.empty());
}

TEST_F(LockWaitReporterTest, WaitsAreSentWithTheirCallAndAgeThenClearedOnce) {
  ScriptedSource source(0);
  source.clock = &clock_;
  source.query_ms = 4;
  LockWaitReporter reporter = Make(&source);
  live_ = {{kWaiter, 11, 80, 3}, {kHolder, 12, -1, 0}};
  source.waits = {{kWaiter, kHolder, "thread 12 (branch ...)"}};
  ASSERT_EQ(*reporter.RunOnce(), 1);
  ASSERT_EQ(sink_.sent.size(), 1u);
  const v1::LockWait& w = sink_.sent[0].waits(0);
  EXPECT_EQ(w.waiter_txn_id(), "n1-00000001-1-7");
  EXPECT_EQ(w.holder_txn_id(), "n1-00000001-1-5");
  EXPECT_EQ(w.participant(), "ledger");
  EXPECT_EQ(w.waiter_call(), 3u);
  EXPECT_EQ(w.waited_ms(), 84) << "its call's 80 ms, and the 4 ms the look took";
  // The waits end: one empty snapshot clears them at the coordinator, then nothing is sent.
  source.waits.clear();
  clock_.Advance(20);
  ASSERT_EQ(*reporter.RunOnce(), 0);
  ASSERT_EQ(sink_.sent.size(), 2u);
  EXPECT_EQ(sink_.sent[1].waits_size(), 0);
  EXPECT_GT(sink_.sent[1].sequence(), sink_.sent[0].sequence());
  clock_.Advance(20);
  ASSERT_EQ(*reporter.RunOnce(), 0);
  EXPECT_EQ(sink_.sent.size(), 2u);
}

TEST_F(LockWaitReporterTest, ADatabaseThatNeedsQuietIsLeftAloneBetweenLooks) {
  ScriptedSource source(120);  // as MariaDB's lock tables
  source.clock = &clock_;
  source.query_ms = 5;
  LockWaitReporter reporter = Make(&source);
  live_ = {{kWaiter, 11, 60, 3}};
  source.waits = {{kWaiter, kHolder, "thread 12"}};
  ASSERT_EQ(*reporter.RunOnce(), 1);
  for (int i = 0; i < 5; ++i) {  // passes every 20 ms: 100 ms since the look ended
    clock_.Advance(20);
    ASSERT_EQ(*reporter.RunOnce(), 0);
  }
  EXPECT_EQ(source.looks, 1);
  EXPECT_EQ(sink_.sent.size(), 1u) << "the snapshot sent stands until the next look";
  clock_.Advance(20);
  ASSERT_EQ(*reporter.RunOnce(), 1);
  EXPECT_EQ(source.looks, 2);
}

TEST_F(LockWaitReporterTest, AFailedLookAlsoStartsTheQuietInterval) {
  ScriptedSource source(120);
  LockWaitReporter reporter = Make(&source);
  live_ = {{kWaiter, 11, 60, 3}};
  source.fail = true;
  EXPECT_FALSE(reporter.RunOnce().ok());
  source.fail = false;
  clock_.Advance(20);
  ASSERT_EQ(*reporter.RunOnce(), 0);
  EXPECT_EQ(source.looks, 1) << "it may have read the database before failing";
}

TEST_F(LockWaitReporterTest, EveryRunningCallIsAskedAboutOnceOneHasRunTheThreshold) {
  ScriptedSource source(0);
  LockWaitReporter reporter = Make(&source);
  live_ = {{kWaiter, 11, 60, 3}, {kHolder, 12, 5, 9}, {"txc_n1-00000001-1-9_0", 13, -1, 0}};
  ASSERT_EQ(*reporter.RunOnce(), 0);
  ASSERT_EQ(source.asked.size(), 2u);
  EXPECT_EQ(source.asked[1].gid, kHolder);
}

TEST_F(LockWaitReporterTest, WithoutASourceAPassThatNeedsOneFails) {
  LockWaitReporter reporter = Make(nullptr);
  live_ = {{kWaiter, 11, 60, 3}};
  EXPECT_EQ(reporter.RunOnce().status().code(), absl::StatusCode::kUnimplemented);
}

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
