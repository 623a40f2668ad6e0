#include <gtest/gtest.h>

#include "common/backoff.h"
#include "common/failpoint.h"
#include "common/flags.h"
#include "common/ids.h"
#include "common/logging.h"

namespace txn::common {
namespace {

TEST(Ids, TxnIdRoundTripsThroughGid) {
  std::string id = MakeTxnId("n1", "0a1b2c3d", 7, 42);
  EXPECT_EQ(id, "n1-0a1b2c3d-7-42");
  auto parts = ParseTxnId(id);
  ASSERT_TRUE(parts.has_value());
  EXPECT_EQ(parts->node, "n1");
  EXPECT_EQ(parts->incarnation, "0a1b2c3d");
  EXPECT_EQ(parts->epoch, 7u);
  EXPECT_EQ(parts->seq, 42u);
  auto parsed = ParseBranchGid(BranchGid(id, 3));
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->txn_id, id);
  EXPECT_EQ(parsed->branch, 3u);
  EXPECT_LE(
      BranchGid(MakeTxnId("abcdefghijklmnop", "ffffffff", 4294967295u, 999999999999u), 999).size(),
      64u);
}

TEST(Ids, IdsFromBeforeIncarnationsStillParseWithoutOne) {
  auto parts = ParseTxnId("n1-7-42");
  ASSERT_TRUE(parts.has_value());
  EXPECT_EQ(parts->incarnation, "");
  EXPECT_EQ(parts->epoch, 7u);
  EXPECT_TRUE(ParseBranchGid("txc_n1-7-42_0").has_value());
}

TEST(Ids, RejectsForeignAndMalformedGids) {
  for (const char* gid :
       {"", "foo", "txc_", "txc_n1-1-1", "txc_n1-1-1_", "txc_N1-1-1_0", "txc_n1-1-1_12345",
        "txc_n1-1-1_0'; DROP TABLE x; --", "txc_n1-1_0", "other_n1-1-1_0", "txc_n1-ABCDEF12-1-1_0",
        "txc_n1-0a1b2c3-1-1_0", "txc_n1-0a1b2c3d-1-1-1_0"}) {
    EXPECT_FALSE(ParseBranchGid(gid).has_value()) << gid;
  }
  EXPECT_FALSE(IsValidTxnId("n1-1-1; --"));
  EXPECT_FALSE(IsValidTxnId("n1-1-"));
  EXPECT_FALSE(IsValidTxnId("n1-0a1b2c3d-1-"));
  EXPECT_FALSE(IsValidIncarnation("0a1b2c3g"));
}

TEST(Backoff, GrowsAndIsCapped) {
  BackoffPolicy p{.initial_ms = 100, .max_ms = 1000, .multiplier = 2};
  EXPECT_EQ(BackoffDelayMs(p, 0, 0.5), 0);
  EXPECT_EQ(BackoffDelayMs(p, 1, 0.0), 50);
  EXPECT_EQ(BackoffDelayMs(p, 1, 0.999), 99);
  EXPECT_EQ(BackoffDelayMs(p, 3, 0.0), 200);
  EXPECT_EQ(BackoffDelayMs(p, 30, 0.0), 500);
  EXPECT_LE(BackoffDelayMs(p, 30, 0.999), 1000);
}

TEST(Failpoint, OffByDefaultAndErrorWhenArmed) {
  DisarmAllFailpoints();
  EXPECT_TRUE(Failpoint("x").ok());
  ASSERT_TRUE(ArmFailpointsFromSpec("x=error;y=delay(1)").ok());
  EXPECT_EQ(Failpoint("x").code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(Failpoint("y").ok());
  EXPECT_TRUE(Failpoint("z").ok());
  DisarmAllFailpoints();
  EXPECT_TRUE(Failpoint("x").ok());
}

TEST(Failpoint, HitCountFiresOnce) {
  ASSERT_TRUE(ArmFailpointsFromSpec("x=error@2").ok());
  EXPECT_TRUE(Failpoint("x").ok());
  EXPECT_FALSE(Failpoint("x").ok());
  EXPECT_TRUE(Failpoint("x").ok());
  DisarmAllFailpoints();
}

TEST(Failpoint, BadSpecIsRejected) {
  EXPECT_EQ(ArmFailpointsFromSpec("x=explode").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ArmFailpointsFromSpec("nonsense").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ArmFailpointsFromSpec("x=error@0").code(), absl::StatusCode::kInvalidArgument);
}

TEST(Failpoint, CrashKillsTheProcess) {
  EXPECT_EXIT(
      {
        (void)ArmFailpointsFromSpec("boom=crash");
        (void)Failpoint("boom");
      },
      testing::KilledBySignal(SIGKILL), "failpoint boom fired");
}

FlagSet TestFlags() {
  FlagSet f("prog", "test");
  f.Add({"listen", "HOST:PORT", "", "127.0.0.1:1"});
  f.Add({"participant", "NAME=ADDR", "", "", /*repeated=*/true});
  f.Add({"verbose", "", "", ""});
  return f;
}

TEST(Flags, ParsesBothFormsRepeatedAndDefaults) {
  const char* argv[] = {"prog", "--participant", "a=1", "--participant=b=2", "--verbose", "list"};
  auto parsed = TestFlags().Parse(6, const_cast<char**>(argv));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->GetAll("participant"), (std::vector<std::string>{"a=1", "b=2"}));
  EXPECT_EQ(parsed->Get("listen"), "127.0.0.1:1");
  EXPECT_TRUE(parsed->GetBool("verbose"));
  EXPECT_EQ(parsed->positional(), std::vector<std::string>{"list"});
}

TEST(Flags, UnknownFlagAndMissingValueAreErrors) {
  const char* a1[] = {"prog", "--nope"};
  EXPECT_EQ(TestFlags().Parse(2, const_cast<char**>(a1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  const char* a2[] = {"prog", "--listen"};
  auto s = TestFlags().Parse(2, const_cast<char**>(a2)).status();
  EXPECT_NE(s.message().find("--listen needs a value"), std::string::npos) << s;
}

TEST(Flags, ConfigFileIsOverriddenByCommandLine) {
  std::string path = testing::TempDir() + "/flags_test.yaml";
  FILE* f = std::fopen(path.c_str(), "w");
  std::fputs("listen: 127.0.0.1:9\nparticipant: [x=1, y=2]\n", f);
  std::fclose(f);
  std::string arg = "--config=" + path;
  const char* argv[] = {"prog", arg.c_str(), "--listen", "127.0.0.1:8"};
  auto parsed = TestFlags().Parse(4, const_cast<char**>(argv));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->Get("listen"), "127.0.0.1:8");
  EXPECT_EQ(parsed->GetAll("participant").size(), 2u);
}

TEST(Flags, GetIntChecksRange) {
  const char* argv[] = {"prog", "--listen", "abc"};
  auto parsed = TestFlags().Parse(3, const_cast<char**>(argv));
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->GetInt("listen", 0, 10).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Logging, JsonLinesCarryTheFieldsAndEscapeTheMessage) {
  const std::string line = JsonLogLine("2026-12-02T10:00:00.000Z", Severity::kWarning,
                                       "txn=n1-ab-1-7 principal=alice said \"hi\"\nbye");
  EXPECT_NE(line.find(R"("txn_id":"n1-ab-1-7")"), std::string::npos) << line;
  EXPECT_NE(line.find(R"("principal":"alice")"), std::string::npos) << line;
  EXPECT_NE(line.find(R"("level":"warning")"), std::string::npos) << line;
  EXPECT_NE(line.find(R"(said \"hi\"\nbye)"), std::string::npos) << line;
  EXPECT_EQ(line.find('\n'), std::string::npos) << "one object per line";
  LogFormat f;
  EXPECT_TRUE(ParseLogFormat("json", &f));
  EXPECT_EQ(f, LogFormat::kJson);
  EXPECT_FALSE(ParseLogFormat("xml", &f));
}

}  // namespace
}  // namespace txn::common
