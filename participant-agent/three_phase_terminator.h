// ThreePhaseTerminator: an agent's termination of its in-doubt 3PC branches when the coordinator
// is silent (docs/three-phase.md section 3, rules E4 and T0-T7). Each pass looks at this
// agent's undecided records (W, PC, PA); one that has not changed for its timeout is first asked
// of the coordinator (GetDecision: a COMMIT or ABORT there is final), and otherwise the agent runs
// a termination round as candidate, with the pure TerminationRound of protocol/:
//
//   - a ballot above everything it has promised or seen, promised to itself first (its own ELECT,
//     persisted like anyone's), then ELECT to every peer it can reach;
//   - with a majority of states, PRE_COMMIT or PRE_ABORT in the latest attempt's direction, its
//     own first (persisted), then the peers';
//   - a majority of ACKs decides: the decision goes into its own record and database, then to the
//     peers (Commit / Rollback with three_phase). Anything short of a majority decides nothing:
//     the branch waits, and the next pass tries again with a higher ballot.
//
// Members wait in turn (the member at index i waits (i + 1) timeouts, four times that in W, where
// the coordinator may still be collecting votes), so that usually one candidate runs; safety never
// depends on it. Calls are synchronous; RunOnce runs on the agent's background thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "participant-agent/branch_registry.h"
#include "participant-agent/in_doubt_reconciler.h"
#include "participant-agent/three_phase_records.h"

namespace txn::agent {

// How a candidate reaches its peers (the other members' agents, by participant name).
class PeerSet {
 public:
  virtual ~PeerSet() = default;
  // NOT_FOUND when `peer` is not configured here (--peer).
  virtual absl::StatusOr<v1::TerminationReply> Elect(const std::string& peer,
                                                     const v1::ElectRequest& req) = 0;
  virtual absl::StatusOr<v1::TerminationReply> PreDecide(const std::string& peer,
                                                         const v1::PreDecideRequest& req) = 0;
  virtual absl::Status Commit(const std::string& peer, const v1::CommitBranchRequest& req) = 0;
  virtual absl::Status Rollback(const std::string& peer, const v1::RollbackBranchRequest& req) = 0;
};

struct TerminatorOptions {
  // No progress on a branch for this long (times the member's turn) starts termination.
  int64_t timeout_ms = 3'000;
};

struct TerminationPass {
  int decided = 0;  // finished this pass (by the coordinator's answer or by a round)
  int blocked = 0;  // a round found no majority, or lost to a higher ballot
};

class ThreePhaseTerminator {
 public:
  ThreePhaseTerminator(std::string self, ThreePhaseRecords* records,
                       BranchRegistry* registry, DecisionSource* coordinator, PeerSet* peers,
                       common::Clock* clock, TerminatorOptions options)
      : self_(std::move(self)),
        records_(records),
        registry_(registry),
        coordinator_(coordinator),
        peers_(peers),
        clock_(clock),
        options_(options) {}

  // One pass over the undecided records. Errors: the records could not be listed.
  absl::StatusOr<TerminationPass> RunOnce();

 private:
  struct Watch {
    std::string fingerprint;  // the record as last seen
    int64_t since_ms = 0;     // unchanged since
    uint64_t highest_round = 0;
  };
  // Returns true when the branch was decided.
  absl::StatusOr<bool> Terminate(const std::string& gid, const protocol::TpcRecord& rec, Watch& w);
  // Applies `d` to this agent's own branch (record first), then tells the coordinator (when a
  // round of ours decided) and the peers.
  absl::Status Finish(const std::string& gid, const protocol::TpcRecord& rec, protocol::Decision d,
                      bool tell_coordinator);

  const std::string self_;
  ThreePhaseRecords* const records_;
  BranchRegistry* const registry_;
  DecisionSource* const coordinator_;
  PeerSet* const peers_;
  common::Clock* const clock_;
  const TerminatorOptions options_;
  std::map<std::string, Watch> watch_;  // by gid; only RunOnce's thread touches it
};

}  // namespace txn::agent
