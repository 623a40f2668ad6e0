// The driver against an in-memory log and scripted in-process participants.
#include "coordinator/driver/transaction_driver.h"

#include <gtest/gtest.h>

#include <future>
#include <thread>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "protocol/three_phase_wire.h"
#include "protocol/three_phase_quorum.h"
#include "common/timer_queue.h"
#include "coordinator/log/group_commit_log.h"
#include "coordinator/log/memory_decision_log.h"

namespace txn::driver {
namespace {

using transport::Reply;

// A participant that answers at once, following a script.
class ScriptedChannel final : public transport::ParticipantChannel {
 public:
  explicit ScriptedChannel(std::string name) : name_(std::move(name)) {}
  const std::string& name() const override { return name_; }
  const std::string& address() const override { return name_; }
  void Describe(const v1::DescribeRequest&, int64_t, Reply<v1::DescribeResponse> done) override {
    done(v1::DescribeResponse());
  }

  void Execute(const v1::ExecuteBranchRequest& req, int64_t,
               Reply<v1::ExecuteBranchResponse> done) override {
    v1::ExecuteBranchResponse resp;
    resp.add_results()->set_rows_affected(1);
    done(resp);
  }
  void Prepare(const v1::PrepareBranchRequest& req, int64_t,
               Reply<v1::PrepareBranchResponse> done) override {
    {
      std::lock_guard<std::mutex> lock(mu);
      ++prepares;
      last_call_number = req.call_number();
      if (silent) return;  // never answers: the prepare timer must fire
    }
    if (prepare_error) return done(absl::UnavailableError("down"));
    if (req.three_phase_members_size() > 0 && vote != v1::VOTE_NO) {
      std::lock_guard<std::mutex> lock(mu);
      if (!record) {
        record = protocol::WaitingRecord(
            {req.three_phase_members().begin(), req.three_phase_members().end()});
      }
    }
    v1::PrepareBranchResponse resp;
    resp.set_vote(vote);
    resp.set_native_id("42");
    if (vote == v1::VOTE_NO) resp.set_reason("expected 1 rows affected, got 0");
    done(resp);
  }
  void Commit(const v1::CommitBranchRequest& req, int64_t,
              Reply<v1::CommitBranchResponse> done) override {
    int n;
    {
      std::lock_guard<std::mutex> lock(mu);
      n = ++commits;
      native_ids.push_back(req.native_id());
      if (req.three_phase()) {
        three_phase_calls.push_back("commit");
        record = protocol::OnDecision(record, core::Decision::kCommit).persist.value_or(*record);
      }
    }
    if (n <= commit_failures) return done(absl::UnavailableError("down"));
    v1::CommitBranchResponse resp;
    resp.set_result(v1::BRANCH_RESULT_COMMITTED);
    done(resp);
  }
  void Rollback(const v1::RollbackBranchRequest& req, int64_t,
                Reply<v1::RollbackBranchResponse> done) override {
    {
      std::lock_guard<std::mutex> lock(mu);
      ++rollbacks;
      if (req.three_phase()) three_phase_calls.push_back("rollback");
    }
    v1::RollbackBranchResponse resp;
    resp.set_result(v1::BRANCH_RESULT_ABORTED);
    done(resp);
  }
  void CommitOnePhase(const v1::CommitOnePhaseRequest& req, int64_t,
                      Reply<v1::CommitOnePhaseResponse> done) override {
    {
      std::lock_guard<std::mutex> lock(mu);
      ++one_phase;
      one_phase_requests.push_back(req);
    }
    v1::CommitOnePhaseResponse resp;
    resp.set_result(one_phase_result != v1::BRANCH_RESULT_UNSPECIFIED ? one_phase_result
                    : vote == v1::VOTE_NO                             ? v1::BRANCH_RESULT_ABORTED
                                          : v1::BRANCH_RESULT_COMMITTED);
    done(resp);
  }
  void ExecuteLocal(const v1::ExecuteLocalRequest& req, int64_t,
                    Reply<v1::ExecuteLocalResponse> done) override {
    Journal(absl::StrCat("step ", req.ref().branch(), "@", name_));
    if (no_sagas) return done(absl::UnimplementedError("this participant does not run saga steps"));
    {
      std::lock_guard<std::mutex> lock(mu);
      if (++local_calls <= local_transport_failures) return done(absl::UnavailableError("down"));
    }
    v1::ExecuteLocalResponse resp;
    resp.set_result(local_result);
    if (local_result == v1::LOCAL_RESULT_FAILED) resp.set_reason("insufficient funds");
    done(resp);
  }
  void Compensate(const v1::CompensateRequest& req, int64_t,
                  Reply<v1::CompensateResponse> done) override {
    Journal(absl::StrCat("compensate ", req.ref().branch(), "@", name_));
    if (no_sagas) return done(absl::UnimplementedError("this participant does not run saga steps"));
    {
      std::lock_guard<std::mutex> lock(mu);
      if (++compensate_calls <= compensate_failures) {
        v1::CompensateResponse failed;
        failed.set_result(v1::LOCAL_RESULT_FAILED);
        failed.set_reason("deadlock");
        return done(failed);
      }
    }
    v1::CompensateResponse resp;
    resp.set_result(v1::LOCAL_RESULT_DONE);
    done(resp);
  }
  // 3PC: a participant following the pure rules, its record in memory.
  void PreDecide(const v1::PreDecideRequest& req, int64_t,
                 Reply<v1::TerminationReply> done) override {
    v1::TerminationReply reply;
    {
      std::lock_guard<std::mutex> lock(mu);
      const protocol::Ballot b = protocol::BallotFromProto(req.ballot());
      three_phase_calls.push_back(absl::StrCat(
          req.direction() == v1::PRE_DECISION_PRE_COMMIT ? "pre_commit " : "pre_abort ",
          protocol::BallotString(b)));
      if (silent_at_b0 && b == protocol::InitialBallot()) return;  // lost: the ACK timer must fire
      protocol::Handled h = protocol::OnPreDecide(record, b,
                                          req.direction() == v1::PRE_DECISION_PRE_COMMIT
                                              ? protocol::Direction::kPreCommit
                                              : protocol::Direction::kPreAbort);
      if (h.persist) record = *h.persist;
      reply = protocol::ReplyToProto(h.reply);
    }
    done(reply);
  }
  void Elect(const v1::ElectRequest& req, int64_t, Reply<v1::TerminationReply> done) override {
    v1::TerminationReply reply;
    {
      std::lock_guard<std::mutex> lock(mu);
      const protocol::Ballot b = protocol::BallotFromProto(req.ballot());
      three_phase_calls.push_back(absl::StrCat("elect ", protocol::BallotString(b)));
      protocol::Handled h = protocol::OnElect(record, b);
      if (h.persist) record = *h.persist;
      reply = protocol::ReplyToProto(h.reply);
    }
    done(reply);
  }
  static void Journal(std::string entry) {
    std::lock_guard<std::mutex> lock(journal_mu);
    journal.push_back(std::move(entry));
  }
  static std::vector<std::string> TakeJournal() {
    std::lock_guard<std::mutex> lock(journal_mu);
    return std::exchange(journal, {});
  }
  static inline std::mutex journal_mu;
  static inline std::vector<std::string> journal;

  std::mutex mu;
  v1::LocalResult local_result = v1::LOCAL_RESULT_DONE;
  int local_transport_failures = 0, local_calls = 0;
  int compensate_failures = 0, compensate_calls = 0;
  bool no_sagas = false;                  // answers UNIMPLEMENTED, like a MongoDB agent
  std::optional<protocol::TpcRecord> record;  // 3PC
  bool silent_at_b0 = false;              // 3PC: PRE_COMMIT(B0) is never answered
  std::vector<std::string> three_phase_calls;
  v1::Vote vote = v1::VOTE_YES;
  bool prepare_error = false;
  bool silent = false;
  int commit_failures = 0;
  int prepares = 0, commits = 0, rollbacks = 0, one_phase = 0;
  uint64_t last_call_number = 0;  // of the last Prepare
  v1::BranchResult one_phase_result = v1::BRANCH_RESULT_UNSPECIFIED;
  std::vector<v1::CommitOnePhaseRequest> one_phase_requests;
  std::vector<std::string> native_ids;

 private:
  std::string name_;
};

class ScriptedDirectory final : public transport::ParticipantDirectory {
 public:
  ScriptedChannel* Add(const std::string& name) {
    auto& slot = channels_[name];
    slot = std::make_unique<ScriptedChannel>(name);
    return slot.get();
  }
  transport::ParticipantChannel* Find(const std::string& name) const override {
    auto it = channels_.find(name);
    return it == channels_.end() ? nullptr : it->second.get();
  }
  std::vector<std::string> Names() const override { return {}; }
  std::optional<transport::ParticipantCapabilities> CapabilitiesOf(
      const std::string& name) const override {
    if (cannot_prepare.count(name)) return transport::ParticipantCapabilities{false, 30'000};
    return transport::ParticipantCapabilities{};
  }
  absl::Status Admit(const std::string& name) override {
    if (circuit_open.count(name)) {
      return absl::UnavailableError("participant " + name + " is unavailable (circuit open)");
    }
    return absl::OkStatus();
  }
  std::vector<transport::ParticipantStatus> Statuses() const override {
    std::vector<transport::ParticipantStatus> out;
    for (const auto& [name, ch] : channels_) out.push_back({.name = name, .address = name});
    return out;
  }
  std::set<std::string> cannot_prepare;
  std::set<std::string> circuit_open;

 private:
  std::map<std::string, std::unique_ptr<ScriptedChannel>> channels_;
};

class TransactionDriverTest : public testing::Test {
 protected:
  void SetUp() override {
    orders_ = dir_.Add("orders");
    inventory_ = dir_.Add("inventory");
    MakeDriver();
  }
  void MakeDriver(const std::function<void(DriverOptions&)>& adjust = nullptr) {
    driver_.reset();
    group_ = std::make_unique<log::GroupCommitLog>(&log_);
    DriverOptions options;
    options.prepare_timeout_ms = 200;
    options.retry_backoff = {.initial_ms = 1, .max_ms = 5, .multiplier = 2};
    if (adjust) adjust(options);
    driver_ = std::make_unique<TransactionDriver>(
        DriverDeps{&log_, group_.get(), &dir_, &clock_, &timers_}, options);
    ASSERT_TRUE(driver_->Recover().ok());
  }
  static v1::RunRequest Transfer(bool wait = true) {
    v1::RunRequest req;
    req.set_protocol(v1::PROTOCOL_TWO_PHASE);
    req.set_wait_for_completion(wait);
    for (const char* p : {"orders", "inventory"}) {
      auto* b = req.add_branches();
      b->set_participant(p);
      b->add_operations()->mutable_sql()->set_text("UPDATE t SET a = 1");
    }
    return req;
  }
  absl::StatusOr<v1::Outcome> RunSync(const v1::RunRequest& req,
                                       const std::string& principal = "") {
    std::promise<absl::StatusOr<v1::Outcome>> p;
    driver_->Run(req, [&](absl::StatusOr<v1::Outcome> o) { p.set_value(o); }, principal);
    return p.get_future().get();
  }
  // The id of the one transaction in PREPARING (it waits for a silent participant's vote);
  // empty if none shows within 100 ms.
  std::string WaitForTheOnePreparing() {
    v1::ListTransactionsRequest preparing;
    preparing.add_states(v1::TXN_STATE_PREPARING);
    for (int i = 0; i < 100; ++i) {
      auto listed = driver_->ListTransactions(preparing);
      if (listed.ok() && listed->transactions_size() == 1) return listed->transactions(0).txn_id();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return "";
  }
  void WaitIdle() {
    for (int i = 0; i < 500 && driver_->active_count() > 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_EQ(driver_->active_count(), 0u);
  }

  common::ManualClock clock_;
  common::TimerQueue timers_;
  log::MemoryDecisionLog log_;
  std::unique_ptr<log::GroupCommitLog> group_;
  ScriptedDirectory dir_;
  ScriptedChannel* orders_;
  ScriptedChannel* inventory_;
  std::unique_ptr<TransactionDriver> driver_;
};

TEST_F(TransactionDriverTest, TwoBranchesCommitAndTheDecisionIsLogged) {
  auto out = RunSync(Transfer());
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->state(), v1::TXN_STATE_COMMITTED);
  EXPECT_EQ(orders_->commits, 1);
  EXPECT_EQ(inventory_->native_ids, std::vector<std::string>{"42"});
  WaitIdle();
  auto record = log_.Get(out->txn_id());
  ASSERT_TRUE(record.ok() && record->has_value());
  EXPECT_EQ((*record)->decision(), v1::DECISION_COMMIT);
  EXPECT_EQ(*driver_->GetDecision(out->txn_id()), v1::DECISION_COMMIT);
  auto txn = driver_->GetTransaction(out->txn_id());
  ASSERT_TRUE(txn.ok());
  EXPECT_EQ(txn->state(), v1::TXN_STATE_COMMITTED);
}

TEST_F(TransactionDriverTest, NoVoteAbortsWithoutLogRecordAndRollsBackTheOther) {
  inventory_->vote = v1::VOTE_NO;
  auto out = RunSync(Transfer());
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->state(), v1::TXN_STATE_ABORTED);
  EXPECT_NE(out->reason().find("inventory voted NO"), std::string::npos) << out->reason();
  WaitIdle();
  EXPECT_EQ(orders_->rollbacks, 1);
  EXPECT_EQ(orders_->commits, 0);
  EXPECT_FALSE(log_.Get(out->txn_id())->has_value()) << "presumed abort writes nothing";
  EXPECT_EQ(*driver_->GetDecision(out->txn_id()), v1::DECISION_ABORT);
}

TEST_F(TransactionDriverTest, SilentParticipantTimesOutAndAborts) {
  inventory_->silent = true;
  auto out = RunSync(Transfer());
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->state(), v1::TXN_STATE_ABORTED);
  EXPECT_NE(out->reason().find("timed out waiting for inventory"), std::string::npos);
}

TEST_F(TransactionDriverTest, CommitIsRetriedUntilAcknowledged) {
  orders_->commit_failures = 3;
  auto out = RunSync(Transfer(/*wait=*/true));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->state(), v1::TXN_STATE_COMMITTED);
  EXPECT_EQ(orders_->commits, 4);
}

TEST_F(TransactionDriverTest, SingleBranchUsesOnePhaseAndNoLog) {
  v1::RunRequest req = Transfer();
  req.mutable_branches()->RemoveLast();
  auto out = RunSync(req);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->state(), v1::TXN_STATE_COMMITTED);
  EXPECT_EQ(orders_->one_phase, 1);
  EXPECT_EQ(orders_->prepares, 0);
  EXPECT_FALSE(log_.Get(out->txn_id())->has_value());
}

// Found by the simulation (tests/sim): a one-phase commit has no COMMIT record, so its key lived
// only in memory and a retry after a restart ran the transfer a second time. A keyed
// single-branch transaction is prepared and logged instead.
TEST_F(TransactionDriverTest, KeyedSingleBranchIsLoggedSoARetryAfterARestartRunsOnce) {
  v1::RunRequest req = Transfer();
  req.mutable_branches()->RemoveLast();
  req.set_idempotency_key("order-1pc");
  auto out = RunSync(req);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->state(), v1::TXN_STATE_COMMITTED);
  // The COMMIT record with the key is durable by the time the client hears COMMITTED.
  auto record = log_.Get(out->txn_id());
  ASSERT_TRUE(record.ok() && record->has_value());
  EXPECT_EQ((*record)->idempotency_key(), "order-1pc");
  WaitIdle();
  // Its completion (done) is written after the answer, unsynced: it lands soon after.
  for (int i = 0; i < 200 && !(*log_.Get(out->txn_id()))->done(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE((*log_.Get(out->txn_id()))->done());
  MakeDriver();
  auto retry = RunSync(req);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_EQ(retry->txn_id(), out->txn_id());
  EXPECT_EQ(retry->state(), v1::TXN_STATE_COMMITTED);
  EXPECT_EQ(orders_->one_phase, 0);
  EXPECT_EQ(orders_->prepares, 1) << "the retry must not run the transfer again";
  EXPECT_EQ(driver_->GetDecision(out->txn_id()).value(), v1::DECISION_COMMIT);
}

TEST_F(TransactionDriverTest, BadRequestsAreRejectedBeforeAnythingStarts) {
  v1::RunRequest req = Transfer();
  req.set_protocol(v1::PROTOCOL_UNSPECIFIED);
  EXPECT_EQ(RunSync(req).status().code(), absl::StatusCode::kInvalidArgument);
  req = Transfer();
  req.clear_branches();
  EXPECT_EQ(RunSync(req).status().code(), absl::StatusCode::kInvalidArgument);
  req = Transfer();
  req.mutable_branches(1)->set_participant("nowhere");
  auto s = RunSync(req).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(s.message().find("branches[1].participant 'nowhere'"), std::string::npos) << s;
  req = Transfer();
  req.mutable_branches(0)->mutable_operations(0)->mutable_sql()->set_text("COMMIT");
  EXPECT_EQ(RunSync(req).status().code(), absl::StatusCode::kInvalidArgument);
  req = Transfer();
  req.mutable_branches(0)->add_compensations()->mutable_sql()->set_text("x");
  EXPECT_EQ(RunSync(req).status().code(), absl::StatusCode::kInvalidArgument);
  req = Transfer();
  req.set_protocol(v1::PROTOCOL_THREE_PHASE);
  req.mutable_branches(0)->mutable_operations(0)->mutable_sql()->set_text("COMMIT");
  EXPECT_EQ(RunSync(req).status().code(), absl::StatusCode::kInvalidArgument);
  req = Transfer();
  req.set_protocol(v1::PROTOCOL_SAGA);
  req.mutable_branches(1)->add_compensations()->mutable_sql()->set_text("COMMIT");
  EXPECT_EQ(RunSync(req).status().code(), absl::StatusCode::kInvalidArgument);
  v1::BeginRequest begin;
  begin.set_protocol(v1::PROTOCOL_SAGA);
  EXPECT_EQ(driver_->Begin(begin).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(orders_->prepares + inventory_->prepares, 0);
}

TEST_F(TransactionDriverTest, IdempotencyKeyReturnsTheOriginalOutcome) {
  v1::RunRequest req = Transfer();
  req.set_idempotency_key("order-17");
  auto first = RunSync(req);
  auto second = RunSync(req);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->txn_id(), second->txn_id());
  EXPECT_EQ(second->state(), v1::TXN_STATE_COMMITTED);
  EXPECT_EQ(orders_->prepares, 1);
  req.mutable_branches(0)->mutable_operations(0)->mutable_sql()->set_text("UPDATE t SET a = 2");
  EXPECT_EQ(RunSync(req).status().code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(TransactionDriverTest, IdempotencyKeySurvivesRestartForCommitted) {
  v1::RunRequest req = Transfer();
  req.set_idempotency_key("order-18");
  auto first = RunSync(req);
  WaitIdle();
  MakeDriver();
  auto second = RunSync(req);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->txn_id(), first->txn_id());
  EXPECT_EQ(orders_->prepares, 1);
}

// A crash between the COMMIT decision and the completion write: the restart that finishes the
// commit must keep the record's key, or a second restart forgets it and a retry runs again.
TEST_F(TransactionDriverTest, IdempotencyKeySurvivesTwoRestartsAfterACrashBeforeCompletion) {
  orders_->commit_failures = 1'000'000;  // the commit is decided but never acknowledged
  v1::RunRequest req = Transfer(/*wait=*/false);
  req.set_idempotency_key("order-19");
  auto first = RunSync(req);
  ASSERT_TRUE(first.ok()) << first.status();
  for (int i = 0; i < 200 && orders_->commits == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_GT(orders_->commits, 0) << "the decision is logged and the commit sent";
  {
    std::lock_guard<std::mutex> lock(orders_->mu);
    orders_->commit_failures = 0;
  }
  MakeDriver();  // restart 1 re-drives the commit, which now succeeds
  for (int i = 0; i < 400 && !(*log_.Get(first->txn_id()))->done(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE((*log_.Get(first->txn_id()))->done());
  EXPECT_EQ((*log_.Get(first->txn_id()))->idempotency_key(), "order-19");
  WaitIdle();
  MakeDriver();  // restart 2 knows the key only from the completed record
  const int prepares_before = orders_->prepares;
  auto retry = RunSync(req);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_EQ(retry->txn_id(), first->txn_id());
  EXPECT_EQ(retry->state(), v1::TXN_STATE_COMMITTED);
  EXPECT_EQ(orders_->prepares, prepares_before) << "the retry must not run the transfer again";
  req.mutable_branches(0)->mutable_operations(0)->mutable_sql()->set_text("UPDATE t SET a = 2");
  EXPECT_EQ(RunSync(req).status().code(), absl::StatusCode::kAlreadyExists)
      << "the fingerprint must survive too";
}

TEST_F(TransactionDriverTest, OwnerAndScopedKeySurviveARestart) {
  v1::RunRequest req = Transfer();
  req.set_idempotency_key("order-20");
  auto mine = RunSync(req, "alice");
  ASSERT_TRUE(mine.ok()) << mine.status();
  ASSERT_EQ(mine->state(), v1::TXN_STATE_COMMITTED);
  EXPECT_EQ((*log_.Get(mine->txn_id()))->owner(), "alice");
  WaitIdle();
  MakeDriver();
  // Only alice sees it; the principal "" (no tokens configured) sees everything.
  EXPECT_EQ(driver_->GetTransaction(mine->txn_id(), "alice")->owner(), "alice");
  EXPECT_EQ(driver_->GetTransaction(mine->txn_id(), "bob").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(driver_->GetTransaction(mine->txn_id()).ok());
  // Her key still finds it; bob's use of the same key is a transaction of his own.
  const int prepares_before = orders_->prepares;
  EXPECT_EQ(RunSync(req, "alice")->txn_id(), mine->txn_id());
  EXPECT_EQ(orders_->prepares, prepares_before);
  auto bobs = RunSync(req, "bob");
  ASSERT_TRUE(bobs.ok()) << bobs.status();
  EXPECT_NE(bobs->txn_id(), mine->txn_id());
}

TEST_F(TransactionDriverTest, RecoveryRedrivesALoggedCommit) {
  log::DecisionRecord r;
  r.set_txn_id("n1-1-5");
  r.set_decision(v1::DECISION_COMMIT);
  r.set_protocol(v1::PROTOCOL_TWO_PHASE);
  for (const char* p : {"orders", "inventory"}) {
    auto* b = r.add_branches();
    b->set_participant(p);
    b->set_state(static_cast<int>(core::BranchState::kPrepared));
    b->set_native_id("77");
  }
  ASSERT_TRUE(log_.Write({r}, true).ok());
  MakeDriver();
  WaitIdle();
  EXPECT_EQ(orders_->commits, 1);
  EXPECT_EQ(inventory_->native_ids, std::vector<std::string>{"77"});
  for (int i = 0; i < 200 && !(*log_.Get("n1-1-5"))->done(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE((*log_.Get("n1-1-5"))->done());
  EXPECT_EQ(*driver_->GetDecision("n1-1-5"), v1::DECISION_COMMIT);
}

TEST_F(TransactionDriverTest, NewIdsAfterRestartNeverRepeat) {
  auto a = RunSync(Transfer());
  MakeDriver();
  auto b = RunSync(Transfer());
  EXPECT_NE(a->txn_id(), b->txn_id());
}

TEST_F(TransactionDriverTest, GetDecisionPresumesAbortAndRejectsForeignIds) {
  EXPECT_EQ(*driver_->GetDecision("n1-" + log_.incarnation() + "-1-999"), v1::DECISION_ABORT);
  EXPECT_EQ(*driver_->GetDecision("n1-1-999"), v1::DECISION_UNKNOWN)
      << "an id from before incarnations may be an earlier log's commit";
  EXPECT_EQ(driver_->GetDecision("n2-1-1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(driver_->GetDecision("garbage").status().code(), absl::StatusCode::kInvalidArgument);
}

// The data folder is lost after a COMMIT decision whose commits did not all land: the new
// incarnation must not presume abort for the old transaction (that would roll back a branch of a
// transaction the client was told COMMITTED); it answers UNKNOWN, lists it, and takes an
// operator's decision for it.
TEST_F(TransactionDriverTest, AReplacedDataFolderAnswersUnknownForTheOldIncarnationsIds) {
  orders_->commit_failures = 1'000'000;
  auto committed = RunSync(Transfer(/*wait=*/false));
  ASSERT_TRUE(committed.ok()) << committed.status();
  for (int i = 0; i < 200 && orders_->commits == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(*driver_->GetDecision(committed->txn_id()), v1::DECISION_COMMIT);
  driver_.reset();

  log::MemoryDecisionLog new_folder("0000000b");
  log::GroupCommitLog group(&new_folder);
  DriverOptions options;
  options.prepare_timeout_ms = 200;
  TransactionDriver driver(DriverDeps{&new_folder, &group, &dir_, &clock_, &timers_}, options);
  ASSERT_TRUE(driver.Recover().ok());
  EXPECT_EQ(*driver.GetDecision(committed->txn_id()), v1::DECISION_UNKNOWN);
  EXPECT_EQ(*driver.GetDecision(committed->txn_id()), v1::DECISION_UNKNOWN) << "asked again";
  v1::ListTransactionsRequest list;
  list.add_states(v1::TXN_STATE_IN_DOUBT);
  auto listed = driver.ListTransactions(list);
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->transactions_size(), 1);
  EXPECT_EQ(listed->transactions(0).txn_id(), committed->txn_id());
  EXPECT_NE(listed->transactions(0).reason().find("incarnation " + log_.incarnation()),
            std::string::npos)
      << listed->transactions(0).reason();
  // New ids never repeat the old incarnation's.
  v1::BeginRequest begin;
  begin.set_protocol(v1::PROTOCOL_TWO_PHASE);
  auto fresh = driver.Begin(begin);
  ASSERT_TRUE(fresh.ok());
  EXPECT_NE(fresh->txn_id().find("-0000000b-"), std::string::npos) << fresh->txn_id();
  EXPECT_EQ(*driver.GetDecision("n1-0000000b-1-999"), v1::DECISION_ABORT) << "its own: presumed";

  v1::ResolveTransactionRequest resolve;
  resolve.set_txn_id(committed->txn_id());
  resolve.set_decision(v1::DECISION_COMMIT);
  std::promise<absl::StatusOr<v1::Outcome>> resolved;
  driver.ResolveTransaction(resolve, [&](absl::StatusOr<v1::Outcome> o) { resolved.set_value(o); });
  auto outcome = resolved.get_future().get();
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_EQ(outcome->state(), v1::TXN_STATE_COMMITTED);
  EXPECT_EQ(*driver.GetDecision(committed->txn_id()), v1::DECISION_COMMIT);
  listed = driver.ListTransactions(list);
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->transactions_size(), 0) << "resolved: no longer in doubt";
}

TEST_F(TransactionDriverTest, InteractiveBeginExecuteCommit) {
  v1::BeginRequest begin;
  begin.set_protocol(v1::PROTOCOL_TWO_PHASE);
  auto txn = driver_->Begin(begin);
  ASSERT_TRUE(txn.ok());
  for (const char* p : {"orders", "inventory", "orders"}) {
    v1::ExecuteRequest ex;
    ex.set_txn_id(txn->txn_id());
    ex.set_participant(p);
    ex.mutable_operation()->mutable_sql()->set_text("UPDATE t SET a = 1");
    std::promise<absl::StatusOr<v1::ExecuteResult>> p1;
    driver_->Execute(ex, [&](absl::StatusOr<v1::ExecuteResult> r) { p1.set_value(r); });
    ASSERT_TRUE(p1.get_future().get().ok());
  }
  v1::CommitRequest commit;
  commit.set_txn_id(txn->txn_id());
  commit.set_wait_for_completion(true);
  std::promise<absl::StatusOr<v1::Outcome>> p2;
  driver_->Commit(commit, [&](absl::StatusOr<v1::Outcome> o) { p2.set_value(o); });
  auto out = p2.get_future().get();
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->state(), v1::TXN_STATE_COMMITTED);
  EXPECT_EQ(out->branches_size(), 2);
  // Execute after Commit is refused, naming the state.
  v1::ExecuteRequest late;
  late.set_txn_id(txn->txn_id());
  late.set_participant("orders");
  late.mutable_operation()->mutable_sql()->set_text("UPDATE t SET a = 1");
  std::promise<absl::StatusOr<v1::ExecuteResult>> p3;
  driver_->Execute(late, [&](absl::StatusOr<v1::ExecuteResult> r) { p3.set_value(r); });
  EXPECT_EQ(p3.get_future().get().status().code(), absl::StatusCode::kFailedPrecondition);
  // A retried Commit gets the same answer.
  std::promise<absl::StatusOr<v1::Outcome>> p4;
  driver_->Commit(commit, [&](absl::StatusOr<v1::Outcome> o) { p4.set_value(o); });
  EXPECT_EQ(p4.get_future().get()->state(), v1::TXN_STATE_COMMITTED);
}

TEST_F(TransactionDriverTest, APrincipalAtItsInFlightLimitIsRefusedAndOthersAreNot) {
  MakeDriver([](DriverOptions& o) { o.max_active_per_principal = 2; });
  v1::BeginRequest begin;
  begin.set_protocol(v1::PROTOCOL_TWO_PHASE);
  auto first = driver_->Begin(begin, "alice");
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(driver_->Begin(begin, "alice").ok());
  absl::Status refused = driver_->Begin(begin, "alice").status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(refused.message().find("--max-active-per-principal"), absl::string_view::npos);
  v1::RunRequest keyed = Transfer();
  keyed.set_idempotency_key("pay-1");
  EXPECT_EQ(RunSync(keyed, "alice").status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(orders_->prepares, 0);
  // Others are not held back by alice; the anonymous principal has no limit of its own.
  ASSERT_TRUE(driver_->Begin(begin, "bob").ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(driver_->Begin(begin, "").ok());
  // A finished transaction frees its slot, and the refused key was given back: its retry runs.
  v1::RollbackRequest rollback;
  rollback.set_txn_id(first->txn_id());
  std::promise<absl::StatusOr<v1::Outcome>> rolled;
  driver_->Rollback(rollback, [&](absl::StatusOr<v1::Outcome> o) { rolled.set_value(o); },
                    "alice");
  ASSERT_TRUE(rolled.get_future().get().ok());
  for (int i = 0; i < 200 && RunSync(keyed, "alice").status().code() ==
                                 absl::StatusCode::kResourceExhausted;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  auto ran = RunSync(keyed, "alice");
  ASSERT_TRUE(ran.ok()) << ran.status();
  EXPECT_EQ(ran->state(), v1::TXN_STATE_COMMITTED);
  EXPECT_EQ(orders_->prepares, 1);
}

TEST_F(TransactionDriverTest, InteractiveDeadlineRollsBack) {
  v1::BeginRequest begin;
  begin.set_protocol(v1::PROTOCOL_TWO_PHASE);
  begin.set_timeout_ms(50);
  auto txn = driver_->Begin(begin);
  v1::ExecuteRequest ex;
  ex.set_txn_id(txn->txn_id());
  ex.set_participant("orders");
  ex.mutable_operation()->mutable_sql()->set_text("UPDATE t SET a = 1");
  std::promise<absl::StatusOr<v1::ExecuteResult>> p1;
  driver_->Execute(ex, [&](absl::StatusOr<v1::ExecuteResult> r) { p1.set_value(r); });
  ASSERT_TRUE(p1.get_future().get().ok());
  WaitIdle();
  EXPECT_EQ(orders_->rollbacks, 1);
  auto t = driver_->GetTransaction(txn->txn_id());
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->state(), v1::TXN_STATE_ABORTED);
  EXPECT_NE(t->reason().find("deadline"), std::string::npos);
}

TEST_F(TransactionDriverTest, LastResourceCommitsLastWithItsOperations) {
  dir_.cannot_prepare = {"inventory"};
  auto out = RunSync(Transfer());
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->state(), v1::TXN_STATE_COMMITTED);
  EXPECT_EQ(inventory_->prepares, 0) << "a last resource is never asked to prepare";
  ASSERT_EQ(inventory_->one_phase_requests.size(), 1u);
  EXPECT_TRUE(inventory_->one_phase_requests[0].begin());
  EXPECT_EQ(inventory_->one_phase_requests[0].operations_size(), 1);
  EXPECT_EQ(orders_->commits, 1);
  WaitIdle();
  auto record = log_.Get(out->txn_id());
  ASSERT_TRUE(record.ok() && record->has_value());
  EXPECT_EQ((*record)->decision(), v1::DECISION_COMMIT);
  EXPECT_EQ((*record)->last_resource(), 1u);
}

TEST_F(TransactionDriverTest, LastResourceAbortRollsBackTheOthers) {
  dir_.cannot_prepare = {"inventory"};
  inventory_->one_phase_result = v1::BRANCH_RESULT_ABORTED;
  auto out = RunSync(Transfer());
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->state(), v1::TXN_STATE_ABORTED);
  WaitIdle();
  EXPECT_EQ(orders_->rollbacks, 1);
  EXPECT_EQ(orders_->commits, 0);
  EXPECT_EQ(*driver_->GetDecision(out->txn_id()), v1::DECISION_ABORT);
}

TEST_F(TransactionDriverTest, TwoLastResourcesAreRefused) {
  dir_.cannot_prepare = {"inventory", "orders"};
  auto s = RunSync(Transfer()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("allow_heuristic"), std::string::npos);
  EXPECT_EQ(orders_->prepares + inventory_->one_phase, 0);
}

TEST_F(TransactionDriverTest, AllowHeuristicCommitsTwoNonPreparableBranchesOnePhaseEach) {
  dir_.cannot_prepare = {"inventory", "orders"};
  v1::RunRequest req = Transfer();
  req.set_allow_heuristic(true);
  auto out = RunSync(req);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->state(), v1::TXN_STATE_COMMITTED);
  EXPECT_EQ(orders_->prepares + inventory_->prepares, 0);
  EXPECT_EQ(orders_->one_phase + inventory_->one_phase, 2);
}

TEST_F(TransactionDriverTest, AllowHeuristicReportsAMixedOutcome) {
  dir_.cannot_prepare = {"inventory", "orders"};
  inventory_->one_phase_result = v1::BRANCH_RESULT_ABORTED;  // the second one, after COMMIT
  v1::RunRequest req = Transfer();
  req.set_allow_heuristic(true);
  auto out = RunSync(req);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->state(), v1::TXN_STATE_HEURISTIC_MIXED);
  EXPECT_EQ(out->branches(1).state(), v1::BRANCH_STATE_HEURISTIC);
}

TEST_F(TransactionDriverTest, LastResourceTimeoutBeyondItsLifetimeIsRefused) {
  dir_.cannot_prepare = {"inventory"};
  v1::RunRequest req = Transfer();
  req.set_timeout_ms(60'000);
  auto s = RunSync(req).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("lifetime limit of 30000 ms"), std::string::npos) << s;
}

TEST_F(TransactionDriverTest, RecoveryAsksTheLastResourceThenFinishes) {
  log::DecisionRecord r;
  r.set_txn_id("n1-1-9");
  r.set_committing_last(true);
  r.set_last_resource(1);
  r.set_protocol(v1::PROTOCOL_TWO_PHASE);
  auto* b0 = r.add_branches();
  b0->set_participant("orders");
  b0->set_state(static_cast<int>(core::BranchState::kPrepared));
  auto* b1 = r.add_branches();
  b1->set_participant("inventory");
  b1->set_state(static_cast<int>(core::BranchState::kActive));
  ASSERT_TRUE(log_.Write({r}, true).ok());
  MakeDriver();
  WaitIdle();
  ASSERT_EQ(inventory_->one_phase_requests.size(), 1u);
  EXPECT_TRUE(inventory_->one_phase_requests[0].retry()) << "a query, never a second commit";
  EXPECT_EQ(orders_->commits, 1);
  EXPECT_EQ((*log_.Get("n1-1-9"))->decision(), v1::DECISION_COMMIT);
}

// A log whose writes can be made to fail, like a full or broken disk.
class FlakyLog final : public log::DecisionLog {
 public:
  absl::Status Write(const std::vector<log::DecisionRecord>& r, bool sync) override {
    if (failing) return absl::UnavailableError("IO error: No space left on device");
    return inner.Write(r, sync);
  }
  absl::StatusOr<std::optional<log::DecisionRecord>> Get(absl::string_view id) override {
    return inner.Get(id);
  }
  absl::Status Delete(absl::string_view id) override { return inner.Delete(id); }
  absl::Status ForEach(const std::function<bool(const log::DecisionRecord&)>& fn) override {
    return inner.ForEach(fn);
  }
  absl::StatusOr<uint64_t> NextEpoch() override {
    if (failing) return absl::UnavailableError("IO error: No space left on device");
    return inner.NextEpoch();
  }
  const std::string& incarnation() const override { return inner.incarnation(); }
  std::atomic<bool> failing{false};
  log::MemoryDecisionLog inner;
};

TEST_F(TransactionDriverTest, FailedDecisionWriteFailsClosedUntilTheLogWorks) {
  FlakyLog flaky;
  log::GroupCommitLog group(&flaky);
  TransactionDriver driver(DriverDeps{&flaky, &group, &dir_, &clock_, &timers_}, DriverOptions{});
  ASSERT_TRUE(driver.Recover().ok());
  auto run = [&](const v1::RunRequest& req) {
    std::promise<absl::StatusOr<v1::Outcome>> p;
    driver.Run(req, [&](absl::StatusOr<v1::Outcome> o) { p.set_value(o); });
    return p.get_future().get();
  };
  flaky.failing = true;
  auto first = run(Transfer());
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->state(), v1::TXN_STATE_IN_DOUBT) << "never a guessed COMMITTED or ABORTED";
  EXPECT_EQ(orders_->commits, 0) << "no Commit without a durable decision";
  EXPECT_FALSE(driver.accepting());
  EXPECT_EQ(run(Transfer()).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(driver.ProbeLog().ok());
  flaky.failing = false;
  EXPECT_TRUE(driver.ProbeLog().ok());
  EXPECT_TRUE(driver.accepting());
  auto later = run(Transfer());
  ASSERT_TRUE(later.ok());
  EXPECT_EQ(later->state(), v1::TXN_STATE_COMMITTED);
}

TEST_F(TransactionDriverTest, UnknownTransactionIsNotFound) {
  EXPECT_EQ(driver_->GetTransaction("n1-1-12345").status().code(), absl::StatusCode::kNotFound);
  std::promise<absl::StatusOr<v1::Outcome>> p;
  v1::CommitRequest c;
  c.set_txn_id("n1-1-12345");
  driver_->Commit(c, [&](absl::StatusOr<v1::Outcome> o) { p.set_value(o); });
  EXPECT_EQ(p.get_future().get().status().code(), absl::StatusCode::kNotFound);
}

TEST_F(TransactionDriverTest, OpenCircuitFailsNewTransactionsFastAndSendsNothing) {
  dir_.circuit_open.insert("inventory");
  auto out = RunSync(Transfer());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(out.status().message().find("inventory"), std::string::npos);
  EXPECT_EQ(orders_->prepares, 0);
  EXPECT_EQ(driver_->active_count(), 0u);

  v1::BeginRequest begin;
  begin.set_protocol(v1::PROTOCOL_TWO_PHASE);
  auto txn = driver_->Begin(begin);
  ASSERT_TRUE(txn.ok());
  v1::ExecuteRequest exec;
  exec.set_txn_id(txn->txn_id());
  exec.set_participant("inventory");
  exec.mutable_operation()->mutable_sql()->set_text("UPDATE t SET a = 1");
  std::promise<absl::StatusOr<v1::ExecuteResult>> p;
  driver_->Execute(exec, [&](absl::StatusOr<v1::ExecuteResult> r) { p.set_value(r); });
  EXPECT_EQ(p.get_future().get().status().code(), absl::StatusCode::kUnavailable);

  dir_.circuit_open.clear();
  auto later = RunSync(Transfer());
  ASSERT_TRUE(later.ok());
  EXPECT_EQ(later->state(), v1::TXN_STATE_COMMITTED);
}

TEST_F(TransactionDriverTest, ListTransactionsFiltersByStateInIdOrderAndPages) {
  std::vector<std::string> committed;
  for (int i = 0; i < 3; ++i) committed.push_back(RunSync(Transfer())->txn_id());
  inventory_->vote = v1::VOTE_NO;
  const std::string aborted = RunSync(Transfer())->txn_id();
  WaitIdle();

  v1::ListTransactionsRequest req;
  req.add_states(v1::TXN_STATE_COMMITTED);
  req.set_limit(2);
  auto page = driver_->ListTransactions(req);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->transactions_size(), 2);
  EXPECT_EQ(page->transactions(0).txn_id(), committed[0]);
  EXPECT_EQ(page->transactions(1).txn_id(), committed[1]);
  ASSERT_EQ(page->next_page_token(), committed[1]);
  req.set_page_token(page->next_page_token());
  page = driver_->ListTransactions(req);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->transactions_size(), 1);
  EXPECT_EQ(page->transactions(0).txn_id(), committed[2]);
  EXPECT_TRUE(page->next_page_token().empty());

  v1::ListTransactionsRequest aborted_only;
  aborted_only.add_states(v1::TXN_STATE_ABORTED);
  page = driver_->ListTransactions(aborted_only);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->transactions_size(), 1);
  EXPECT_EQ(page->transactions(0).txn_id(), aborted);

  v1::ListTransactionsRequest bad;
  bad.add_states(static_cast<v1::TxnState>(77));
  EXPECT_EQ(driver_->ListTransactions(bad).status().code(), absl::StatusCode::kInvalidArgument);
  bad.Clear();
  bad.set_limit(5000);
  EXPECT_EQ(driver_->ListTransactions(bad).status().code(), absl::StatusCode::kInvalidArgument);
}

absl::StatusOr<v1::Outcome> Resolve(TransactionDriver& driver, const std::string& txn_id,
                                    v1::Decision d) {
  v1::ResolveTransactionRequest req;
  req.set_txn_id(txn_id);
  req.set_decision(d);
  std::promise<absl::StatusOr<v1::Outcome>> p;
  driver.ResolveTransaction(req, [&](absl::StatusOr<v1::Outcome> o) { p.set_value(o); });
  return p.get_future().get();
}

TEST_F(TransactionDriverTest, ResolveAnInDoubtTransactionAfterTheLogWorksAgain) {
  FlakyLog flaky;
  log::GroupCommitLog group(&flaky);
  TransactionDriver driver(DriverDeps{&flaky, &group, &dir_, &clock_, &timers_}, DriverOptions{});
  ASSERT_TRUE(driver.Recover().ok());
  flaky.failing = true;
  std::promise<absl::StatusOr<v1::Outcome>> p;
  driver.Run(Transfer(), [&](absl::StatusOr<v1::Outcome> o) { p.set_value(o); });
  auto first = p.get_future().get();
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->state(), v1::TXN_STATE_IN_DOUBT);

  v1::ListTransactionsRequest in_doubt;
  in_doubt.add_states(v1::TXN_STATE_IN_DOUBT);
  auto listed = driver.ListTransactions(in_doubt);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->transactions_size(), 1);
  EXPECT_EQ(listed->transactions(0).txn_id(), first->txn_id());

  // While the disk still fails, the resolution cannot be written: still in doubt, nothing sent.
  ASSERT_TRUE(Resolve(driver, first->txn_id(), v1::DECISION_ABORT).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(driver.GetTransaction(first->txn_id())->state(), v1::TXN_STATE_IN_DOUBT);
  EXPECT_EQ(orders_->rollbacks, 0);

  flaky.failing = false;
  absl::StatusOr<v1::Outcome> resolved;
  for (int i = 0; i < 100; ++i) {  // until the failed write has been reported
    resolved = Resolve(driver, first->txn_id(), v1::DECISION_ABORT);
    if (resolved.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  for (int i = 0; i < 500 && driver.active_count() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_EQ(driver.GetTransaction(first->txn_id())->state(), v1::TXN_STATE_ABORTED);
  EXPECT_EQ(orders_->rollbacks, 1);
  EXPECT_EQ(orders_->commits, 0);
  auto record = flaky.inner.Get(first->txn_id());
  ASSERT_TRUE(record.ok() && record->has_value()) << "the ABORT replaces any COMMIT on disk";
  EXPECT_EQ((*record)->decision(), v1::DECISION_ABORT);
  EXPECT_EQ(*driver.GetDecision(first->txn_id()), v1::DECISION_ABORT);

  auto again = Resolve(driver, first->txn_id(), v1::DECISION_COMMIT);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(TransactionDriverTest, ResolveRefusesWhatItCannotDo) {
  auto done = RunSync(Transfer());
  ASSERT_TRUE(done.ok());
  WaitIdle();
  auto r = Resolve(*driver_, done->txn_id(), v1::DECISION_ABORT);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("COMMITTED"), std::string::npos) << r.status();
  EXPECT_EQ(Resolve(*driver_, "n1-" + log_.incarnation() + "-1-999999", v1::DECISION_ABORT)
                .status()
                .code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(Resolve(*driver_, done->txn_id(), v1::DECISION_UNKNOWN).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Resolve(*driver_, "nope", v1::DECISION_ABORT).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(TransactionDriverTest, ResolveAbortsAnUndecidedTransaction) {
  inventory_->silent = true;  // never votes
  std::promise<absl::StatusOr<v1::Outcome>> p;
  driver_->Run(Transfer(), [&](absl::StatusOr<v1::Outcome> o) { p.set_value(o); });
  const std::string id = WaitForTheOnePreparing();
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(Resolve(*driver_, id, v1::DECISION_COMMIT).status().code(),
            absl::StatusCode::kFailedPrecondition);
  auto r = Resolve(*driver_, id, v1::DECISION_ABORT);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->state(), v1::TXN_STATE_ABORTED);
  auto client = p.get_future().get();
  ASSERT_TRUE(client.ok());
  EXPECT_EQ(client->state(), v1::TXN_STATE_ABORTED);
  EXPECT_EQ(client->reason(), "aborted by an operator");
}

TEST_F(TransactionDriverTest, ADeadlockVictimIsTakenOnlyWhileItsWaitingCallIsInFlightAndUndecided) {
  inventory_->silent = true;  // its Prepare "waits for a lock" and never answers
  std::promise<absl::StatusOr<v1::Outcome>> p;
  driver_->Run(Transfer(), [&](absl::StatusOr<v1::Outcome> o) { p.set_value(o); });
  const std::string id = WaitForTheOnePreparing();
  ASSERT_FALSE(id.empty());
  uint64_t call = 0;
  {
    std::lock_guard<std::mutex> lock(inventory_->mu);
    call = inventory_->last_call_number;
  }
  ASSERT_NE(call, 0u);
  core::WaitEdge wait{id, "n1-9-9", "inventory", "", 80, call};
  std::optional<core::MemberStanding> standing = driver_->DeadlockStanding(wait);
  ASSERT_TRUE(standing.has_value());
  EXPECT_TRUE(standing->executing);
  // A wait of another call (an earlier one, whose statement timed out) is not this one.
  core::WaitEdge other_call = wait;
  other_call.waiter_call = call + 7;
  EXPECT_FALSE(driver_->DeadlockStanding(other_call)->executing);
  // orders has voted: its call returned, so no wait of it can be current.
  core::WaitEdge voted = wait;
  voted.participant = "orders";
  EXPECT_FALSE(driver_->DeadlockStanding(voted)->executing);
  EXPECT_FALSE(driver_->DeadlockStanding(core::WaitEdge{"n1-9-9", id, "orders"}).has_value());

  ASSERT_TRUE(driver_->AbortDeadlockVictim(id, "chosen as the victim of a deadlock"));
  auto client = p.get_future().get();
  ASSERT_TRUE(client.ok());
  EXPECT_EQ(client->state(), v1::TXN_STATE_ABORTED);
  EXPECT_EQ(client->reason(), "chosen as the victim of a deadlock");
  EXPECT_FALSE(driver_->AbortDeadlockVictim(id, "again"));
}

TEST_F(TransactionDriverTest, ADecidedTransactionIsNeverADeadlockVictim) {
  orders_->commit_failures = 1'000'000;  // stays COMMITTING, decision logged
  std::promise<absl::StatusOr<v1::Outcome>> p;
  driver_->Run(Transfer(/*wait=*/false), [&](absl::StatusOr<v1::Outcome> o) { p.set_value(o); });
  auto out = p.get_future().get();
  ASSERT_TRUE(out.ok());
  ASSERT_EQ(out->state(), v1::TXN_STATE_COMMITTED);
  EXPECT_FALSE(driver_->AbortDeadlockVictim(out->txn_id(), "victim"));
  std::optional<core::MemberStanding> s =
      driver_->DeadlockStanding(core::WaitEdge{out->txn_id(), "", "orders", "", 80, 1});
  ASSERT_TRUE(s.has_value());  // still in memory, committing
  EXPECT_FALSE(s->executing);
  EXPECT_EQ(*driver_->GetDecision(out->txn_id()), v1::DECISION_COMMIT);
}

TEST_F(TransactionDriverTest, StatsCountFinishedAndActiveTransactions) {
  ASSERT_TRUE(RunSync(Transfer()).ok());
  inventory_->vote = v1::VOTE_NO;
  ASSERT_TRUE(RunSync(Transfer()).ok());
  WaitIdle();
  auto stats = driver_->GetStats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->finished_by_state().at("TXN_STATE_COMMITTED"), 1u);
  EXPECT_EQ(stats->finished_by_state().at("TXN_STATE_ABORTED"), 1u);
  EXPECT_EQ(stats->log_records(), 1u) << "only the COMMIT is logged";
  EXPECT_TRUE(stats->accepting());
  EXPECT_TRUE(stats->active_by_state().empty());
}

// --- sagas ---

v1::RunRequest Saga(int steps) {
  v1::RunRequest req;
  req.set_protocol(v1::PROTOCOL_SAGA);
  for (int i = 0; i < steps; ++i) {
    auto* b = req.add_branches();
    b->set_participant(i % 2 == 0 ? "orders" : "inventory");
    b->add_operations()->mutable_sql()->set_text("UPDATE t SET a = a - 1");
    b->add_compensations()->mutable_sql()->set_text("UPDATE t SET a = a + 1");
  }
  return req;
}

TEST_F(TransactionDriverTest, SagaRunsEveryStepInOrderAndCommits) {
  ScriptedChannel::TakeJournal();
  auto out = RunSync(Saga(3));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->state(), v1::TXN_STATE_COMMITTED);
  EXPECT_EQ(ScriptedChannel::TakeJournal(),
            (std::vector<std::string>{"step 0@orders", "step 1@inventory", "step 2@orders"}));
  EXPECT_EQ(orders_->prepares, 0) << "no 2PC";
  WaitIdle();
  auto t = driver_->GetTransaction(out->txn_id());
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->protocol(), v1::PROTOCOL_SAGA);
  EXPECT_EQ(t->state(), v1::TXN_STATE_COMMITTED);
}

TEST_F(TransactionDriverTest, SagaFailureCompensatesTheDoneStepsInReverse) {
  ScriptedChannel::TakeJournal();
  // Step 2 runs on orders (steps alternate), step 1 on inventory: make inventory fail.
  inventory_->local_result = v1::LOCAL_RESULT_FAILED;
  auto out = RunSync(Saga(3));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->state(), v1::TXN_STATE_ABORTED);
  EXPECT_NE(out->reason().find("step 1 (participant inventory) failed: insufficient funds"),
            std::string::npos)
      << out->reason();
  EXPECT_EQ(ScriptedChannel::TakeJournal(),
            (std::vector<std::string>{"step 0@orders", "step 1@inventory", "compensate 1@inventory",
                                      "compensate 0@orders"}));
  EXPECT_EQ(out->branches(0).state(), v1::BRANCH_STATE_COMPENSATED);
  EXPECT_EQ(out->branches(2).state(), v1::BRANCH_STATE_ACTIVE) << "never ran";
}

TEST_F(TransactionDriverTest, SagaStepOnAParticipantWithoutSagasFailsAndCompensatesCleanly) {
  inventory_->no_sagas = true;
  auto out = RunSync(Saga(2));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->state(), v1::TXN_STATE_ABORTED) << out->reason();
  EXPECT_NE(out->reason().find("does not run saga steps"), std::string::npos);
  EXPECT_EQ(out->branches(1).state(), v1::BRANCH_STATE_COMPENSATED);
  EXPECT_EQ(orders_->compensate_calls, 1);
}

TEST_F(TransactionDriverTest, SagaStepWithLostAnswersIsRetried) {
  orders_->local_transport_failures = 2;
  auto out = RunSync(Saga(1));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->state(), v1::TXN_STATE_COMMITTED);
  EXPECT_EQ(orders_->local_calls, 3);
}

TEST_F(TransactionDriverTest, SagaCompensationThatKeepsFailingIsFailedCompensationAndKept) {
  inventory_->local_result = v1::LOCAL_RESULT_FAILED;
  orders_->compensate_failures = 1000;
  auto out = RunSync(Saga(2));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->state(), v1::TXN_STATE_FAILED_COMPENSATION);
  EXPECT_EQ(out->branches(0).state(), v1::BRANCH_STATE_HEURISTIC);
  EXPECT_EQ(orders_->compensate_calls, core::kMaxCompensationAttempts);
  WaitIdle();
  v1::ListTransactionsRequest req;
  req.add_states(v1::TXN_STATE_FAILED_COMPENSATION);
  auto listed = driver_->ListTransactions(req);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->transactions_size(), 1);
  for (int i = 0; i < 500; ++i) {  // the final record is written after the client's answer
    auto r = log_.Get(out->txn_id());
    if (r.ok() && r->has_value() && (*r)->done()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  clock_.Advance(int64_t{48} * 3600 * 1000);
  ASSERT_TRUE(driver_->CollectGarbage().ok());
  auto record = log_.Get(out->txn_id());
  ASSERT_TRUE(record.ok() && record->has_value()) << "never collected";
  EXPECT_EQ((*record)->state(), v1::TXN_STATE_FAILED_COMPENSATION);
}

TEST_F(TransactionDriverTest, SagaIsResumedFromTheLogAfterARestart) {
  // A saga whose step 0 is done and whose step 1 had not answered when the coordinator died.
  log::DecisionRecord r;
  r.set_txn_id("n1-1-77");
  r.set_protocol(v1::PROTOCOL_SAGA);
  r.set_state(v1::TXN_STATE_ACTIVE);
  v1::RunRequest req = Saga(2);
  for (int i = 0; i < 2; ++i) {
    auto* b = r.add_branches();
    b->set_participant(req.branches(i).participant());
    b->set_state(i == 0 ? v1::BRANCH_STATE_COMMITTED : v1::BRANCH_STATE_PREPARING);
    *r.add_saga_steps() = req.branches(i);
  }
  ASSERT_TRUE(log_.Write({r}, true).ok());
  ScriptedChannel::TakeJournal();
  MakeDriver();
  WaitIdle();
  EXPECT_EQ(ScriptedChannel::TakeJournal(), std::vector<std::string>{"step 1@inventory"});
  auto t = driver_->GetTransaction("n1-1-77");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->state(), v1::TXN_STATE_COMMITTED);
  bool done = false;
  for (int i = 0; i < 500 && !done; ++i) {  // the final record lands after the saga is finished
    auto rec = log_.Get("n1-1-77");
    done = rec.ok() && rec->has_value() && (*rec)->done();
    if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_TRUE(done);
}

TEST_F(TransactionDriverTest, SagaIsNotDrivenByCommitOrResolve) {
  orders_->local_transport_failures = 1000;  // keeps the saga running
  std::promise<absl::StatusOr<v1::Outcome>> p;
  driver_->Run(Saga(1), [&](absl::StatusOr<v1::Outcome> o) { p.set_value(o); });
  std::string id;
  for (int i = 0; i < 100 && id.empty(); ++i) {
    auto listed = driver_->ListTransactions(v1::ListTransactionsRequest());
    if (listed.ok() && listed->transactions_size() == 1) id = listed->transactions(0).txn_id();
  }
  ASSERT_FALSE(id.empty());
  v1::CommitRequest commit;
  commit.set_txn_id(id);
  std::promise<absl::StatusOr<v1::Outcome>> c;
  driver_->Commit(commit, [&](absl::StatusOr<v1::Outcome> o) { c.set_value(o); });
  EXPECT_EQ(c.get_future().get().status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Resolve(*driver_, id, v1::DECISION_ABORT).status().code(),
            absl::StatusCode::kFailedPrecondition);
  orders_->local_transport_failures = 0;
  auto out = p.get_future().get();
  ASSERT_TRUE(out.ok());
}

// ---- Three-phase commit ----

class ThreePhaseDriverTest : public TransactionDriverTest {
 protected:
  void SetUp() override {
    TransactionDriverTest::SetUp();
    ledger_ = dir_.Add("ledger");
  }
  static v1::RunRequest ThreePhase(bool wait = true) {
    v1::RunRequest req;
    req.set_protocol(v1::PROTOCOL_THREE_PHASE);
    req.set_wait_for_completion(wait);
    for (const char* p : {"orders", "inventory", "ledger"}) {
      auto* b = req.add_branches();
      b->set_participant(p);
      b->add_operations()->mutable_sql()->set_text("UPDATE t SET a = 1");
    }
    return req;
  }
  std::vector<ScriptedChannel*> all() { return {orders_, inventory_, ledger_}; }
  ScriptedChannel* ledger_;
};

TEST_F(ThreePhaseDriverTest, CommitsAfterPreCommitAndLogsStartFirst) {
  auto out = RunSync(ThreePhase());
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->state(), v1::TXN_STATE_COMMITTED) << out->reason();
  WaitIdle();
  for (ScriptedChannel* ch : all()) {
    EXPECT_EQ(ch->three_phase_calls,
              (std::vector<std::string>{"pre_commit 1/coordinator", "commit"}))
        << ch->name();
    ASSERT_TRUE(ch->record.has_value());
    EXPECT_EQ(ch->record->state, protocol::TpcState::kCommitted);
    EXPECT_EQ(ch->record->members, (std::vector<std::string>{"orders", "inventory", "ledger"}));
  }
  auto record = log_.Get(out->txn_id());
  ASSERT_TRUE(record.ok() && record->has_value());
  EXPECT_EQ((*record)->protocol(), v1::PROTOCOL_THREE_PHASE);
  EXPECT_EQ((*record)->decision(), v1::DECISION_COMMIT);
  EXPECT_EQ((*record)->three_phase_max_round(), 1u);
  EXPECT_EQ(*driver_->GetDecision(out->txn_id()), v1::DECISION_COMMIT);
  auto t = driver_->GetTransaction(out->txn_id());
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->protocol(), v1::PROTOCOL_THREE_PHASE);
}

TEST_F(ThreePhaseDriverTest, NoVoteAbortsWithoutAnyPreCommit) {
  inventory_->vote = v1::VOTE_NO;
  auto out = RunSync(ThreePhase());
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->state(), v1::TXN_STATE_ABORTED);
  EXPECT_NE(out->reason().find("inventory"), std::string::npos) << out->reason();
  WaitIdle();
  EXPECT_EQ(orders_->three_phase_calls, std::vector<std::string>{"rollback"});
  EXPECT_EQ(orders_->commits, 0);
  EXPECT_EQ((*log_.Get(out->txn_id()))->decision(), v1::DECISION_ABORT);
  EXPECT_EQ(*driver_->GetDecision(out->txn_id()), v1::DECISION_ABORT);
}

TEST_F(ThreePhaseDriverTest, AQuorumOfAcksIsEnough) {
  ledger_->silent_at_b0 = true;
  auto out = RunSync(ThreePhase());
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->state(), v1::TXN_STATE_COMMITTED);
  WaitIdle();
  EXPECT_EQ(ledger_->record->state, protocol::TpcState::kCommitted) << "told the decision";
}

TEST_F(ThreePhaseDriverTest, StalledAcksAreFinishedByATerminationRound) {
  inventory_->silent_at_b0 = true;
  ledger_->silent_at_b0 = true;
  auto out = RunSync(ThreePhase());
  ASSERT_TRUE(out.ok());
  // orders pre-committed at B0; the round sees it as the latest attempt and pre-commits.
  EXPECT_EQ(out->state(), v1::TXN_STATE_COMMITTED) << out->reason();
  WaitIdle();
  EXPECT_EQ(inventory_->three_phase_calls,
            (std::vector<std::string>{"pre_commit 1/coordinator", "elect 2/coordinator",
                                      "pre_commit 2/coordinator", "commit"}));
  EXPECT_EQ((*log_.Get(out->txn_id()))->three_phase_max_round(), 2u);
}

TEST_F(ThreePhaseDriverTest, RestartWithStartOnlyTerminatesInsteadOfPresumingAbort) {
  // The log holds START (decision unspecified); every participant pre-committed at B0 before the
  // coordinator died.
  log::DecisionRecord r;
  r.set_txn_id("n1-1-7");
  r.set_protocol(v1::PROTOCOL_THREE_PHASE);
  r.set_state(static_cast<int>(core::TxnState::kPreparing));
  r.set_three_phase_max_round(1);
  for (ScriptedChannel* ch : all()) {
    r.add_branches()->set_participant(ch->name());
    ch->record = protocol::TpcRecord{.state = protocol::TpcState::kPreCommitted,
                                 .promised = protocol::InitialBallot(),
                                 .attempted = protocol::InitialBallot(),
                                 .members = {"orders", "inventory", "ledger"}};
  }
  ASSERT_TRUE(log_.Write({r}, true).ok());
  EXPECT_EQ(*driver_->GetDecision("n1-1-7"), v1::DECISION_UNKNOWN) << "never presumed aborted";
  MakeDriver();  // the restart: Recover takes it up
  WaitIdle();
  EXPECT_EQ(*driver_->GetDecision("n1-1-7"), v1::DECISION_COMMIT);
  for (ScriptedChannel* ch : all()) {
    EXPECT_EQ(ch->record->state, protocol::TpcState::kCommitted) << ch->name();
    EXPECT_EQ(ch->rollbacks, 0);
  }
}

TEST_F(ThreePhaseDriverTest, RestartAfterAParticipantRoundAbortedFollowsIt) {
  log::DecisionRecord r;
  r.set_txn_id("n1-1-8");
  r.set_protocol(v1::PROTOCOL_THREE_PHASE);
  r.set_state(static_cast<int>(core::TxnState::kPreparing));
  r.set_three_phase_max_round(1);
  for (ScriptedChannel* ch : all()) r.add_branches()->set_participant(ch->name());
  orders_->record = protocol::TpcRecord{.state = protocol::TpcState::kAborted};
  inventory_->record = protocol::TpcRecord{.state = protocol::TpcState::kAborted};
  ledger_->record = protocol::WaitingRecord({"orders", "inventory", "ledger"});
  ASSERT_TRUE(log_.Write({r}, true).ok());
  MakeDriver();
  WaitIdle();
  EXPECT_EQ(*driver_->GetDecision("n1-1-8"), v1::DECISION_ABORT);
  EXPECT_EQ(ledger_->record->state, protocol::TpcState::kWaiting) << "the scripted agent only counts";
  EXPECT_EQ(ledger_->rollbacks, 1);
}

TEST_F(ThreePhaseDriverTest, ADecisionReportedByTheAgentsIsLoggedAndAnswered) {
  for (ScriptedChannel* ch : all()) ch->silent_at_b0 = true;  // no ACK ever: only a report ends it
  std::promise<absl::StatusOr<v1::Outcome>> p;
  driver_->Run(ThreePhase(), [&](absl::StatusOr<v1::Outcome> o) { p.set_value(o); });
  std::string txn_id;
  for (int i = 0; i < 200 && txn_id.empty(); ++i) {
    absl::StatusOr<v1::ListTransactionsResponse> listed =
        driver_->ListTransactions(v1::ListTransactionsRequest());
    ASSERT_TRUE(listed.ok());
    for (const auto& t : listed->transactions()) {
      if (t.state() == v1::TXN_STATE_PRECOMMITTED) txn_id = t.txn_id();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_FALSE(txn_id.empty());
  v1::ReportDecisionRequest report;
  report.set_txn_id(txn_id);
  report.set_participant("stranger");
  report.set_decision(v1::DECISION_COMMIT);
  EXPECT_EQ(driver_->ReportDecision(report).code(), absl::StatusCode::kInvalidArgument);
  report.set_participant("ledger");
  report.set_decision(v1::DECISION_COMMIT);
  ASSERT_TRUE(driver_->ReportDecision(report).ok());
  auto out = p.get_future().get();
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->state(), v1::TXN_STATE_COMMITTED);
  WaitIdle();
  EXPECT_EQ((*log_.Get(txn_id))->decision(), v1::DECISION_COMMIT);
  // Reporting again after it finished is accepted and changes nothing; nonsense is refused.
  EXPECT_TRUE(driver_->ReportDecision(report).ok());
  report.set_decision(v1::DECISION_UNKNOWN);
  EXPECT_EQ(driver_->ReportDecision(report).code(), absl::StatusCode::kInvalidArgument);
  report.set_decision(v1::DECISION_ABORT);
  report.set_txn_id("n1-9-9");
  EXPECT_EQ(driver_->ReportDecision(report).code(), absl::StatusCode::kNotFound);
}

TEST_F(ThreePhaseDriverTest, ADeadlockVictimIsTakenInItsVotePhaseAndAbortedThroughTheLog) {
  inventory_->silent = true;  // its Prepare "waits for a lock" and never answers
  std::promise<absl::StatusOr<v1::Outcome>> p;
  driver_->Run(ThreePhase(), [&](absl::StatusOr<v1::Outcome> o) { p.set_value(o); });
  const std::string id = WaitForTheOnePreparing();
  ASSERT_FALSE(id.empty());
  uint64_t call = 0;
  for (int i = 0; i < 500; ++i) {  // PREPARING shows from the start; Prepare follows START
    {
      std::lock_guard<std::mutex> lock(inventory_->mu);
      if (inventory_->prepares > 0) {
        call = inventory_->last_call_number;
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_NE(call, 0u) << "a three-phase Prepare carries its call number";
  core::WaitEdge wait{id, "n1-9-9", "inventory", "", 80, call};
  std::optional<core::MemberStanding> standing = driver_->DeadlockStanding(wait);
  ASSERT_TRUE(standing.has_value());
  EXPECT_TRUE(standing->executing);
  core::WaitEdge other_call = wait;
  other_call.waiter_call = call + 7;
  EXPECT_FALSE(driver_->DeadlockStanding(other_call)->executing);
  core::WaitEdge voted = wait;  // orders answered its Prepare: none of its waits is current
  voted.participant = "orders";
  EXPECT_FALSE(driver_->DeadlockStanding(voted)->executing);

  ASSERT_TRUE(driver_->AbortDeadlockVictim(id, "chosen as the victim of a deadlock"));
  auto client = p.get_future().get();
  ASSERT_TRUE(client.ok());
  EXPECT_EQ(client->state(), v1::TXN_STATE_ABORTED);
  EXPECT_EQ(client->reason(), "chosen as the victim of a deadlock");
  EXPECT_FALSE(driver_->AbortDeadlockVictim(id, "again"));
  // The ABORT was logged (START was) before the rollbacks; nothing was pre-committed.
  EXPECT_EQ((*log_.Get(id))->decision(), v1::DECISION_ABORT);
  EXPECT_EQ(*driver_->GetDecision(id), v1::DECISION_ABORT);
  std::vector<std::string> calls;
  for (int i = 0; i < 500 && calls.empty(); ++i) {  // the rollbacks follow the answer
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    std::lock_guard<std::mutex> lock(orders_->mu);
    calls = orders_->three_phase_calls;
  }
  EXPECT_EQ(calls, std::vector<std::string>{"rollback"});
}

TEST_F(ThreePhaseDriverTest, APreCommittedTransactionIsNeverADeadlockVictim) {
  orders_->commit_failures = 1'000'000;  // stays COMMITTING, decision logged
  auto out = RunSync(ThreePhase(/*wait=*/false));
  ASSERT_TRUE(out.ok());
  ASSERT_EQ(out->state(), v1::TXN_STATE_COMMITTED);
  EXPECT_FALSE(driver_->AbortDeadlockVictim(out->txn_id(), "victim"));
  std::optional<core::MemberStanding> s =
      driver_->DeadlockStanding(core::WaitEdge{out->txn_id(), "", "orders", "", 80, 1});
  ASSERT_TRUE(s.has_value());  // still in memory, committing
  EXPECT_FALSE(s->executing);
  EXPECT_EQ(*driver_->GetDecision(out->txn_id()), v1::DECISION_COMMIT);
}

TEST_F(ThreePhaseDriverTest, BeginAndCannotPrepareParticipantsAreRefused) {
  v1::BeginRequest begin;
  begin.set_protocol(v1::PROTOCOL_THREE_PHASE);
  EXPECT_EQ(driver_->Begin(begin).status().code(), absl::StatusCode::kUnimplemented);
  v1::RunRequest twice = ThreePhase();
  twice.mutable_branches(2)->set_participant("orders");
  auto dup = RunSync(twice);
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(dup.status().message().find("appears twice"), std::string::npos);
  dir_.cannot_prepare.insert("ledger");
  auto out = RunSync(ThreePhase());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(out.status().message().find("ledger"), std::string::npos);
  EXPECT_EQ(orders_->prepares, 0);
}

// A retried Run (same idempotency key) of a transaction still in flight but answered: the retry
// is answered at once, and outside the transaction's lock: its reply may look the transaction up
// (GetTransaction takes that lock). Every protocol's driver attaches retries the same way.
void ExpectARetryIsAnsweredOutsideTheLock(TransactionDriver& driver, v1::RunRequest req) {
  req.set_idempotency_key("answered-in-flight");
  req.set_wait_for_completion(false);
  std::promise<absl::StatusOr<v1::Outcome>> first;
  driver.Run(req, [&](absl::StatusOr<v1::Outcome> o) { first.set_value(o); });
  absl::StatusOr<v1::Outcome> out = first.get_future().get();
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->state(), v1::TXN_STATE_COMMITTED) << out->reason();
  ASSERT_GT(driver.active_count(), 0u);  // its commits keep failing: still in flight
  auto retried = std::make_shared<std::promise<absl::StatusOr<v1::Transaction>>>();
  std::thread([&driver, req, retried] {
    driver.Run(req, [&driver, retried](absl::StatusOr<v1::Outcome> o) {
      if (!o.ok()) return retried->set_value(o.status());
      retried->set_value(driver.GetTransaction(o->txn_id()));
    });
  }).detach();
  std::future<absl::StatusOr<v1::Transaction>> seen = retried->get_future();
  // A reply run under the lock would wait for itself here: report it instead of hanging.
  ASSERT_EQ(seen.wait_for(std::chrono::seconds(5)), std::future_status::ready)
      << "the retry's reply ran under the transaction's lock";
  absl::StatusOr<v1::Transaction> t = seen.get();
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->txn_id(), out->txn_id());
}

TEST_F(TransactionDriverTest, ARetryOfAnAnsweredTransactionIsAnsweredOutsideItsLock) {
  orders_->commit_failures = 1'000'000;
  ExpectARetryIsAnsweredOutsideTheLock(*driver_, Transfer());
  orders_->commit_failures = 0;
  WaitIdle();
}

TEST_F(ThreePhaseDriverTest, ARetryOfAnAnsweredTransactionIsAnsweredOutsideItsLock) {
  orders_->commit_failures = 1'000'000;
  ExpectARetryIsAnsweredOutsideTheLock(*driver_, ThreePhase());
  orders_->commit_failures = 0;
  WaitIdle();
}

}  // namespace
}  // namespace txn::driver
