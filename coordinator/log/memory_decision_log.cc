#include "coordinator/log/memory_decision_log.h"

namespace txn::log {

absl::Status MemoryDecisionLog::Write(const std::vector<DecisionRecord>& records, bool sync) {
  std::lock_guard<std::mutex> lock(mu_);
  ++writes_;
  for (const auto& r : records) records_[r.txn_id()] = r;
  return absl::OkStatus();
}

absl::StatusOr<std::optional<DecisionRecord>> MemoryDecisionLog::Get(absl::string_view txn_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = records_.find(txn_id);
  if (it == records_.end()) return std::optional<DecisionRecord>();
  return std::optional<DecisionRecord>(it->second);
}

absl::Status MemoryDecisionLog::Delete(absl::string_view txn_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = records_.find(txn_id); it != records_.end()) records_.erase(it);
  return absl::OkStatus();
}

absl::Status MemoryDecisionLog::ForEach(const std::function<bool(const DecisionRecord&)>& fn) {
  std::vector<DecisionRecord> copy;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, r] : records_) copy.push_back(r);
  }
  for (const auto& r : copy) {
    if (!fn(r)) break;
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> MemoryDecisionLog::NextEpoch() {
  std::lock_guard<std::mutex> lock(mu_);
  return ++epoch_;
}

int MemoryDecisionLog::writes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return writes_;
}

}  // namespace txn::log
