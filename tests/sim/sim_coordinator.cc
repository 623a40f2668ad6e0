#include "tests/sim/sim_coordinator.h"

#include <cstdlib>
#include <utility>

#include "common/logging.h"

namespace txn::sim {

void SimDecisionWriter::Append(log::DecisionRecord record, bool sync, Done done) {
  if (mode_ == LogMode::kAckBeforeDurable) {
    // OK before the write, but later, as DecisionWriter promises (the 3PC driver queues its
    // records under the transaction's lock).
    scheduler_->After(0, life_->Bind([done = std::move(done)] { done(absl::OkStatus()); }));
    done = nullptr;
  }
  queue_.push_back(Pending{std::move(record), std::move(done)});
  if (queue_.size() == 1) {
    scheduler_->After(scheduler_->Between(1, 5), life_->Bind([this] { WriteNext(); }));
  }
}

void SimDecisionWriter::WriteNext() {
  if (queue_.empty()) return;
  Pending p = std::move(queue_.front());
  queue_.pop_front();
  absl::Status s;
  if (failure_chance_ > 0 && scheduler_->Chance(failure_chance_)) {
    ++failures_;
    if (scheduler_->Chance(0.5)) (void)log_->Write({p.record}, /*sync=*/true);  // it landed
    s = absl::UnavailableError("IO error: the simulated disk failed the write");
  } else {
    s = log_->Write({p.record}, /*sync=*/true);
  }
  if (!queue_.empty()) {
    scheduler_->After(scheduler_->Between(1, 5), life_->Bind([this] { WriteNext(); }));
  }
  if (p.done) p.done(s);
}

SimCoordinator::SimCoordinator(SimScheduler* scheduler,
                               transport::ParticipantDirectory* participants, LogMode mode)
    : scheduler_(scheduler),
      participants_(participants),
      writer_(scheduler, &log_, &life_, mode) {
  Start();
}

void SimCoordinator::ProbeLogNow() {
  if (!driver_->accepting()) (void)driver_->ProbeLog();
  scheduler_->After(100, life_.Bind([this] { ProbeLogNow(); }));
}

void SimCoordinator::Start() {
  failures_at_start_ = writer_.failures();
  driver::DriverOptions options;
  options.prepare_timeout_ms = 2'000;
  options.rpc_timeout_ms = 500;
  options.retry_backoff.initial_ms = 20;
  options.retry_backoff.max_ms = 500;
  driver_ = std::make_unique<driver::TransactionDriver>(
      driver::DriverDeps{.log = &log_,
                         .group_log = &writer_,
                         .participants = participants_,
                         .clock = scheduler_->clock(),
                         .timers = &timers_,
                         .random = &random_},
      options);
  if (absl::Status s = driver_->Recover(); !s.ok()) {
    // The in-memory log cannot fail; if it does, the simulation itself is broken.
    common::LogError(absl::StrCat("simulated coordinator could not recover: ", s.ToString()));
    std::abort();
  }
  scheduler_->After(100, life_.Bind([this] { ProbeLogNow(); }));
}

void SimCoordinator::Crash() {
  if (!life_.up()) return;
  life_.Crash();
  writer_.Crash();
  driver_.reset();
}

void SimCoordinator::Restart() {
  if (life_.up()) return;
  life_.Restart();
  Start();
}

}  // namespace txn::sim
