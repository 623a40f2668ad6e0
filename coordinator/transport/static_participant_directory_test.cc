// The directory's circuit breaking and health, with in-process channels and a manual clock.
#include "coordinator/transport/static_participant_directory.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace txn::transport {
namespace {

// Answers Describe and Prepare as told.
class FakeChannel final : public ParticipantChannel {
 public:
  explicit FakeChannel(std::string name) : name_(std::move(name)) {}
  const std::string& name() const override { return name_; }
  const std::string& address() const override { return address_; }
  void Describe(const v1::DescribeRequest&, int64_t, Reply<v1::DescribeResponse> done) override {
    ++describes;
    if (!up) return done(absl::UnavailableError("connection refused"));
    v1::DescribeResponse r;
    r.set_backend("postgres");
    r.set_supports_prepare(true);
    done(r);
  }
  void Execute(const v1::ExecuteBranchRequest&, int64_t,
               Reply<v1::ExecuteBranchResponse> done) override {
    done(absl::FailedPreconditionError("an answer, even an error, is not a failure"));
  }
  void Prepare(const v1::PrepareBranchRequest&, int64_t,
               Reply<v1::PrepareBranchResponse> done) override {
    if (!up) return done(absl::DeadlineExceededError("deadline exceeded"));
    done(v1::PrepareBranchResponse());
  }
  void Commit(const v1::CommitBranchRequest&, int64_t,
              Reply<v1::CommitBranchResponse> done) override {
    done(v1::CommitBranchResponse());
  }
  void Rollback(const v1::RollbackBranchRequest&, int64_t,
                Reply<v1::RollbackBranchResponse> done) override {
    done(v1::RollbackBranchResponse());
  }
  void CommitOnePhase(const v1::CommitOnePhaseRequest&, int64_t,
                      Reply<v1::CommitOnePhaseResponse> done) override {
    done(v1::CommitOnePhaseResponse());
  }
  void ExecuteLocal(const v1::ExecuteLocalRequest&, int64_t,
                    Reply<v1::ExecuteLocalResponse> done) override {
    done(v1::ExecuteLocalResponse());
  }
  void Compensate(const v1::CompensateRequest&, int64_t,
                  Reply<v1::CompensateResponse> done) override {
    done(v1::CompensateResponse());
  }
  void PreDecide(const v1::PreDecideRequest&, int64_t, Reply<v1::TerminationReply> done) override {
    done(v1::TerminationReply());
  }
  void Elect(const v1::ElectRequest&, int64_t, Reply<v1::TerminationReply> done) override {
    done(v1::TerminationReply());
  }
  std::atomic<bool> up{true};
  std::atomic<int> describes{0};

 private:
  std::string name_;
  std::string address_ = "127.0.0.1:1";
};

class DirectoryTest : public testing::Test {
 protected:
  void Make(int64_t probe_interval_ms) {
    std::map<std::string, std::unique_ptr<ParticipantChannel>> channels;
    auto ch = std::make_unique<FakeChannel>("pg");
    pg_ = ch.get();
    channels["pg"] = std::move(ch);
    DirectoryOptions options;
    options.probe_interval_ms = probe_interval_ms;
    options.circuit = {.failure_threshold = 3, .open_ms = 1000, .max_open_ms = 4000};
    dir_ = std::make_unique<StaticParticipantDirectory>(std::move(channels), &clock_, options);
  }
  void PrepareOnce() {
    dir_->Find("pg")->Prepare(v1::PrepareBranchRequest(), 10,
                              [](absl::StatusOr<v1::PrepareBranchResponse>) {});
  }
  ParticipantStatus Status() { return dir_->Statuses().at(0); }
  // Waits until `n` more probes were answered (at least 1 in all).
  void WaitForProbes(int n) {
    const int target = std::max(1, pg_->describes + n);
    for (int i = 0; i < 1000 && pg_->describes < target; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    ASSERT_GE(pg_->describes, target);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // the probe's result is recorded
  }

  common::ManualClock clock_;
  FakeChannel* pg_ = nullptr;
  std::unique_ptr<StaticParticipantDirectory> dir_;
};

TEST_F(DirectoryTest, UnknownParticipantIsNotFound) {
  Make(60'000);
  EXPECT_EQ(dir_->Admit("mysql").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(dir_->Find("mysql"), nullptr);
}

TEST_F(DirectoryTest, FailedCallsOpenTheCircuitAndNewWorkFailsFast) {
  Make(60'000);
  WaitForProbes(1);  // the first probe, at start, succeeds
  pg_->up = false;
  for (int i = 0; i < 3; ++i) PrepareOnce();
  absl::Status admitted = dir_->Admit("pg");
  EXPECT_EQ(admitted.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(admitted.message().find("participant pg is unavailable (circuit open"),
            std::string::npos)
      << admitted;
  ParticipantStatus s = Status();
  EXPECT_EQ(s.circuit, CircuitState::kOpen);
  EXPECT_EQ(s.consecutive_failures, 3);
  EXPECT_EQ(s.failed_calls, 3u);
  EXPECT_EQ(s.last_error, "deadline exceeded");
  EXPECT_GT(s.retry_at_unix_ms, clock_.NowUnixMs());

  clock_.Advance(1000);
  EXPECT_TRUE(dir_->Admit("pg").ok()) << "half open: a trial goes through";
  EXPECT_EQ(Status().circuit, CircuitState::kHalfOpen);
  PrepareOnce();  // the trial fails: open again, for longer
  EXPECT_EQ(dir_->Admit("pg").code(), absl::StatusCode::kUnavailable);
  clock_.Advance(1999);
  EXPECT_EQ(dir_->Admit("pg").code(), absl::StatusCode::kUnavailable);
}

TEST_F(DirectoryTest, AnErrorAnswerIsNotAFailure) {
  Make(60'000);
  for (int i = 0; i < 5; ++i) {
    dir_->Find("pg")->Execute(v1::ExecuteBranchRequest(), 10,
                              [](absl::StatusOr<v1::ExecuteBranchResponse>) {});
  }
  EXPECT_TRUE(dir_->Admit("pg").ok());
  EXPECT_EQ(Status().calls, 5u);
  EXPECT_EQ(Status().failed_calls, 0u);
}

TEST_F(DirectoryTest, TheProberReportsHealthAndClosesTheCircuitWhenTheAgentIsBack) {
  Make(5);
  WaitForProbes(1);
  EXPECT_EQ(Status().health, ParticipantHealth::kServing);
  EXPECT_EQ(Status().backend, "postgres");
  ASSERT_TRUE(dir_->CapabilitiesOf("pg").has_value());

  pg_->up = false;
  WaitForProbes(4);
  EXPECT_EQ(Status().health, ParticipantHealth::kNotServing);
  EXPECT_EQ(Status().circuit, CircuitState::kOpen);
  EXPECT_EQ(Status().calls, 0u) << "probes are not counted as calls";

  pg_->up = true;
  clock_.Advance(5000);
  WaitForProbes(2);
  EXPECT_EQ(Status().health, ParticipantHealth::kServing);
  EXPECT_EQ(Status().circuit, CircuitState::kClosed);
  EXPECT_TRUE(dir_->Admit("pg").ok());
}

}  // namespace
}  // namespace txn::transport
