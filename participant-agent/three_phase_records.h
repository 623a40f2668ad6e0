// ThreePhaseRecords: the agent's side of three-phase commit (docs/three-phase.md sections 3
// and 8). It keeps one record per 3PC branch in the agent's own table in its database
// (ThreePhaseRecordStore::StoreTpcRecord: txcoord_3pc), and answers ELECT and PRE_COMMIT /
// PRE_ABORT with the pure rules of protocol/three_phase_quorum.h, writing the record *before* each
// reply. The agent keeps nothing on its own disk: a replacement agent reads the same table.
//
// Calls on one branch run in turn (a lock per gid), so a YES vote racing an ELECT is decided in
// one order: an ELECT that finds no record aborts the branch unilaterally (it never voted YES);
// a PREPARE that then finds that A record rolls its prepared transaction back and votes NO.
//
// Thread-safe.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "protocol/three_phase_quorum.h"
#include "participant-agent/resource_adapter.h"
#include "txn/v1/participant.pb.h"

namespace txn::agent {

class ThreePhaseRecords {
 public:
  // `self`: this agent's participant name (--name). Requests meant for another member, and
  // Prepares that place this agent elsewhere in the members, are refused.
  ThreePhaseRecords(ResourceAdapter* adapter, std::string self)
      : adapter_(adapter), store_(adapter->three_phase_records()), self_(std::move(self)) {}

  // After the database PREPARE of `gid`, before voting YES: writes {W, promised B0, members}.
  // Returns false when the branch was aborted by a termination round first (the caller rolls
  // the prepared transaction back and votes NO). A record already there (a retried Prepare)
  // is kept as it is.
  absl::StatusOr<bool> RecordYes(const std::string& gid, const std::vector<std::string>& members);

  // E1 and E2. An ELECT that aborts a branch with no record also rolls back a prepared
  // transaction left by a crash between PREPARE and the record write (E5).
  absl::StatusOr<v1::TerminationReply> Elect(const v1::ElectRequest& req);
  absl::StatusOr<v1::TerminationReply> PreDecide(const v1::PreDecideRequest& req);

  // E3, before COMMIT PREPARED / ROLLBACK: persists C or A. FAILED_PRECONDITION (and a loud log
  // line) when the record holds the opposite decision: a protocol bug, never applied.
  absl::Status RecordDecision(const std::string& gid, protocol::Decision decision);

  // The record of `gid` (nullopt: none), for the reconciler and the termination timer.
  absl::StatusOr<std::optional<protocol::TpcRecord>> Load(const std::string& gid);
  // The gids whose record is not decided, for the termination timer. Makes the records' table
  // first: on a database no three-phase transaction has reached yet there is none to scan.
  absl::StatusOr<std::vector<std::string>> ListUndecided();

 private:
  std::shared_ptr<std::mutex> LockFor(const std::string& gid);
  absl::Status Ensure();
  absl::Status Store(const std::string& gid, const protocol::TpcRecord& rec);

  absl::Status CheckAddressedToMe(const std::string& participant) const;

  ResourceAdapter* const adapter_;
  ThreePhaseRecordStore* const store_;  // nullptr: the database keeps no records (UNIMPLEMENTED)
  const std::string self_;
  std::mutex mu_;
  bool table_ready_ = false;                                          // guarded by mu_
  std::unordered_map<std::string, std::weak_ptr<std::mutex>> locks_;  // guarded by mu_
};

// Conversions between the stored row and the pure core's record.
absl::StatusOr<protocol::TpcRecord> RecordFromRow(const TpcRow& row);
TpcRow RowFromRecord(const protocol::TpcRecord& rec);

}  // namespace txn::agent
