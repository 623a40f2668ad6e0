#include "tests/sim/sim_agent.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace txn::sim {

SimAgent::SimAgent(SimScheduler* scheduler, std::unique_ptr<SimDatabase> database,
                   agent::DecisionSource* decisions, agent::PeerSet* peers,
                   int64_t reconcile_every_ms)
    : scheduler_(scheduler),
      database_(std::move(database)),
      decisions_(decisions),
      peers_(peers),
      reconcile_every_ms_(reconcile_every_ms) {
  Start();
}

void SimAgent::Start() {
  agent::BranchRegistryOptions options;
  // Short, so that branches a lost coordinator left ACTIVE are rolled back within a run.
  options.idle_timeout_ms = 5'000;
  registry_ = std::make_unique<agent::BranchRegistry>(database_.get(), scheduler_->clock(), options);
  three_phase_ = std::make_unique<agent::ThreePhaseRecords>(database_.get(), name());
  registry_->set_three_phase(three_phase_.get());
  reconciler_ =
      std::make_unique<agent::InDoubtReconciler>(registry_.get(), decisions_, three_phase_.get());
  terminator_ = std::make_unique<agent::ThreePhaseTerminator>(
      name(), three_phase_.get(), registry_.get(), decisions_, peers_, scheduler_->clock(),
      agent::TerminatorOptions{.timeout_ms = 300});
  saga_steps_ = std::make_unique<agent::SagaSteps>(database_.get());
  timers_.After(reconcile_every_ms_, [this] { ReconcileLoop(); });
}

void SimAgent::ReconcileLoop() {
  (void)reconciler_->RunOnce();
  absl::StatusOr<agent::TerminationPass> pass = terminator_->RunOnce();
  if (pass.ok()) terminated_ += pass->decided;
  registry_->Sweep();
  timers_.After(reconcile_every_ms_, [this] { ReconcileLoop(); });
}

void SimAgent::Crash() {
  if (!life_.up()) return;
  life_.Crash();
  // A killed agent's connections close: the database rolls back what they had open.
  database_->Crash();
  saga_steps_.reset();
  terminator_.reset();
  reconciler_.reset();
  registry_.reset();
  three_phase_.reset();
}

void SimAgent::Restart() {
  if (life_.up()) return;
  life_.Restart();
  Start();
}

absl::StatusOr<SimAgent*> SimPeers::Reach(const std::string& peer) {
  for (const auto& a : *agents_) {
    if (a->name() != peer) continue;
    if (!a->life().up() || network_->IsCut(self_) || network_->IsCut(peer) ||
        scheduler_->Chance(network_->faults().drop)) {
      return absl::UnavailableError(absl::StrCat("peer ", peer, " cannot be reached"));
    }
    return a.get();
  }
  return absl::NotFoundError(absl::StrCat("no peer ", peer));
}

absl::StatusOr<v1::TerminationReply> SimPeers::Elect(const std::string& peer,
                                                     const v1::ElectRequest& req) {
  TXN_ASSIGN_OR_RETURN(SimAgent * a, Reach(peer));
  return a->three_phase().Elect(req);
}

absl::StatusOr<v1::TerminationReply> SimPeers::PreDecide(const std::string& peer,
                                                         const v1::PreDecideRequest& req) {
  TXN_ASSIGN_OR_RETURN(SimAgent * a, Reach(peer));
  return a->three_phase().PreDecide(req);
}

absl::Status SimPeers::Commit(const std::string& peer, const v1::CommitBranchRequest& req) {
  TXN_ASSIGN_OR_RETURN(SimAgent * a, Reach(peer));
  return a->registry().Commit(req).status();
}

absl::Status SimPeers::Rollback(const std::string& peer, const v1::RollbackBranchRequest& req) {
  TXN_ASSIGN_OR_RETURN(SimAgent * a, Reach(peer));
  return a->registry().Rollback(req).status();
}

}  // namespace txn::sim
