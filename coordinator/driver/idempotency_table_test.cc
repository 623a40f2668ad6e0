#include "coordinator/driver/idempotency_table.h"

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"

namespace txn::driver {
namespace {

class IdempotencyTableTest : public ::testing::Test {
 protected:
  common::ManualClock clock_;
  IdempotencyTable table_{IdempotencyOptions{.capacity = 3, .retention_ms = 60'000}, &clock_};
  std::string existing_;
};

TEST_F(IdempotencyTableTest, ARetryFindsItsTransactionAndAChangedRequestIsRefused) {
  EXPECT_TRUE(*table_.Reserve("alice", "k1", "f1", "t1", &existing_));
  EXPECT_FALSE(*table_.Reserve("alice", "k1", "f1", "t2", &existing_));
  EXPECT_EQ(existing_, "t1");
  EXPECT_EQ(table_.Reserve("alice", "k1", "other", "t3", &existing_).status().code(),
            absl::StatusCode::kAlreadyExists);
}

TEST_F(IdempotencyTableTest, KeysAreScopedByPrincipal) {
  EXPECT_TRUE(*table_.Reserve("alice", "k1", "f1", "t1", &existing_));
  EXPECT_TRUE(*table_.Reserve("bob", "k1", "f2", "t2", &existing_));
  EXPECT_FALSE(*table_.Reserve("bob", "k1", "f2", "t9", &existing_));
  EXPECT_EQ(existing_, "t2");
}

TEST_F(IdempotencyTableTest, AFloodOfKeysNeverEvictsAKeptOne) {
  EXPECT_TRUE(*table_.Reserve("victim", "pay-17", "f", "t1", &existing_));
  table_.Finished("t1");
  EXPECT_TRUE(*table_.Reserve("mallory", "a", "f", "t2", &existing_));
  EXPECT_TRUE(*table_.Reserve("mallory", "b", "f", "t3", &existing_));
  absl::Status full = table_.Reserve("mallory", "c", "f", "t4", &existing_).status();
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(full.message().find("60 s after it finishes"), absl::string_view::npos);
  // The victim's retry still finds its transaction: it does not run twice.
  EXPECT_FALSE(*table_.Reserve("victim", "pay-17", "f", "t5", &existing_));
  EXPECT_EQ(existing_, "t1");
}

TEST_F(IdempotencyTableTest, FinishedKeysAreForgottenOnlyAfterTheirRetention) {
  EXPECT_TRUE(*table_.Reserve("a", "k1", "f", "t1", &existing_));
  EXPECT_TRUE(*table_.Reserve("a", "k2", "f", "t2", &existing_));
  EXPECT_TRUE(*table_.Reserve("a", "k3", "f", "t3", &existing_));
  table_.Finished("t1");
  clock_.Advance(59'999);
  EXPECT_EQ(table_.Reserve("a", "k4", "f", "t4", &existing_).status().code(),
            absl::StatusCode::kResourceExhausted);
  clock_.Advance(1);
  EXPECT_TRUE(*table_.Reserve("a", "k4", "f", "t4", &existing_));
  EXPECT_EQ(table_.size(), 3u);
  // t2 and t3 never finished: they are still kept however old.
  clock_.Advance(10 * 60'000);
  EXPECT_FALSE(*table_.Reserve("a", "k2", "f", "t9", &existing_));
  EXPECT_EQ(existing_, "t2");
}

TEST_F(IdempotencyTableTest, RestoredEntriesKeepTheirFinishTime) {
  table_.Restore("a", "k1", "f", "t1", clock_.NowUnixMs() - 60'000);
  table_.Restore("a", "k2", "f", "t2", 0);
  table_.Restore("a", "k3", "f", "t3", clock_.NowUnixMs());
  EXPECT_TRUE(*table_.Reserve("a", "k4", "f", "t4", &existing_));  // t1 was past retention
  EXPECT_FALSE(*table_.Reserve("a", "k2", "f", "t9", &existing_));
  EXPECT_EQ(existing_, "t2");
}

TEST_F(IdempotencyTableTest, AKeyReusedAfterItsWindowKeepsItsNewestTransactionAfterARestart) {
  const int64_t now = clock_.NowUnixMs();
  // t1 finished long ago; the key was used again for t2, still running at the crash.
  table_.Restore("a", "k", "f1", "t1", now - 600'000);
  table_.Restore("a", "k", "f2", "t2", 0);
  table_.Restore("a", "k", "f1", "t1", now - 600'000);  // in either order
  EXPECT_FALSE(*table_.Reserve("a", "k", "f2", "t9", &existing_));
  EXPECT_EQ(existing_, "t2");
  // Filling the table forgets nothing kept: t2 is unfinished.
  EXPECT_TRUE(*table_.Reserve("a", "k2", "f", "t3", &existing_));
  EXPECT_TRUE(*table_.Reserve("a", "k3", "f", "t4", &existing_));
  EXPECT_FALSE(*table_.Reserve("a", "k", "f2", "t9", &existing_));
  EXPECT_EQ(existing_, "t2");
}

TEST(IdempotencyShareTest, OnePrincipalCannotTakeEveryonesKeys) {
  common::ManualClock clock;
  IdempotencyTable table(
      IdempotencyOptions{.capacity = 10, .per_principal = 2, .retention_ms = 60'000}, &clock);
  std::string existing;
  EXPECT_TRUE(*table.Reserve("mallory", "a", "f", "t1", &existing));
  EXPECT_TRUE(*table.Reserve("mallory", "b", "f", "t2", &existing));
  absl::Status full = table.Reserve("mallory", "c", "f", "t3", &existing).status();
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(full.message().find("--idempotency-keys-per-principal"), absl::string_view::npos);
  EXPECT_NE(full.message().find("mallory"), absl::string_view::npos);
  // Others still get new keys, and mallory's retries of kept keys still work.
  EXPECT_TRUE(*table.Reserve("victim", "pay-1", "f", "t4", &existing));
  EXPECT_FALSE(*table.Reserve("mallory", "a", "f", "t5", &existing));
  EXPECT_EQ(existing, "t1");
  // The share frees up once a key's retention has passed.
  table.Finished("t1");
  clock.Advance(60'000);
  EXPECT_TRUE(*table.Reserve("mallory", "c", "f", "t6", &existing));
  // Restored entries count toward the share (a restart does not reset it).
  table.Restore("mallory", "r", "f", "t7", 0);
  EXPECT_EQ(table.Reserve("mallory", "d", "f", "t8", &existing).status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(IdempotencyShareTest, TheAnonymousPrincipalIsBoundedByCapacityOnly) {
  common::ManualClock clock;
  IdempotencyTable table(
      IdempotencyOptions{.capacity = 4, .per_principal = 2, .retention_ms = 60'000}, &clock);
  std::string existing;
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(*table.Reserve("", absl::StrCat("k", i), "f", absl::StrCat("t", i), &existing));
  }
  absl::Status full = table.Reserve("", "k9", "f", "t9", &existing).status();
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(full.message().find("--idempotency-capacity"), absl::string_view::npos);
}

}  // namespace
}  // namespace txn::driver
