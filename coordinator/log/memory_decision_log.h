// An in-memory DecisionLog for unit tests and simulations. "Durable" means "in this object".
// Thread-safe.
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "absl/strings/string_view.h"
#include "coordinator/log/decision_log.h"

namespace txn::log {

class MemoryDecisionLog final : public DecisionLog {
 public:
  // A test that replaces the coordinator's data folder makes a second log with another id.
  explicit MemoryDecisionLog(std::string incarnation = "0000000a")
      : incarnation_(std::move(incarnation)) {}

  absl::Status Write(const std::vector<DecisionRecord>& records, bool sync) override;
  absl::StatusOr<std::optional<DecisionRecord>> Get(absl::string_view txn_id) override;
  absl::Status Delete(absl::string_view txn_id) override;
  absl::Status ForEach(const std::function<bool(const DecisionRecord&)>& fn) override;
  absl::StatusOr<uint64_t> NextEpoch() override;
  const std::string& incarnation() const override { return incarnation_; }

  // Number of Write calls so far (to observe group commit).
  int writes() const;

 private:
  const std::string incarnation_;
  mutable std::mutex mu_;
  std::map<std::string, DecisionRecord, std::less<>> records_;  // guarded by mu_
  uint64_t epoch_ = 0;                                          // guarded by mu_
  int writes_ = 0;                                              // guarded by mu_
};

}  // namespace txn::log
