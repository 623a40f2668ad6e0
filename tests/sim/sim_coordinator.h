// SimCoordinator: txcoord in the simulation: the real TransactionDriver (and the pure core it
// runs) over a MemoryDecisionLog that outlives its crashes, with SimDecisionWriter in place of
// the group-commit thread. Recover() runs at every start, as txcoord's main does.
//
// SimDecisionWriter finishes each write a few milliseconds after it is asked for, in order; a
// crash loses the writes not finished yet. Its kAckBeforeDurable mode is a deliberately broken
// log that says OK at once and writes later (so a decision can be acted on before it is
// durable): the simulation must catch it.
#pragma once

#include <deque>
#include <memory>

#include "coordinator/driver/transaction_driver.h"
#include "coordinator/log/decision_writer.h"
#include "coordinator/log/memory_decision_log.h"
#include "tests/sim/sim_network.h"
#include "tests/sim/sim_scheduler.h"

namespace txn::sim {

enum class LogMode { kCorrect, kAckBeforeDurable };

class SimDecisionWriter final : public log::DecisionWriter {
 public:
  SimDecisionWriter(SimScheduler* scheduler, log::DecisionLog* log, const NodeLife* life,
                    LogMode mode)
      : scheduler_(scheduler), log_(log), life_(life), mode_(mode) {}
  void Append(log::DecisionRecord record, bool sync, Done done) override;
  // The coordinator crashed: what was not written is lost.
  void Crash() { queue_.clear(); }

 private:
  struct Pending {
    log::DecisionRecord record;
    Done done;  // empty when it was answered already (kAckBeforeDurable)
  };
  void WriteNext();

  SimScheduler* const scheduler_;
  log::DecisionLog* const log_;
  const NodeLife* const life_;
  const LogMode mode_;
  std::deque<Pending> queue_;
};

class SimCoordinator {
 public:
  SimCoordinator(SimScheduler* scheduler, transport::ParticipantDirectory* participants,
                 LogMode mode);
  const NodeLife& life() const { return life_; }
  // Requires life().up().
  driver::TransactionDriver& driver() { return *driver_; }
  void Crash();
  void Restart();

 private:
  void Start();

  SimScheduler* const scheduler_;
  transport::ParticipantDirectory* const participants_;
  NodeLife life_;
  NodeTimers timers_{scheduler_, &life_};
  SimRandom random_{scheduler_};
  log::MemoryDecisionLog log_;
  SimDecisionWriter writer_;
  std::unique_ptr<driver::TransactionDriver> driver_;
};

}  // namespace txn::sim
