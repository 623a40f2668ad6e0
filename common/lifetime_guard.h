// LifetimeGuard: lets an object hand out callbacks (timers, RPC completions,
// log writes) that may run after the object is destroyed. A wrapped callback
// runs only while the guard is open, and Close() waits for wrapped callbacks
// that are running. Call Close() first in the owner's destructor. A wrapped
// callback must not call Close(). Thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <shared_mutex>

namespace txn::common {

class LifetimeGuard {
 public:
  LifetimeGuard() : state_(std::make_shared<State>()) {}
  ~LifetimeGuard() { Close(); }

  // `fn` wrapped so that it does nothing once the guard is closed.
  template <typename... Args>
  std::function<void(Args...)> Wrap(std::function<void(Args...)> fn) const {
    return [state = state_, fn = std::move(fn)](Args... args) {
      std::shared_lock<std::shared_mutex> lock(state->mu);
      if (state->open) fn(std::forward<Args>(args)...);
    };
  }

  void Close() {
    std::unique_lock<std::shared_mutex> lock(state_->mu);
    state_->open = false;
  }

 private:
  struct State {
    std::shared_mutex mu;
    bool open = true;
  };
  std::shared_ptr<State> state_;
};

}  // namespace txn::common
