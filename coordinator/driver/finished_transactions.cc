#include "coordinator/driver/finished_transactions.h"

namespace txn::driver {

void FinishedTransactions::Add(const v1::Transaction& t) {
  std::lock_guard<std::mutex> lock(mu_);
  // A transaction finishes once; should one come again while remembered, it replaces itself,
  // without a second place in the order or a second count.
  if (by_id_.insert_or_assign(t.txn_id(), t).second) {
    order_.push_back(t.txn_id());
    ++counts_[t.state()];
  }
  while (order_.size() > capacity_) {
    by_id_.erase(order_.front());
    order_.pop_front();
  }
}

std::optional<v1::Transaction> FinishedTransactions::Find(const std::string& txn_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_id_.find(txn_id);
  if (it == by_id_.end()) return std::nullopt;
  return it->second;
}

std::vector<v1::Transaction> FinishedTransactions::All() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<v1::Transaction> out;
  out.reserve(by_id_.size());
  for (const auto& [id, t] : by_id_) out.push_back(t);
  return out;
}

std::map<v1::TxnState, uint64_t> FinishedTransactions::Counts() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counts_;
}

}  // namespace txn::driver
