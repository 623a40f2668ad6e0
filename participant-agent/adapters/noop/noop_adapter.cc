#include "participant-agent/adapters/noop/noop_adapter.h"

#include "absl/strings/str_cat.h"

namespace txn::agent {
namespace {

class NoopSession final : public BranchSession {
 public:
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
  absl::Status RollbackLocal() override { return absl::OkStatus(); }

 private:
  NoopAdapter* const adapter_;
  int operations_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<BranchSession>> NoopAdapter::Begin(const std::string& gid) {
  return std::make_unique<NoopSession>(this);
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
  return prepared_.count(gid) == 1;
}

absl::StatusOr<std::vector<std::string>> NoopAdapter::ListPrepared() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::vector<std::string>(prepared_.begin(), prepared_.end());
}

}  // namespace txn::agent
