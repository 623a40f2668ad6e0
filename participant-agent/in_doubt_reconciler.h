// InDoubtReconciler: finds branches left prepared in the database (after an agent, coordinator
// or database restart, or a Prepare that arrived after its transaction was aborted) and asks the
// coordinator for each decision: COMMIT -> commit, ABORT (including "never heard of it": presumed
// abort) -> roll back, UNKNOWN or no answer -> leave it and ask again next pass. It never decides
// by itself. A three-phase-commit branch (one with a record in ThreePhaseRecords) is finished from
// its record when the record holds C or A, and otherwise by the coordinator's answer, which for
// 3PC is never a presumption: the coordinator logs START before any PREPARE. The decision is
// written to the record before it is applied. Thread-safe: RunOnce may be called from one thread
// at a time.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "participant-agent/branch_registry.h"
#include "participant-agent/three_phase_records.h"
#include "txn/v1/coordinator.pb.h"

namespace txn::agent {

// Where decisions come from: the coordinator's GetDecision.
class DecisionSource {
 public:
  virtual ~DecisionSource() = default;
  // UNAVAILABLE/DEADLINE_EXCEEDED when the coordinator cannot be asked.
  [[nodiscard]] virtual absl::StatusOr<v1::Decision> GetDecision(const std::string& txn_id) = 0;
  // 3PC: tells the coordinator what a termination round among the agents decided.
  [[nodiscard]] virtual absl::Status ReportDecision(const std::string& txn_id,
                                                    const std::string& participant,
                                                    v1::Decision decision) {
    return absl::UnimplementedError("this decision source takes no reports");
  }
  // Tells the coordinator every foreign branch seen now (empty: none any more), so that
  // operators see them (txctl foreign).
  [[nodiscard]] virtual absl::Status ReportForeignBranches(
      const std::vector<v1::ForeignBranch>& branches) {
    return absl::UnimplementedError("this decision source takes no reports");
  }
};

struct ReconcilePass {
  int committed = 0;
  int aborted = 0;
  int undecided = 0;  // coordinator said UNKNOWN or could not be asked
  int foreign = 0;    // prepared with our gid prefix for another coordinator node: left alone
};

class InDoubtReconciler {
 public:
  // `coordinator_node`: the node id of this agent's coordinator; a prepared branch of another
  // node's is reported (log with how long it has been seen, gauge
  // txagent_foreign_prepared_branches, and to the coordinator for txctl foreign), never
  // finished: its coordinator is not ours to ask.
  // Empty: every branch is asked about.
  InDoubtReconciler(BranchRegistry* registry, DecisionSource* decisions,
                    ThreePhaseRecords* three_phase = nullptr, std::string coordinator_node = "",
                    common::Clock* clock = nullptr)
      : registry_(registry),
        decisions_(decisions),
        three_phase_(three_phase),
        coordinator_node_(std::move(coordinator_node)),
        clock_(clock) {}

  // One pass over the prepared branches. Errors: the database could not be listed.
  [[nodiscard]] absl::StatusOr<ReconcilePass> RunOnce();

 private:
  // Logs and counts `gid`, a foreign branch, with how long it has been seen.
  void NoteForeign(const std::string& gid, std::map<std::string, int64_t>* still_seen);

  BranchRegistry* const registry_;
  DecisionSource* const decisions_;
  ThreePhaseRecords* const three_phase_;
  const std::string coordinator_node_;
  common::Clock* const clock_;
  // Foreign branches seen, with when first (monotonic ms); RunOnce is called from one thread.
  std::map<std::string, int64_t> foreign_first_seen_;
  bool reported_foreign_ = false;  // the last report to the coordinator was not empty
};

}  // namespace txn::agent
