// IdempotencyTable: which transaction each client idempotency key started, so that a retry with
// the same key gets that transaction's outcome instead of running it again.
//
// Keys are scoped by principal: the same key from two principals names two transactions, and no
// principal can reach (or evict) another's. An entry is never forgotten while its transaction
// is unfinished, nor for `retention_ms` after it finished; that is how long a retry stays safe.
// The table holds at most `capacity` entries: when it is full of entries it may not forget, a
// new key is RESOURCE_EXHAUSTED (saying so) rather than a victim's key evicted. So that one
// principal cannot fill the table and lock every other one out of new keys for the retention
// window, a named principal holds at most `per_principal` entries (the anonymous principal "",
// all callers when txcoord has no token file, is bounded by `capacity` alone). Requests without
// a key are not affected. Thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "common/clock.h"

namespace txn::driver {

struct IdempotencyOptions {
  size_t capacity = 1'000'000;
  size_t per_principal = 100'000;
  int64_t retention_ms = 3600 * 1000;
};

class IdempotencyTable {
 public:
  IdempotencyTable(IdempotencyOptions options, common::Clock* clock)
      : options_(options), clock_(clock) {}

  // Reserves (principal, key) for `txn_id`: true. If the key is known: false with *existing set
  // to its transaction when `fingerprint` matches, ALREADY_EXISTS when it does not.
  // RESOURCE_EXHAUSTED when the table is full of entries it may not forget yet.
  [[nodiscard]] absl::StatusOr<bool> Reserve(const std::string& principal, const std::string& key,
                                             const std::string& fingerprint,
                                             const std::string& txn_id, std::string* existing);
  // An entry read back from the decision log at start; `finished_unix_ms` 0 while unfinished.
  // Never refused (the log bounds how many there are).
  void Restore(const std::string& principal, const std::string& key,
               const std::string& fingerprint, const std::string& txn_id,
               int64_t finished_unix_ms);
  // `txn_id` finished now: its key's retention window starts. No-op for a transaction without a
  // key.
  void Finished(const std::string& txn_id);
  // Gives back a key Reserve just took for `txn_id`, which was then refused before it started:
  // a retry with the key runs it then, instead of finding a transaction that never existed.
  void Abandon(const std::string& principal, const std::string& key, const std::string& txn_id);
  size_t size() const;

 private:
  struct Entry {
    std::string principal;
    std::string fingerprint;
    std::string txn_id;
    int64_t finished_unix_ms = 0;  // 0: unfinished
  };
  static std::string Scoped(const std::string& principal, const std::string& key);
  // Requires mu_ held: forgets finished entries past their retention, oldest first.
  void ForgetExpired() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Forget(std::unordered_map<std::string, Entry>::iterator it)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Insert(const std::string& scoped, Entry entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const IdempotencyOptions options_;
  common::Clock* const clock_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);  // by scoped key
  std::unordered_map<std::string, std::string> key_of_txn_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<std::string, size_t> entries_of_ ABSL_GUARDED_BY(mu_);  // by principal
  // Finished entries in the order they finished: scoped key and the transaction it then named
  // (an entry restored again for a later transaction is not forgotten with the older one).
  std::deque<std::pair<std::string, std::string>> finished_order_ ABSL_GUARDED_BY(mu_);
};

}  // namespace txn::driver
