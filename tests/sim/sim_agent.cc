#include "tests/sim/sim_agent.h"

#include <utility>

namespace txn::sim {

SimAgent::SimAgent(SimScheduler* scheduler, std::unique_ptr<SimDatabase> database,
                   agent::DecisionSource* decisions, int64_t reconcile_every_ms)
    : scheduler_(scheduler),
      database_(std::move(database)),
      decisions_(decisions),
      reconcile_every_ms_(reconcile_every_ms) {
  Start();
}

void SimAgent::Start() {
  agent::BranchRegistryOptions options;
  // Short, so that branches a lost coordinator left ACTIVE are rolled back within a run.
  options.idle_timeout_ms = 5'000;
  registry_ = std::make_unique<agent::BranchRegistry>(database_.get(), scheduler_->clock(), options);
  reconciler_ = std::make_unique<agent::InDoubtReconciler>(registry_.get(), decisions_);
  saga_steps_ = std::make_unique<agent::SagaSteps>(database_.get());
  timers_.After(reconcile_every_ms_, [this] { ReconcileLoop(); });
}

void SimAgent::ReconcileLoop() {
  (void)reconciler_->RunOnce();
  registry_->Sweep();
  timers_.After(reconcile_every_ms_, [this] { ReconcileLoop(); });
}

void SimAgent::Crash() {
  if (!life_.up()) return;
  life_.Crash();
  // A killed agent's connections close: the database rolls back what they had open.
  database_->Crash();
  saga_steps_.reset();
  reconciler_.reset();
  registry_.reset();
}

void SimAgent::Restart() {
  if (life_.up()) return;
  life_.Restart();
  Start();
}

}  // namespace txn::sim
