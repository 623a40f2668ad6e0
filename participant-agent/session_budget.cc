#include "participant-agent/session_budget.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "participant-agent/call_cancellation.h"

namespace txn::agent {

absl::Status SessionBudget::Acquire() {
  if (max_sessions_ == 0) {
    std::lock_guard<std::mutex> lock(mu_);
    ++held_;
    return absl::OkStatus();
  }
  CallCancellation* call = CallCancellation::Current();
  int64_t wait_ms = max_wait_ms_;
  if (std::optional<int64_t> left = CallCancellation::CurrentRemainingMs()) {
    wait_ms = std::min(wait_ms, *left);
  }
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t ticket = next_ticket_++;
  queue_.push_back(ticket);
  for (;;) {
    if (held_ < max_sessions_ && queue_.front() == ticket) break;
    const bool cancelled = call != nullptr && call->cancelled();
    if (cancelled || std::chrono::steady_clock::now() >= give_up) {
      queue_.erase(std::find(queue_.begin(), queue_.end(), ticket));
      freed_.notify_all();  // the next in line may be able to go now
      if (cancelled) return absl::CancelledError("the call was cancelled while it waited for a "
                                                 "database connection");
      return absl::ResourceExhaustedError(absl::StrCat(
          "all ", max_sessions_, " database connections of this agent are held by open "
          "branches (--max-db-connections); waited ", wait_ms, " ms for one"));
    }
    // Woken when a slot is freed; the short step notices a cancellation, which does not notify.
    freed_.wait_until(lock, std::min(give_up, std::chrono::steady_clock::now() +
                                                  std::chrono::milliseconds(20)));
  }
  queue_.pop_front();
  ++held_;
  freed_.notify_all();  // the next ticket is now at the front
  return absl::OkStatus();
}

void SessionBudget::Release() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (held_ > 0) --held_;
  }
  freed_.notify_all();
}

size_t SessionBudget::held() const {
  std::lock_guard<std::mutex> lock(mu_);
  return held_;
}

size_t SessionBudget::waiting() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

}  // namespace txn::agent
