#include "participant-agent/call_cancellation.h"

namespace txn::agent {
namespace {
thread_local CallCancellation* current_cancellation = nullptr;
}  // namespace

void CallCancellation::Cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  if (cancelled_) return;
  cancelled_ = true;
  if (interrupt_) {
    // Under mu_, so the statement's Interruptible cannot be torn down (and its connection
    // reused) while the interrupt is being sent.
    interrupt_();
    interrupted_ = true;
  }
}

bool CallCancellation::cancelled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cancelled_;
}

CallCancellation* CallCancellation::Current() { return current_cancellation; }

std::optional<int64_t> CallCancellation::CurrentRemainingMs() {
  if (current_cancellation == nullptr) return std::nullopt;
  std::chrono::system_clock::time_point deadline;
  {
    std::lock_guard<std::mutex> lock(current_cancellation->mu_);
    deadline = current_cancellation->deadline_;
  }
  if (deadline == std::chrono::system_clock::time_point::max()) return std::nullopt;
  const int64_t left = std::chrono::duration_cast<std::chrono::milliseconds>(
                           deadline - std::chrono::system_clock::now())
                           .count();
  return left < 1 ? 1 : left;
}

CallCancellation::Scope::Scope(CallCancellation* c) : previous_(current_cancellation) {
  current_cancellation = c;
}

CallCancellation::Scope::~Scope() { current_cancellation = previous_; }

CallCancellation::Interruptible::Interruptible(std::function<void()> interrupt)
    : owner_(current_cancellation) {
  if (owner_ == nullptr) return;
  std::lock_guard<std::mutex> lock(owner_->mu_);
  if (owner_->cancelled_) {
    // Cancelled before the statement started: the caller sees interrupted() and does not send
    // it (an interrupt sent now would reach an idle session and be lost).
    owner_->interrupted_ = true;
    return;
  }
  owner_->interrupt_ = std::move(interrupt);
}

CallCancellation::Interruptible::~Interruptible() {
  if (owner_ == nullptr) return;
  std::lock_guard<std::mutex> lock(owner_->mu_);
  owner_->interrupt_ = nullptr;
}

bool CallCancellation::Interruptible::interrupted() const {
  if (owner_ == nullptr) return false;
  std::lock_guard<std::mutex> lock(owner_->mu_);
  return owner_->interrupted_;
}

}  // namespace txn::agent
