#include "coordinator/driver/idempotency_table.h"

#include "absl/strings/str_cat.h"

namespace txn::driver {

std::string IdempotencyTable::Scoped(const std::string& principal, const std::string& key) {
  // '\n' cannot be part of a principal's name (token file fields have no whitespace).
  return absl::StrCat(principal, "\n", key);
}

void IdempotencyTable::Forget(std::unordered_map<std::string, Entry>::iterator it) {
  auto c = entries_of_.find(it->second.principal);
  if (c != entries_of_.end() && --c->second == 0) entries_of_.erase(c);
  key_of_txn_.erase(it->second.txn_id);
  entries_.erase(it);
}

void IdempotencyTable::Insert(const std::string& scoped, Entry entry) {
  auto it = entries_.find(scoped);
  if (it != entries_.end()) {
    key_of_txn_.erase(it->second.txn_id);
  } else {
    ++entries_of_[entry.principal];
  }
  key_of_txn_[entry.txn_id] = scoped;
  entries_[scoped] = std::move(entry);
}

void IdempotencyTable::ForgetExpired() {
  const int64_t now = clock_->NowUnixMs();
  while (!finished_order_.empty()) {
    const auto& [scoped, txn_id] = finished_order_.front();
    auto it = entries_.find(scoped);
    if (it != entries_.end() && it->second.txn_id == txn_id && it->second.finished_unix_ms != 0) {
      if (it->second.finished_unix_ms + options_.retention_ms > now) return;
      Forget(it);
    }
    finished_order_.pop_front();
  }
}

absl::StatusOr<bool> IdempotencyTable::Reserve(const std::string& principal,
                                               const std::string& key,
                                               const std::string& fingerprint,
                                               const std::string& txn_id, std::string* existing) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string scoped = Scoped(principal, key);
  if (auto it = entries_.find(scoped); it != entries_.end()) {
    if (it->second.fingerprint != fingerprint) {
      return absl::AlreadyExistsError(absl::StrCat("idempotency_key '", key.substr(0, 100),
                                                   "' was used for a different request (txn ",
                                                   it->second.txn_id, ")"));
    }
    *existing = it->second.txn_id;
    return false;
  }
  auto held_by_principal = [&]() -> size_t {
    auto c = entries_of_.find(principal);
    return c == entries_of_.end() ? 0 : c->second;
  };
  const bool share_applies = !principal.empty() && options_.per_principal > 0;
  if (entries_.size() >= options_.capacity ||
      (share_applies && held_by_principal() >= options_.per_principal)) {
    ForgetExpired();
  }
  if (share_applies && held_by_principal() >= options_.per_principal) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "idempotency keys: principal '", principal, "' has ", options_.per_principal,
        " remembered, its share (--idempotency-keys-per-principal); each is kept while its "
        "transaction runs and ", options_.retention_ms / 1000,
        " s after it finishes. Retry later, or send the request without a key"));
  }
  if (entries_.size() >= options_.capacity) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "idempotency keys: ", entries_.size(), " are remembered, the limit "
        "(--idempotency-capacity); each is kept while its transaction runs and ",
        options_.retention_ms / 1000,
        " s after it finishes. Retry later, or send the request without a key"));
  }
  Insert(scoped, Entry{principal, fingerprint, txn_id, 0});
  return true;
}

void IdempotencyTable::Restore(const std::string& principal, const std::string& key,
                               const std::string& fingerprint, const std::string& txn_id,
                               int64_t finished_unix_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string scoped = Scoped(principal, key);
  // A key reused after its window has two records: keep the unfinished one, else the later.
  if (auto it = entries_.find(scoped); it != entries_.end()) {
    const Entry& kept = it->second;
    if (kept.finished_unix_ms == 0 ||
        (finished_unix_ms != 0 && finished_unix_ms < kept.finished_unix_ms)) {
      return;
    }
  }
  Insert(scoped, Entry{principal, fingerprint, txn_id, finished_unix_ms});
  if (finished_unix_ms != 0) finished_order_.emplace_back(scoped, txn_id);
}

void IdempotencyTable::Finished(const std::string& txn_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto k = key_of_txn_.find(txn_id);
  if (k == key_of_txn_.end()) return;
  auto it = entries_.find(k->second);
  if (it == entries_.end() || it->second.finished_unix_ms != 0) return;
  it->second.finished_unix_ms = clock_->NowUnixMs();
  finished_order_.emplace_back(k->second, txn_id);
  ForgetExpired();
}

void IdempotencyTable::Abandon(const std::string& principal, const std::string& key,
                               const std::string& txn_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(Scoped(principal, key));
  if (it != entries_.end() && it->second.txn_id == txn_id && it->second.finished_unix_ms == 0) {
    Forget(it);
  }
}

size_t IdempotencyTable::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

}  // namespace txn::driver
