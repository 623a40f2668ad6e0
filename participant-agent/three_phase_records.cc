#include "participant-agent/three_phase_records.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "protocol/three_phase_wire.h"
#include "participant-agent/branch_registry.h"

namespace txn::agent {

using protocol::BallotFromProto;
using protocol::ReplyToProto;
using protocol::TpcState;

namespace {

absl::Status CheckBallot(const v1::Ballot& b) {
  if (b.round() == 0) return absl::InvalidArgumentError("ballot.round must be at least 1");
  if (b.owner().size() > 255 || absl::StrContains(b.owner(), ',')) {
    return absl::InvalidArgumentError("ballot.owner must be a participant name");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<protocol::TpcRecord> RecordFromRow(const TpcRow& row) {
  protocol::TpcRecord rec;
  // Stored as the core's short names (W, PC, PA, C, A).
  bool known = false;
  for (TpcState s : {TpcState::kWaiting, TpcState::kPreCommitted, TpcState::kPreAborted,
                     TpcState::kCommitted, TpcState::kAborted}) {
    if (row.state == protocol::TpcStateName(s)) {
      rec.state = s;
      known = true;
    }
  }
  if (!known) {
    return absl::DataLossError(absl::StrCat("unknown 3PC record state '", row.state, "'"));
  }
  rec.promised = protocol::Ballot{row.promised_round, row.promised_owner};
  rec.attempted = protocol::Ballot{row.attempted_round, row.attempted_owner};
  rec.members = row.members;
  return rec;
}

TpcRow RowFromRecord(const protocol::TpcRecord& rec) {
  return TpcRow{.state = std::string(protocol::TpcStateName(rec.state)),
                .promised_round = rec.promised.round,
                .promised_owner = rec.promised.owner,
                .attempted_round = rec.attempted.round,
                .attempted_owner = rec.attempted.owner,
                .members = rec.members};
}

std::shared_ptr<std::mutex> ThreePhaseRecords::LockFor(const std::string& gid) {
  std::lock_guard<std::mutex> lock(mu_);
  if (locks_.size() > 4096) {
    for (auto it = locks_.begin(); it != locks_.end();) {
      it = it->second.expired() ? locks_.erase(it) : std::next(it);
    }
  }
  std::shared_ptr<std::mutex> m = locks_[gid].lock();
  if (!m) {
    m = std::make_shared<std::mutex>();
    locks_[gid] = m;
  }
  return m;
}

absl::Status ThreePhaseRecords::Ensure() {
  std::lock_guard<std::mutex> lock(mu_);
  if (table_ready_) return absl::OkStatus();
  if (store_ == nullptr) {
    return absl::UnimplementedError("this participant does not take part in three-phase commit");
  }
  TXN_RETURN_IF_ERROR(store_->EnsureTpcTable());
  table_ready_ = true;
  return absl::OkStatus();
}

absl::StatusOr<std::optional<protocol::TpcRecord>> ThreePhaseRecords::Load(const std::string& gid) {
  TXN_RETURN_IF_ERROR(Ensure());
  TXN_ASSIGN_OR_RETURN(std::optional<TpcRow> row, store_->LoadTpcRecord(gid));
  if (!row) return std::optional<protocol::TpcRecord>();
  TXN_ASSIGN_OR_RETURN(protocol::TpcRecord rec, RecordFromRow(*row));
  return std::optional<protocol::TpcRecord>(std::move(rec));
}

absl::StatusOr<std::vector<std::string>> ThreePhaseRecords::ListUndecided() {
  TXN_RETURN_IF_ERROR(Ensure());
  return store_->ListUndecidedTpc();
}

absl::Status ThreePhaseRecords::Store(const std::string& gid, const protocol::TpcRecord& rec) {
  TXN_RETURN_IF_ERROR(Ensure());
  return store_->StoreTpcRecord(gid, RowFromRecord(rec));
}

absl::Status ThreePhaseRecords::CheckAddressedToMe(const std::string& participant) const {
  if (participant.empty() || participant == self_) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat("this agent is participant '", self_,
                                                    "', not '", participant, "' (check --peer)"));
}

absl::StatusOr<bool> ThreePhaseRecords::RecordYes(const std::string& gid,
                                                  const std::vector<std::string>& members) {
  std::optional<common::BranchName> name = common::ParseBranchGid(gid);
  if (!name || name->branch >= members.size() || members[name->branch] != self_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "three_phase_members place branch ", name ? name->branch : 0, " at '",
        name && name->branch < members.size() ? members[name->branch] : std::string("?"),
        "', but this agent is '", self_, "'"));
  }
  for (const std::string& m : members) {
    if (m.empty() || m.size() > 255 || absl::StrContains(m, ',')) {
      return absl::InvalidArgumentError(
          absl::StrCat("three_phase_members: '", m, "' is not a participant name"));
    }
  }
  auto m = LockFor(gid);
  std::lock_guard<std::mutex> lock(*m);
  TXN_ASSIGN_OR_RETURN(std::optional<protocol::TpcRecord> rec, Load(gid));
  if (rec) return rec->state != TpcState::kAborted;
  TXN_RETURN_IF_ERROR(Store(gid, protocol::WaitingRecord(members)));
  return true;
}

absl::StatusOr<v1::TerminationReply> ThreePhaseRecords::Elect(const v1::ElectRequest& req) {
  TXN_ASSIGN_OR_RETURN(std::string gid, GidOf(req.ref()));
  TXN_RETURN_IF_ERROR(CheckAddressedToMe(req.participant()));
  TXN_RETURN_IF_ERROR(CheckBallot(req.ballot()));
  auto m = LockFor(gid);
  std::lock_guard<std::mutex> lock(*m);
  TXN_ASSIGN_OR_RETURN(std::optional<protocol::TpcRecord> rec, Load(gid));
  protocol::Handled h = protocol::OnElect(rec, BallotFromProto(req.ballot()));
  if (h.persist) {
    TXN_RETURN_IF_ERROR(Store(gid, *h.persist));
    if (!rec && h.persist->state == TpcState::kAborted) {
      // It never voted YES; a transaction prepared before a crash lost the vote is rolled back.
      absl::StatusOr<bool> prepared = adapter_->IsPrepared(gid);
      if (prepared.ok() && *prepared) (void)adapter_->RollbackPrepared(gid, "");
    }
  }
  return ReplyToProto(h.reply);
}

absl::StatusOr<v1::TerminationReply> ThreePhaseRecords::PreDecide(const v1::PreDecideRequest& req) {
  TXN_ASSIGN_OR_RETURN(std::string gid, GidOf(req.ref()));
  TXN_RETURN_IF_ERROR(CheckAddressedToMe(req.participant()));
  TXN_RETURN_IF_ERROR(CheckBallot(req.ballot()));
  protocol::Direction d;
  switch (req.direction()) {
    case v1::PRE_DECISION_PRE_COMMIT:
      d = protocol::Direction::kPreCommit;
      break;
    case v1::PRE_DECISION_PRE_ABORT:
      d = protocol::Direction::kPreAbort;
      break;
    default:
      return absl::InvalidArgumentError("direction must be PRE_COMMIT or PRE_ABORT");
  }
  auto m = LockFor(gid);
  std::lock_guard<std::mutex> lock(*m);
  TXN_ASSIGN_OR_RETURN(std::optional<protocol::TpcRecord> rec, Load(gid));
  protocol::Handled h = protocol::OnPreDecide(rec, BallotFromProto(req.ballot()), d);
  if (h.persist) TXN_RETURN_IF_ERROR(Store(gid, *h.persist));
  return ReplyToProto(h.reply);
}

absl::Status ThreePhaseRecords::RecordDecision(const std::string& gid, protocol::Decision decision) {
  auto m = LockFor(gid);
  std::lock_guard<std::mutex> lock(*m);
  TXN_ASSIGN_OR_RETURN(std::optional<protocol::TpcRecord> rec, Load(gid));
  if (protocol::DecisionConflicts(rec, decision)) {
    std::string msg =
        absl::StrCat("3PC branch ", gid, " is recorded ", protocol::TpcStateName(rec->state),
                     " and was told to ", decision == protocol::Decision::kCommit ? "COMMIT" : "ABORT",
                     ": refusing (a protocol bug; nothing applied)");
    common::LogError(msg);
    return absl::FailedPreconditionError(msg);
  }
  protocol::Handled h = protocol::OnDecision(rec, decision);
  if (h.persist) TXN_RETURN_IF_ERROR(Store(gid, *h.persist));
  return absl::OkStatus();
}

}  // namespace txn::agent
