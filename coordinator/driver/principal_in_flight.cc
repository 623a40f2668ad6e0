#include "coordinator/driver/principal_in_flight.h"

#include "absl/strings/str_cat.h"

namespace txn::driver {

absl::Status PrincipalInFlight::Admit(const std::string& principal, const std::string& txn_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!principal.empty() && per_principal_ > 0 && count_[principal] >= per_principal_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "principal '", principal, "' has ", per_principal_,
        " transactions in flight, its limit (--max-active-per-principal); retry when some "
        "have finished"));
  }
  if (principal_of_.emplace(txn_id, principal).second) ++count_[principal];
  return absl::OkStatus();
}

void PrincipalInFlight::Restore(const std::string& principal, const std::string& txn_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (principal_of_.emplace(txn_id, principal).second) ++count_[principal];
}

void PrincipalInFlight::Release(const std::string& txn_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = principal_of_.find(txn_id);
  if (it == principal_of_.end()) return;
  auto c = count_.find(it->second);
  if (c != count_.end() && --c->second == 0) count_.erase(c);
  principal_of_.erase(it);
}

size_t PrincipalInFlight::InFlight(const std::string& principal) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = count_.find(principal);
  return it == count_.end() ? 0 : it->second;
}

}  // namespace txn::driver
