// BranchRegistry: the table of branches this agent knows, their last use, and the sweep that
// rolls back idle open branches and forgets expired tombstones.
#include "participant-agent/branch_registry.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace txn::agent {

std::shared_ptr<BranchRegistry::Entry> BranchRegistry::GetOrCreate(const std::string& gid) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = entries_[gid];
  if (!slot) {
    slot = std::make_shared<Entry>();
    slot->gid = gid;
  }
  return slot;
}

std::shared_ptr<BranchRegistry::Entry> BranchRegistry::Find(const std::string& gid) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(gid);
  return it == entries_.end() ? nullptr : it->second;
}

BranchRegistry::RunningCall::RunningCall(BranchRegistry* registry, Entry* e,
                                         uint64_t call_number)
    : registry_(registry), entry_(e) {
  CallCancellation* current = CallCancellation::Current();
  const int64_t now = registry_->clock_->NowMonotonicMs();
  std::lock_guard<std::mutex> lock(registry_->mu_);
  entry_->running = current != nullptr ? current->weak_from_this()
                                       : std::weak_ptr<CallCancellation>();
  entry_->running_since_ms = std::max<int64_t>(now, 1);
  entry_->running_call_number = call_number;
}

BranchRegistry::RunningCall::~RunningCall() {
  std::lock_guard<std::mutex> lock(registry_->mu_);
  entry_->running.reset();
  entry_->running_since_ms = 0;
}

size_t BranchRegistry::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

void BranchRegistry::Touch(const std::string& gid, Entry& e) {
  e.last_used_ms = clock_->NowMonotonicMs();
  std::lock_guard<std::mutex> lock(mu_);
  sweep_due_.emplace(e.last_used_ms + std::min(options_.idle_timeout_ms, options_.tombstone_ttl_ms),
                     SweepItem{gid, e.last_used_ms});
}

void BranchRegistry::Sweep() {
  const int64_t now = clock_->NowMonotonicMs();
  std::vector<std::pair<int64_t, SweepItem>> later;
  for (;;) {
    SweepItem item;
    std::shared_ptr<Entry> e;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto first = sweep_due_.begin();
      if (first == sweep_due_.end() || first->first > now) break;
      item = std::move(first->second);
      sweep_due_.erase(first);
      auto it = entries_.find(item.gid);
      if (it == entries_.end()) continue;
      e = it->second;
    }
    std::unique_lock<std::mutex> el(e->mu, std::try_to_lock);
    if (!el.owns_lock()) {  // in use right now: look again a little later
      later.emplace_back(now + 1000, std::move(item));
      continue;
    }
    if (e->last_used_ms != item.touched_ms) continue;  // touched since: a later item stands
    const int64_t idle = now - e->last_used_ms;
    if (e->initialized && e->state == State::kActive) {
      if (idle >= options_.idle_timeout_ms) {
        common::LogWarning(
            absl::StrCat("branch=", item.gid, " idle for ", idle, " ms: rolling back"));
        AbortActive(*e, "rolled back after the idle timeout");
        e->last_used_ms = now;
        later.emplace_back(now + options_.tombstone_ttl_ms, SweepItem{item.gid, now});
      } else {
        later.emplace_back(e->last_used_ms + options_.idle_timeout_ms, std::move(item));
      }
      continue;
    }
    const bool finished = !e->initialized || e->state == State::kCommitted ||
                          e->state == State::kAborted || e->state == State::kReadOnly;
    if (!finished) continue;  // PREPARED: kept until Commit or Rollback
    if (idle < options_.tombstone_ttl_ms) {
      later.emplace_back(e->last_used_ms + options_.tombstone_ttl_ms, std::move(item));
      continue;
    }
    el.unlock();
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(item.gid);
    if (it != entries_.end() && it->second == e && e.use_count() <= 2) entries_.erase(it);
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [due, item] : later) sweep_due_.emplace(due, std::move(item));
}

}  // namespace txn::agent
