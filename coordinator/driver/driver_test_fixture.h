// What the driver tests share: scripted in-process participants, a directory of them, and the
// fixture that runs a TransactionDriver against an in-memory log (tests split by concern:
// transaction_driver_test.cc, transaction_front_end_test.cc, transaction_catalog_test.cc,
// saga_driver_test.cc, three_phase_driver_test.cc; one binary).
#pragma once

#include <gtest/gtest.h>

#include <future>
#include <map>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/timer_queue.h"
#include "coordinator/driver/transaction_driver.h"
#include "coordinator/log/group_commit_log.h"
#include "coordinator/log/memory_decision_log.h"
#include "protocol/three_phase_quorum.h"
#include "protocol/three_phase_wire.h"

namespace txn::driver {

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
    std::function<void()> before_answer;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (++local_calls <= local_transport_failures) return done(absl::UnavailableError("down"));
      before_answer = on_local;
    }
    if (before_answer) before_answer();
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
  // Runs before a saga step is answered (e.g. to break the log between steps).
  std::function<void()> on_local;
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

inline absl::StatusOr<v1::Outcome> Resolve(TransactionDriver& driver, const std::string& txn_id,
                                    v1::Decision d) {
  v1::ResolveTransactionRequest req;
  req.set_txn_id(txn_id);
  req.set_decision(d);
  std::promise<absl::StatusOr<v1::Outcome>> p;
  driver.ResolveTransaction(req, [&](absl::StatusOr<v1::Outcome> o) { p.set_value(o); });
  return p.get_future().get();
}

// A retried Run (same idempotency key) of a transaction still in flight but answered: the retry
// is answered at once, and outside the transaction's lock: its reply may look the transaction up
// (GetTransaction takes that lock). Every protocol's driver attaches retries the same way.
inline void ExpectARetryIsAnsweredOutsideTheLock(TransactionDriver& driver, v1::RunRequest req) {
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

}  // namespace txn::driver
