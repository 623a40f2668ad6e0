// SimCoordinator: txcoord in the simulation: the real TransactionDriver (and the pure core it
// runs) over a MemoryDecisionLog that outlives its crashes, with SimDecisionWriter in place of
// the group-commit thread. Recover() runs at every start, as txcoord's main does.
//
// SimDecisionWriter finishes each write a few milliseconds after it is asked for, in order; a
// crash loses the writes not finished yet. Its kAckBeforeDurable mode is a deliberately broken
// log that says OK at once and writes later (so a decision can be acted on before it is
// durable): the simulation must catch it. During the fault phase a write may also fail, as a
// disk does (set_failure_chance): the write reports an error, and the record may or may not
// have landed.
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
  void set_failure_chance(double chance) { failure_chance_ = chance; }
  // Writes that reported an error so far.
  int failures() const { return failures_; }
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
  double failure_chance_ = 0;
  int failures_ = 0;
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
  void set_log_failure_chance(double chance) { writer_.set_failure_chance(chance); }
  // Whether a decision-log write failed since this coordinator last started (an operator who
  // saw it restarts the coordinator once the disk is fixed: the log then says what was decided).
  bool log_failed_since_start() const { return writer_.failures() > failures_at_start_; }
  int log_failures() const { return writer_.failures(); }

 private:
  void Start();
  // As txcoord's main: while the driver refuses transactions after a failed write, it probes
  // the log every 100 ms and accepts again once a write works.
  void ProbeLogNow();

  SimScheduler* const scheduler_;
  transport::ParticipantDirectory* const participants_;
  NodeLife life_;
  NodeTimers timers_{scheduler_, &life_};
  SimRandom random_{scheduler_};
  log::MemoryDecisionLog log_;
  SimDecisionWriter writer_;
  int failures_at_start_ = 0;
  std::unique_ptr<driver::TransactionDriver> driver_;
};

}  // namespace txn::sim
