#include "coordinator/driver/other_incarnations.h"

#include "absl/strings/str_cat.h"

namespace txn::driver {

OtherIncarnations::OtherIncarnations(std::string node, std::string incarnation, size_t capacity)
    : node_(std::move(node)), incarnation_(std::move(incarnation)), capacity_(capacity) {}

bool OtherIncarnations::NoteAsked(const std::string& txn_id, const std::string& its_incarnation,
                                  int64_t now_unix_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(txn_id);
  if (it != entries_.end()) {
    recency_.splice(recency_.begin(), recency_, it->second.recency);
    it->second.last_asked_unix_ms = now_unix_ms;
    ++it->second.asks;
    return false;
  }
  if (entries_.size() >= capacity_ && !recency_.empty()) {
    entries_.erase(recency_.back());
    recency_.pop_back();
  }
  recency_.push_front(txn_id);
  entries_[txn_id] = Entry{its_incarnation, now_unix_ms, now_unix_ms, 1, recency_.begin()};
  return true;
}

void OtherIncarnations::Forget(const std::string& txn_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(txn_id);
  if (it == entries_.end()) return;
  recency_.erase(it->second.recency);
  entries_.erase(it);
}

std::vector<v1::Transaction> OtherIncarnations::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<v1::Transaction> out;
  out.reserve(entries_.size());
  for (const auto& [id, e] : entries_) {
    v1::Transaction t;
    t.set_txn_id(id);
    // The id does not say which protocol it ran (2PC or 3PC): not known here either.
    t.set_protocol(v1::PROTOCOL_UNSPECIFIED);
    t.set_state(v1::TXN_STATE_IN_DOUBT);
    t.set_created_unix_ms(e.first_asked_unix_ms);
    const std::string theirs = e.incarnation.empty() ? "an incarnation from before incarnation ids"
                                                     : absl::StrCat("incarnation ", e.incarnation);
    t.set_reason(absl::StrCat(
        "started by ", theirs, " of node ", node_, ", not by this one (", incarnation_,
        "): its decision log is not here, so its outcome is unknown; agents asked ", e.asks,
        " time(s) and keep its branches prepared. Find out whether it committed and run "
        "`txctl resolve ",
        id, " commit|abort`"));
    out.push_back(std::move(t));
  }
  return out;
}

bool OtherIncarnations::Contains(const std::string& txn_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.count(txn_id) > 0;
}

size_t OtherIncarnations::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

}  // namespace txn::driver
