// SimAgent: one txagent in the simulation, built from the agent's real parts: its BranchRegistry
// (the branch state machine and idempotent calls), its SagaSteps (saga steps and compensations
// over the barrier table) and its InDoubtReconciler (what a restarted
// agent does with branches left prepared), over a SimDatabase. A crash loses the registry (the
// agent's memory) and every open transaction; prepared ones stay, and the reconciler, run every
// `reconcile_every_ms`, asks the coordinator about them.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "participant-agent/branch_registry.h"
#include "participant-agent/in_doubt_reconciler.h"
#include "participant-agent/saga_steps.h"
#include "tests/sim/sim_database.h"
#include "tests/sim/sim_scheduler.h"

namespace txn::sim {

class SimAgent {
 public:
  // `decisions`: how this agent's reconciler reaches the coordinator (over the simulated
  // network; it fails while the coordinator is down or the link is cut).
  SimAgent(SimScheduler* scheduler, std::unique_ptr<SimDatabase> database,
           agent::DecisionSource* decisions, int64_t reconcile_every_ms);

  const std::string& name() const { return database_->name(); }
  const NodeLife& life() const { return life_; }
  SimDatabase& database() { return *database_; }
  // Requires life().up().
  agent::BranchRegistry& registry() { return *registry_; }
  agent::SagaSteps& saga_steps() { return *saga_steps_; }

  // The process dies. Its connections close, so the database rolls back what they had open;
  // prepared transactions stay.
  void Crash();
  void Restart();

 private:
  void Start();
  void ReconcileLoop();

  SimScheduler* const scheduler_;
  const std::unique_ptr<SimDatabase> database_;
  agent::DecisionSource* const decisions_;
  const int64_t reconcile_every_ms_;
  NodeLife life_;
  NodeTimers timers_{scheduler_, &life_};
  std::unique_ptr<agent::BranchRegistry> registry_;
  std::unique_ptr<agent::InDoubtReconciler> reconciler_;
  std::unique_ptr<agent::SagaSteps> saga_steps_;
};

}  // namespace txn::sim
