// SimRun: one seeded run of the whole system: a coordinator, four agents with their databases
// (three that can prepare, one that cannot: a last resource, like MongoDB),
// and clients sending transfers (Run with idempotency keys, retried on errors and timeouts, as
// two-phase commits, three-phase commits or sagas, and interactive Begin / Execute / Commit),
// first under faults (crashes and restarts of the coordinator and agents at any step, messages
// delayed, reordered, dropped, duplicated, links cut, between the coordinator and an agent and
// among the agents' termination rounds, decision-log writes that fail, some after landing),
// then with every fault healed (and the coordinator restarted if its log failed, as an
// operator would) until the system is quiet. Then it checks what a user would:
//   - atomicity: every branch of a transaction ended the same way in its database;
//   - every COMMITTED answer is true (each branch committed), every ABORTED one too (none did);
//     for a saga: COMMITTED = every step ran and none was compensated, ABORTED = every step that
//     ran was undone by its compensation;
//   - nothing is left prepared;
//   - an idempotency key took effect once (one transaction committed for it; an ABORTED one's
//     key does not outlive a coordinator restart, by design, so a retry after one may run anew);
//   - no money was made or lost, and every keyed transfer got its answer once faults healed.
// The same seed gives the same run, event for event.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tests/sim/sim_coordinator.h"

namespace txn::sim {

struct SimOptions {
  uint64_t seed = 1;
  LogMode log_mode = LogMode::kCorrect;
  int clients = 4;
  int64_t fault_phase_ms = 20'000;
  int64_t heal_phase_ms = 60'000;
  bool faults = true;
};

struct SimResult {
  std::vector<std::string> violations;  // empty: every check held
  int committed = 0;
  int aborted = 0;
  int three_phase_committed = 0;  // of `committed`
  int saga_committed = 0;         // of `committed`
  int last_resource_committed = 0;  // of `committed`: 2PC with a branch that cannot prepare
  // 3PC branches the agents finished by themselves (a termination round, or asking the
  // coordinator after it went silent).
  int terminated_by_agents = 0;
  int failed_compensations = 0;  // sagas left for an operator (their compensation kept failing)
  int coordinator_crashes = 0;
  int log_write_failures = 0;  // decision-log writes that reported an error (some had landed)
  int agent_crashes = 0;
  std::string trace;  // faults, restarts and answers, in order, for a failing seed
  std::string log;    // what the coordinator and agents logged
};

SimResult RunSimulation(const SimOptions& options);

}  // namespace txn::sim
