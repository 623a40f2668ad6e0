// Conformance suite run against every DecisionLog, plus group commit.
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <future>

#include "common/ids.h"
#include "coordinator/log/group_commit_log.h"
#include "coordinator/log/memory_decision_log.h"
#include "coordinator/log/rocksdb_decision_log.h"

namespace txn::log {
namespace {

DecisionRecord Record(const std::string& id, int decision = 1) {
  DecisionRecord r;
  r.set_txn_id(id);
  r.set_decision(decision);
  auto* b = r.add_branches();
  b->set_participant("orders");
  b->set_native_id("1234");
  return r;
}

class DecisionLogTest : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("txn_log_test_" + std::to_string(::getpid()) + "_" +
            testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    log_ = Open();
  }
  void TearDown() override {
    log_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::unique_ptr<DecisionLog> Open() {
    if (GetParam() == "memory") return std::make_unique<MemoryDecisionLog>();
    auto opened = RocksDbDecisionLog::Open(dir_.string());
    EXPECT_TRUE(opened.ok()) << opened.status();
    return std::move(opened).value();
  }
  // Closes and reopens (RocksDB only: the memory log is gone with its object).
  void Reopen() {
    if (GetParam() == "memory") return;
    log_.reset();
    log_ = Open();
  }
  std::filesystem::path dir_;
  std::unique_ptr<DecisionLog> log_;
};

TEST_P(DecisionLogTest, MissingRecordIsNullopt) {
  auto got = log_->Get("n1-1-1");
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());
}

TEST_P(DecisionLogTest, WriteThenGetRoundTrips) {
  ASSERT_TRUE(log_->Write({Record("n1-1-1"), Record("n1-1-2", 2)}, true).ok());
  Reopen();
  auto got = log_->Get("n1-1-2");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->decision(), 2);
  EXPECT_EQ((*got)->branches(0).native_id(), "1234");
}

TEST_P(DecisionLogTest, WriteReplacesRecord) {
  ASSERT_TRUE(log_->Write({Record("n1-1-1")}, true).ok());
  DecisionRecord done = Record("n1-1-1");
  done.set_done(true);
  ASSERT_TRUE(log_->Write({done}, false).ok());
  auto got = log_->Get("n1-1-1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_TRUE((*got)->done());
}

TEST_P(DecisionLogTest, ForEachVisitsAllInOrderAndStopsWhenAsked) {
  ASSERT_TRUE(log_->Write({Record("n1-1-3"), Record("n1-1-1"), Record("n1-1-2")}, true).ok());
  Reopen();
  std::vector<std::string> seen;
  ASSERT_TRUE(log_->ForEach([&](const DecisionRecord& r) {
                    seen.push_back(r.txn_id());
                    return true;
                  })
                  .ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"n1-1-1", "n1-1-2", "n1-1-3"}));
  int n = 0;
  ASSERT_TRUE(log_->ForEach([&](const DecisionRecord&) { return ++n < 2; }).ok());
  EXPECT_EQ(n, 2);
}

TEST_P(DecisionLogTest, DeleteRemoves) {
  ASSERT_TRUE(log_->Write({Record("n1-1-1")}, true).ok());
  ASSERT_TRUE(log_->Delete("n1-1-1").ok());
  Reopen();
  EXPECT_FALSE(log_->Get("n1-1-1")->has_value());
}

TEST_P(DecisionLogTest, EpochIncreasesAcrossReopen) {
  auto e1 = log_->NextEpoch();
  auto e2 = log_->NextEpoch();
  ASSERT_TRUE(e1.ok() && e2.ok());
  EXPECT_EQ(*e1, 1u);
  EXPECT_EQ(*e2, 2u);
  Reopen();
  if (GetParam() != "memory") {
    EXPECT_EQ(*log_->NextEpoch(), 3u);
  }
}

TEST_P(DecisionLogTest, IncarnationIsKeptAcrossReopenAndNewForANewFolder) {
  const std::string first = log_->incarnation();
  EXPECT_TRUE(common::IsValidIncarnation(first)) << first;
  if (GetParam() == "memory") return;
  Reopen();
  EXPECT_EQ(log_->incarnation(), first);
  log_.reset();
  std::filesystem::remove_all(dir_);  // the data folder replaced: a new incarnation
  log_ = Open();
  EXPECT_TRUE(common::IsValidIncarnation(log_->incarnation()));
  EXPECT_NE(log_->incarnation(), first);
}

// A folder a coordinator from before incarnation ids wrote (an epoch, no incarnation): the ids
// without an incarnation are its own, so presumed abort still holds for them.
TEST(RocksDbDecisionLog, AFolderFromBeforeIncarnationsOwnsTheIdsWithoutOne) {
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("txn_log_legacy_" + std::to_string(::getpid())))
          .string();
  std::filesystem::remove_all(dir);
  {
    auto log = RocksDbDecisionLog::Open(dir);
    ASSERT_TRUE(log.ok());
    EXPECT_FALSE((*log)->made_legacy_ids()) << "a new folder";
    ASSERT_TRUE((*log)->NextEpoch().ok());
  }
  {  // take the folder back to what an older coordinator left
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), dir, &raw).ok());
    ASSERT_TRUE(raw->Delete(rocksdb::WriteOptions(), "m/incarnation").ok());
    ASSERT_TRUE(raw->Delete(rocksdb::WriteOptions(), "m/legacy_ids").ok());
    delete raw;
  }
  for (int open = 0; open < 2; ++open) {
    auto log = RocksDbDecisionLog::Open(dir);
    ASSERT_TRUE(log.ok());
    EXPECT_TRUE((*log)->made_legacy_ids()) << "open " << open;
    EXPECT_TRUE(common::IsValidIncarnation((*log)->incarnation()));
  }
  std::filesystem::remove_all(dir);
}

TEST_P(DecisionLogTest, GroupCommitDeliversEveryCallbackAndRecord) {
  constexpr int kRecords = 200;
  std::atomic<int> ok{0};
  {
    GroupCommitLog group(log_.get());
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kRecords / 4; ++i) {
          std::promise<absl::Status> p;
          group.Append(Record("n1-1-" + std::to_string(t * 1000 + i)), true,
                       [&](absl::Status s) { p.set_value(s); });
          if (p.get_future().get().ok()) ++ok;
        }
      });
    }
    for (auto& t : threads) t.join();
  }
  EXPECT_EQ(ok.load(), kRecords);
  int n = 0;
  ASSERT_TRUE(log_->ForEach([&](const DecisionRecord&) { return ++n > 0; }).ok());
  EXPECT_EQ(n, kRecords);
}

INSTANTIATE_TEST_SUITE_P(AllLogs, DecisionLogTest, testing::Values("memory", "rocksdb"));

// A log whose writes take a while, so appends pile up behind the writer.
class SlowLog final : public DecisionLog {
 public:
  absl::Status Write(const std::vector<DecisionRecord>& records, bool sync) override {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return inner_.Write(records, sync);
  }
  absl::StatusOr<std::optional<DecisionRecord>> Get(absl::string_view id) override {
    return inner_.Get(id);
  }
  absl::Status Delete(absl::string_view id) override { return inner_.Delete(id); }
  absl::Status ForEach(const std::function<bool(const DecisionRecord&)>& fn) override {
    return inner_.ForEach(fn);
  }
  absl::StatusOr<uint64_t> NextEpoch() override { return inner_.NextEpoch(); }
  const std::string& incarnation() const override { return inner_.incarnation(); }
  MemoryDecisionLog inner_;
};

TEST(GroupCommit, ConcurrentAppendsShareWrites) {
  SlowLog slow;
  std::atomic<int> done{0};
  {
    GroupCommitLog group(&slow);
    for (int i = 0; i < 50; ++i) {
      group.Append(Record("n1-1-" + std::to_string(i)), true, [&](absl::Status) { ++done; });
    }
  }
  EXPECT_EQ(done.load(), 50);
  EXPECT_LT(slow.inner_.writes(), 10) << "50 queued records should need only a few batches";
}

class FailingLog final : public DecisionLog {
 public:
  absl::Status Write(const std::vector<DecisionRecord>&, bool) override {
    return absl::UnavailableError("disk on fire");
  }
  absl::StatusOr<std::optional<DecisionRecord>> Get(absl::string_view) override {
    return std::optional<DecisionRecord>();
  }
  absl::Status Delete(absl::string_view) override { return absl::OkStatus(); }
  absl::Status ForEach(const std::function<bool(const DecisionRecord&)>&) override {
    return absl::OkStatus();
  }
  absl::StatusOr<uint64_t> NextEpoch() override { return 1; }
  const std::string& incarnation() const override { return incarnation_; }
  std::string incarnation_ = "0000000f";
};

TEST(GroupCommit, WriteErrorReachesEveryCallback) {
  FailingLog failing;
  std::atomic<int> failed{0};
  {
    GroupCommitLog group(&failing);
    for (int i = 0; i < 5; ++i) {
      group.Append(Record("n1-1-" + std::to_string(i)), true, [&](absl::Status s) {
        if (s.code() == absl::StatusCode::kUnavailable) ++failed;
      });
    }
  }
  EXPECT_EQ(failed.load(), 5);
}

}  // namespace
}  // namespace txn::log

namespace txn::log {
namespace {

TEST(RocksDbHeadroom, WritesAreRefusedBelowTheFreeSpaceFloorWithoutReachingRocksDb) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("txn-headroom-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  {
    // A floor no disk can meet.
    auto log = RocksDbDecisionLog::Open(dir.string(), uint64_t{1} << 62);
    ASSERT_TRUE(log.ok()) << log.status();
    DecisionRecord r;
    r.set_txn_id("n1-1-1");
    absl::Status s = (*log)->Write({r}, /*sync=*/true);
    EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
    EXPECT_NE(s.message().find("KiB free in " + dir.string()), std::string::npos) << s;
    EXPECT_EQ((*log)->NextEpoch().status().code(), absl::StatusCode::kResourceExhausted);
    EXPECT_FALSE((*log)->Get("n1-1-1")->has_value());
  }
  {
    auto log = RocksDbDecisionLog::Open(dir.string(), 1);  // one byte free is enough
    ASSERT_TRUE(log.ok());
    DecisionRecord r;
    r.set_txn_id("n1-1-1");
    EXPECT_TRUE((*log)->Write({r}, true).ok());
    EXPECT_TRUE((*log)->NextEpoch().ok());
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace txn::log
