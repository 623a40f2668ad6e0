#include "participant-agent/adapters/noop/noop_adapter.h"

#include "absl/strings/str_cat.h"

namespace txn::agent {
namespace {

class NoopSession final : public BranchSession, public SagaSession {
 public:
  SagaSession* saga() override { return this; }
  explicit NoopSession(NoopAdapter* adapter) : adapter_(adapter) {}
  absl::StatusOr<v1::ExecuteResult> Execute(const v1::Operation& op) override {
    if (!op.has_sql() && !op.has_mongo()) {
      return absl::InvalidArgumentError("operation has neither sql nor mongo");
    }
    ++operations_;
    return v1::ExecuteResult();
  }
  absl::StatusOr<PrepareResult> Prepare(const std::string& gid) override {
    if (operations_ == 0) return PrepareResult{LocalVote::kReadOnly, "", ""};
    adapter_->MarkPrepared(gid);
    return PrepareResult{LocalVote::kYes, "", "0"};
  }
  absl::Status CommitLocal(const std::string& gid) override { return absl::OkStatus(); }
  absl::Status RollbackLocal() override {
    pending_.clear();
    return absl::OkStatus();
  }

  absl::StatusOr<bool> InsertBarrier(const std::string& gid, const std::string& op,
                                     const std::string& origin) override {
    if (pending_.count({gid, op}) || !adapter_->BarrierOrigin(gid, op).empty()) return false;
    pending_[{gid, op}] = origin;
    return true;
  }
  absl::StatusOr<std::string> BarrierOrigin(const std::string& gid,
                                            const std::string& op) override {
    auto it = pending_.find({gid, op});
    return it != pending_.end() ? it->second : adapter_->BarrierOrigin(gid, op);
  }
  absl::Status Commit() override {
    adapter_->AddBarrierRows(pending_);
    pending_.clear();
    return absl::OkStatus();
  }

 private:
  NoopAdapter* const adapter_;
  int operations_ = 0;
  std::map<std::pair<std::string, std::string>, std::string> pending_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<BranchSession>> NoopAdapter::Begin(const std::string& gid) {
  return std::make_unique<NoopSession>(this);
}

std::string NoopAdapter::BarrierOrigin(const std::string& gid, const std::string& op) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = barrier_.find({gid, op});
  return it == barrier_.end() ? std::string() : it->second;
}

void NoopAdapter::AddBarrierRows(
    const std::map<std::pair<std::string, std::string>, std::string>& rows) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [key, origin] : rows) barrier_.emplace(key, origin);
}

void NoopAdapter::MarkPrepared(const std::string& gid) {
  std::lock_guard<std::mutex> lock(mu_);
  prepared_.insert(gid);
}

absl::StatusOr<FinishResult> NoopAdapter::CommitPrepared(const std::string& gid,
                                                         const std::string& native_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (prepared_.erase(gid) == 1) return FinishResult{FinishedAs::kCommitted, ""};
  return FinishResult{FinishedAs::kUnknown, absl::StrCat(gid, " is not prepared here")};
}

absl::StatusOr<FinishResult> NoopAdapter::RollbackPrepared(const std::string& gid,
                                                           const std::string& native_id) {
  std::lock_guard<std::mutex> lock(mu_);
  prepared_.erase(gid);
  return FinishResult{FinishedAs::kAborted, ""};
}

absl::StatusOr<bool> NoopAdapter::IsPrepared(const std::string& gid) {
  std::lock_guard<std::mutex> lock(mu_);
  ++is_prepared_calls_;
  return prepared_.count(gid) == 1;
}

absl::StatusOr<std::vector<std::string>> NoopAdapter::ListPrepared() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::vector<std::string>(prepared_.begin(), prepared_.end());
}

}  // namespace txn::agent
