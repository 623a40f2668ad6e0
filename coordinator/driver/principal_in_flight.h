// PrincipalInFlight: how many transactions each principal has in flight, so that one client
// cannot take every one of the coordinator's --max-active slots (or its memory) from the others.
//
// A principal is the name a token file gives a caller. Without a token file every caller is the
// anonymous principal "", which has no limit of its own: --max-active alone bounds it. A
// transaction counts from its admission until it finished (every branch told the outcome), also
// across a restart (recovery restores the ones it takes up). Thread-safe.
#pragma once

#include <cstddef>
#include <mutex>
#include <string>
#include <unordered_map>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"

namespace txn::driver {

class PrincipalInFlight {
 public:
  // `per_principal` 0: no limit.
  explicit PrincipalInFlight(size_t per_principal) : per_principal_(per_principal) {}

  // Counts `txn_id` for `principal`, or RESOURCE_EXHAUSTED naming the limit when the principal
  // has `per_principal` in flight already.
  [[nodiscard]] absl::Status Admit(const std::string& principal, const std::string& txn_id);
  // Counts a transaction recovery took up; never refused.
  void Restore(const std::string& principal, const std::string& txn_id);
  // `txn_id` finished, or was admitted and then did not start. No-op for one not counted.
  void Release(const std::string& txn_id);
  size_t InFlight(const std::string& principal) const;

 private:
  const size_t per_principal_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::string> principal_of_ ABSL_GUARDED_BY(mu_);  // by txn id
  std::unordered_map<std::string, size_t> count_ ABSL_GUARDED_BY(mu_);  // by principal
};

}  // namespace txn::driver
