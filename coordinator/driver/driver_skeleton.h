// What the 2PC, 3PC and saga drivers share, written once so that they cannot drift apart:
//   ContextTable   the transactions a driver runs, by id, each with its own lock;
//   PlanThenAct    one dispatch step: plan under the transaction's lock, act after unlocking,
//                  so no lock is held across an RPC, a log write or a client's reply;
//   AnswerOrQueue  a (retried) client's reply: answered at once, after unlocking, if the client
//                  was answered already, else queued with the other waiters;
//   RetryScheduler a retry now or after a capped exponential backoff with jitter, on the
//                  injected timers and randomness, doing nothing once its driver is gone.
// Each driver keeps only its protocol's effects (its Plan) and what its records hold.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "common/backoff.h"
#include "common/lifetime_guard.h"
#include "common/random.h"
#include "common/timers.h"

namespace txn::driver {

using Action = std::function<void()>;

// Locks `mu`, lets `plan` (returning std::vector<Action>) decide, unlocks, runs the actions.
template <typename Plan>
void PlanThenAct(std::mutex& mu, Plan&& plan) {
  std::vector<Action> actions;
  {
    std::lock_guard<std::mutex> lock(mu);
    actions = std::forward<Plan>(plan)();
  }
  for (auto& a : actions) a();
}

// Requires the transaction's lock held. `outcome` is what an answered client heard (nullopt:
// not answered yet, so `reply` joins `waiters`); the answer itself goes into `actions`, to run
// after unlocking.
template <typename Reply, typename Outcome>
void AnswerOrQueue(const std::optional<Outcome>& outcome, Reply reply, std::vector<Reply>* waiters,
                   std::vector<Action>* actions) {
  if (!outcome) {
    waiters->push_back(std::move(reply));
    return;
  }
  actions->push_back([reply = std::move(reply), o = *outcome] { reply(o); });
}

// Ctx must have a `std::mutex mu` guarding what views read (and, for Attach, a
// `std::vector<Reply> waiters`). Thread-safe.
template <typename Ctx>
class ContextTable {
 public:
  void Insert(const std::string& id, std::shared_ptr<Ctx> ctx) {
    std::lock_guard<std::mutex> lock(mu_);
    map_[id] = std::move(ctx);
  }
  void Erase(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    map_.erase(id);
  }
  std::shared_ptr<Ctx> Find(const std::string& id) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(id);
    return it == map_.end() ? nullptr : it->second;
  }
  std::vector<std::shared_ptr<Ctx>> All() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::shared_ptr<Ctx>> out;
    out.reserve(map_.size());
    for (const auto& [id, ctx] : map_) out.push_back(ctx);
    return out;
  }
  size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return map_.size();
  }

  // Attaches a (retried) client's `reply` to transaction `id`: answered after unlocking if
  // answered(ctx), under ctx.mu, gives the outcome the client heard, else queued on ctx.waiters.
  // False when the transaction is not here.
  template <typename Reply, typename Answered>
  bool Attach(const std::string& id, Reply reply, Answered answered) const {
    std::shared_ptr<Ctx> ctx = Find(id);
    if (ctx == nullptr) return false;
    PlanThenAct(ctx->mu, [&] {
      std::vector<Action> actions;
      AnswerOrQueue(answered(*ctx), std::move(reply), &ctx->waiters, &actions);
      return actions;
    });
    return true;
  }

  // view(ctx) under ctx.mu for transaction `id`; nullopt when it is not here. The table's own
  // lock is not held while the view runs.
  template <typename View>
  std::optional<std::invoke_result_t<View, const Ctx&>> Inspect(const std::string& id,
                                                                View view) const {
    std::shared_ptr<Ctx> ctx = Find(id);
    if (ctx == nullptr) return std::nullopt;
    std::lock_guard<std::mutex> lock(ctx->mu);
    return view(*ctx);
  }
  // view(ctx) under each ctx.mu, for every transaction here.
  template <typename View>
  std::vector<std::invoke_result_t<View, const Ctx&>> InspectAll(View view) const {
    std::vector<std::invoke_result_t<View, const Ctx&>> out;
    for (const auto& ctx : All()) {
      std::lock_guard<std::mutex> lock(ctx->mu);
      out.push_back(view(*ctx));
    }
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<Ctx>> map_ ABSL_GUARDED_BY(mu_);
};

// Thread-safe. `timers`, `random` and `lifetime` must outlive it.
class RetryScheduler {
 public:
  RetryScheduler(common::Timers* timers, common::RandomSource* random,
                 const common::LifetimeGuard* lifetime)
      : timers_(timers), random_(random), lifetime_(lifetime) {}

  // Runs `fn` after `base_ms` plus, from the first retry on (attempt >= 1), the backoff's delay
  // for `attempt`. Only a first attempt without base_ms runs at once, on the caller's thread; a
  // retry always goes through the timers, even when its delay draws 0, so that a call failing
  // synchronously cannot recurse into itself.
  void Later(const common::BackoffPolicy& policy, int attempt, Action fn,
             int64_t base_ms = 0) const {
    if (attempt <= 0 && base_ms <= 0) {
      fn();
      return;
    }
    int64_t delay = base_ms;
    if (attempt > 0) delay += common::BackoffDelayMs(policy, attempt, random_->NextUnit());
    timers_->After(delay, lifetime_->Wrap(std::move(fn)));
  }

 private:
  common::Timers* const timers_;
  common::RandomSource* const random_;
  const common::LifetimeGuard* const lifetime_;
};

}  // namespace txn::driver
