// SimAgent: one txagent in the simulation, built from the agent's real parts: its BranchRegistry
// (the branch state machine and idempotent calls), its SagaSteps (saga steps and compensations
// over the barrier table), its ThreePhaseRecords and ThreePhaseTerminator (a 3PC participant's
// records, answers to ELECT / PRE_COMMIT, and termination rounds it runs itself with its peers
// when the coordinator is silent) and its InDoubtReconciler (what a restarted agent does with
// branches left prepared), over a SimDatabase. A crash loses the registry (the agent's memory)
// and every open transaction; prepared ones and 3PC records stay, and the reconciler and the
// terminator, run every `reconcile_every_ms`, finish them.
//
// SimPeers is how agents reach each other in termination rounds: a call goes through when both
// are up and neither one's link is cut (a cut isolates the agent), and is lost with the
// network's drop chance. It is synchronous, as the real agent's is (the terminator waits for
// each answer), and takes no simulated time.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "participant-agent/branch_registry.h"
#include "participant-agent/in_doubt_reconciler.h"
#include "participant-agent/saga_steps.h"
#include "participant-agent/three_phase_records.h"
#include "participant-agent/three_phase_terminator.h"
#include "tests/sim/sim_database.h"
#include "tests/sim/sim_network.h"
#include "tests/sim/sim_scheduler.h"

namespace txn::sim {

class SimAgent;

class SimPeers final : public agent::PeerSet {
 public:
  SimPeers(SimScheduler* scheduler, SimNetwork* network, std::string self,
           const std::vector<std::unique_ptr<SimAgent>>* agents)
      : scheduler_(scheduler), network_(network), self_(std::move(self)), agents_(agents) {}
  absl::StatusOr<v1::TerminationReply> Elect(const std::string& peer,
                                             const v1::ElectRequest& req) override;
  absl::StatusOr<v1::TerminationReply> PreDecide(const std::string& peer,
                                                 const v1::PreDecideRequest& req) override;
  absl::Status Commit(const std::string& peer, const v1::CommitBranchRequest& req) override;
  absl::Status Rollback(const std::string& peer, const v1::RollbackBranchRequest& req) override;

 private:
  // The peer, if this call reaches it.
  absl::StatusOr<SimAgent*> Reach(const std::string& peer);

  SimScheduler* const scheduler_;
  SimNetwork* const network_;
  const std::string self_;
  const std::vector<std::unique_ptr<SimAgent>>* const agents_;
};

class SimAgent {
 public:
  // `decisions`: how this agent's reconciler and terminator reach the coordinator (over the
  // simulated network; it fails while the coordinator is down or the link is cut); `peers`: the
  // other agents, for termination rounds.
  SimAgent(SimScheduler* scheduler, std::unique_ptr<SimDatabase> database,
           agent::DecisionSource* decisions, agent::PeerSet* peers, int64_t reconcile_every_ms);

  const std::string& name() const { return database_->name(); }
  const NodeLife& life() const { return life_; }
  SimDatabase& database() { return *database_; }
  // Requires life().up().
  agent::BranchRegistry& registry() { return *registry_; }
  agent::SagaSteps& saga_steps() { return *saga_steps_; }
  agent::ThreePhaseRecords& three_phase() { return *three_phase_; }
  // 3PC branches its terminator finished, over every life.
  int terminated() const { return terminated_; }

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
  agent::PeerSet* const peers_;
  const int64_t reconcile_every_ms_;
  NodeLife life_;
  int terminated_ = 0;
  NodeTimers timers_{scheduler_, &life_};
  std::unique_ptr<agent::BranchRegistry> registry_;
  std::unique_ptr<agent::ThreePhaseRecords> three_phase_;
  std::unique_ptr<agent::InDoubtReconciler> reconciler_;
  std::unique_ptr<agent::ThreePhaseTerminator> terminator_;
  std::unique_ptr<agent::SagaSteps> saga_steps_;
};

}  // namespace txn::sim
