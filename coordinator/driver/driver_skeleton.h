// What the 2PC, 3PC and saga drivers share, written once so that they cannot drift apart:
//   ContextTable   the transactions a driver runs, by id, each with its own lock;
//   PlanThenAct    one dispatch step: plan under the transaction's lock, act after unlocking,
//                  so no lock is held across an RPC, a log write or a client's reply;
//   AnswerOrQueue  a (retried) client's reply: answered at once, after unlocking, if the client
//                  was answered already, else queued with the other waiters;
//   RetryScheduler a retry now or after a capped exponential backoff with jitter, on the
//                  injected timers and randomness, doing nothing once its driver is gone;
//   CallsInFlight  the numbered calls a transaction has in flight, which the deadlock
//                  detector matches against the agents' reports;
//   StandingOf, AbortVictim
//                  the deadlock detector's questions, asked of a 2PC or 3PC transaction;
//   ProtocolDriverDeps, ProtocolDriverBase
//                  what each protocol driver takes from TransactionDriver, and what they
//                  offer its front end and catalog (find, list, attach a retried call).
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
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/backoff.h"
#include "common/clock.h"
#include "common/lifetime_guard.h"
#include "common/logging.h"
#include "common/random.h"
#include "common/timers.h"
#include "coordinator/core/types.h"
#include "coordinator/core/wait_for_graph.h"
#include "coordinator/log/decision_writer.h"
#include "coordinator/transport/participant_channel.h"
#include "txn/v1/coordinator.pb.h"

namespace txn::driver {

using Action = std::function<void()>;
// How a client's Run / Commit is answered.
using OutcomeReply = std::function<void(absl::StatusOr<v1::Outcome>)>;

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

// The Execute / Prepare / CommitOnePhase calls a transaction has in flight, by branch: the
// call_number sent (unique within the transaction), which agents echo in the lock waits they
// report, so that the deadlock detector takes a wait only while that very call is in flight.
// Guarded by the transaction's lock.
class CallsInFlight {
 public:
  // Numbers a call to `branch` and records it in flight.
  uint64_t Start(uint32_t branch) {
    const uint64_t call = next_++;
    by_branch_[branch] = call;
    return call;
  }
  // The call returned (a later call to the same branch stays).
  void End(uint32_t branch, uint64_t call) {
    auto it = by_branch_.find(branch);
    if (it != by_branch_.end() && it->second == call) by_branch_.erase(it);
  }
  // Whether `call` (0: none named) is in flight on a branch of `participant` (a Run may have
  // more than one branch on the same participant; call numbers are unique in the transaction).
  bool Waits(const std::vector<core::BranchStatus>& branches, const std::string& participant,
             uint64_t call) const {
    if (call == 0) return false;
    for (uint32_t b = 0; b < branches.size(); ++b) {
      if (branches[b].participant != participant) continue;
      auto it = by_branch_.find(b);
      if (it != by_branch_.end() && it->second == call) return true;
    }
    return false;
  }

 private:
  std::unordered_map<uint32_t, uint64_t> by_branch_;
  uint64_t next_ = 1;
};

// The deadlock detector's two questions (deadlock_detector.h), for a protocol whose Ctx holds
// `mu`, `txn` (with `branches`), `calls` (CallsInFlight) and `start_order`. `may_be_victim(txn)`
// says whether the transaction is in the phase where it may wait on a cycle and be aborted
// (2PC: executing; 3PC: voting).
//
// Whether edge.waiter's call is in flight and the transaction in that phase, and its age.
template <typename Ctx, typename MayBeVictim>
core::MemberStanding StandingOf(Ctx& ctx, const core::WaitEdge& edge, MayBeVictim may_be_victim) {
  std::lock_guard<std::mutex> lock(ctx.mu);
  const bool call_waits = ctx.calls.Waits(ctx.txn.branches, edge.participant, edge.waiter_call);
  return core::MemberStanding{call_waits && may_be_victim(ctx.txn), ctx.start_order};
}
// Aborts the transaction as a deadlock victim if it is still in that phase (checked under its
// lock, so one that has a decision is never aborted): `plan_abort()`, under the lock, gives the
// actions, run after unlocking. Returns whether it was aborted.
template <typename Ctx, typename MayBeVictim, typename PlanAbort>
bool AbortVictim(Ctx& ctx, const std::string& txn_id, const std::string& reason,
                 MayBeVictim may_be_victim, PlanAbort plan_abort) {
  std::vector<Action> actions;
  {
    std::lock_guard<std::mutex> lock(ctx.mu);
    if (!may_be_victim(ctx.txn)) return false;
    common::LogWarning(absl::StrCat("txn=", txn_id, " aborted: ", reason));
    actions = plan_abort();
  }
  for (auto& a : actions) a();
  return true;
}

// What each protocol driver takes from the TransactionDriver that owns it.
struct ProtocolDriverDeps {
  log::DecisionWriter* group_log = nullptr;
  transport::ParticipantDirectory* participants = nullptr;
  common::Clock* clock = nullptr;
  common::Timers* timers = nullptr;
  common::RandomSource* random = nullptr;  // retry jitter
  int64_t rpc_timeout_ms = 5'000;
  common::BackoffPolicy retry_backoff;
  // A transaction finished (its final state); called once, outside any lock.
  std::function<void(const v1::Transaction&)> on_finished;
  // A log write failed (the coordinator fails closed).
  std::function<void(const absl::Status&)> on_log_failure;
};

// The part of a protocol driver that is the same for every protocol: its table of running
// transactions and the views of it that TransactionDriver's front end and catalog use. Derived
// (CRTP) supplies, for its context type Ctx (held locked):
//   static v1::Transaction ShownAs(const Ctx&)                   what GetTransaction shows;
//   static std::optional<v1::Outcome> AnsweredWith(const Ctx&)   what an answered client
//                                                                heard, nullopt before.
// Derived's destructor must close lifetime_ first, so no callback runs against a half-destroyed
// driver. Ctx is complete only in Derived's .cc: Derived's header declares the instantiation
// extern and its .cc instantiates it.
template <typename Derived, typename Ctx>
class ProtocolDriverBase {
 public:
  std::optional<v1::Transaction> Find(const std::string& txn_id) const;
  std::vector<v1::Transaction> Snapshot() const;
  // A retried client's call for `txn_id`: answered (after unlocking) if the client was answered
  // already, else queued for the outcome. False when the transaction is not running here.
  bool Attach(const std::string& txn_id, OutcomeReply reply);
  size_t active_count() const { return active_.size(); }

 protected:
  explicit ProtocolDriverBase(ProtocolDriverDeps deps) : deps_(std::move(deps)) {}
  ~ProtocolDriverBase() = default;

  // Requires the transaction's lock held: the action that answers every client waiting on it.
  static Action AnswerWaiters(std::vector<OutcomeReply>* waiters, v1::Outcome outcome) {
    return [waiters = std::exchange(*waiters, {}), outcome = std::move(outcome)] {
      for (const auto& w : waiters) w(outcome);
    };
  }
  // The action that reports a finished transaction and then drops it from the table (in that
  // order, so that a lookup of the running table, then of the finished ones, finds it).
  Action Forget(v1::Transaction finished) {
    return [this, finished = std::move(finished)] {
      if (deps_.on_finished) deps_.on_finished(finished);
      active_.Erase(finished.txn_id());
    };
  }
  // After base_ms, plus the retry backoff from attempt 1 on.
  void Later(int64_t base_ms, int attempt, Action fn) const {
    retries_.Later(deps_.retry_backoff, attempt, std::move(fn), base_ms);
  }
  // `fn` wrapped so that it does nothing once this driver is destroyed (timers, RPC completions
  // and log writes may finish after it).
  Action Guard(Action fn) const { return lifetime_.Wrap(std::move(fn)); }
  template <typename Arg>
  std::function<void(Arg)> GuardReply(std::type_identity_t<std::function<void(Arg)>> fn) const {
    return lifetime_.Wrap(std::move(fn));
  }

  const ProtocolDriverDeps deps_;
  ContextTable<Ctx> active_;
  common::LifetimeGuard lifetime_;
  const RetryScheduler retries_{deps_.timers, deps_.random, &lifetime_};
};

template <typename Derived, typename Ctx>
std::optional<v1::Transaction> ProtocolDriverBase<Derived, Ctx>::Find(
    const std::string& txn_id) const {
  return active_.Inspect(txn_id, [](const Ctx& ctx) { return Derived::ShownAs(ctx); });
}

template <typename Derived, typename Ctx>
std::vector<v1::Transaction> ProtocolDriverBase<Derived, Ctx>::Snapshot() const {
  return active_.InspectAll([](const Ctx& ctx) { return Derived::ShownAs(ctx); });
}

template <typename Derived, typename Ctx>
bool ProtocolDriverBase<Derived, Ctx>::Attach(const std::string& txn_id, OutcomeReply reply) {
  return active_.Attach(txn_id, std::move(reply),
                        [](const Ctx& ctx) { return Derived::AnsweredWith(ctx); });
}

}  // namespace txn::driver
