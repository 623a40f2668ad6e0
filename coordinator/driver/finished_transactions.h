// The transactions that finished in this process, of every protocol: the most recent
// `capacity` of them by id (what GetTransaction, GetDecision and ListTransactions read before
// the log; aborted ones are never logged, presumed abort), and how many finished in each final
// state since start (GetStats). Thread-safe.
#pragma once

#include <cstddef>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "txn/v1/coordinator.pb.h"

namespace txn::driver {

class FinishedTransactions {
 public:
  explicit FinishedTransactions(size_t capacity) : capacity_(capacity) {}

  // Records `t` in its final state; the oldest one beyond the capacity is forgotten.
  void Add(const v1::Transaction& t);
  std::optional<v1::Transaction> Find(const std::string& txn_id) const;
  std::vector<v1::Transaction> All() const;
  // Since start, by final state (also those no longer remembered; one that came again while
  // remembered counts once, in its first state).
  std::map<v1::TxnState, uint64_t> Counts() const;

 private:
  const size_t capacity_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, v1::Transaction> by_id_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> order_ ABSL_GUARDED_BY(mu_);
  std::map<v1::TxnState, uint64_t> counts_ ABSL_GUARDED_BY(mu_);
};

}  // namespace txn::driver
