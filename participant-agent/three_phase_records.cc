#include "participant-agent/three_phase_records.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "participant-agent/branch_registry.h"

namespace txn::agent {

using core::TpcState;

namespace {

v1::TpcState StateToProto(TpcState s) {
  switch (s) {
    case TpcState::kNone:
      return v1::TPC_STATE_UNSPECIFIED;
    case TpcState::kWaiting:
      return v1::TPC_STATE_WAITING;
    case TpcState::kPreCommitted:
      return v1::TPC_STATE_PRE_COMMITTED;
    case TpcState::kPreAborted:
      return v1::TPC_STATE_PRE_ABORTED;
    case TpcState::kCommitted:
      return v1::TPC_STATE_COMMITTED;
    case TpcState::kAborted:
      return v1::TPC_STATE_ABORTED;
  }
  return v1::TPC_STATE_UNSPECIFIED;
}

TpcState StateFromProto(v1::TpcState s) {
  switch (s) {
    case v1::TPC_STATE_WAITING:
      return TpcState::kWaiting;
    case v1::TPC_STATE_PRE_COMMITTED:
      return TpcState::kPreCommitted;
    case v1::TPC_STATE_PRE_ABORTED:
      return TpcState::kPreAborted;
    case v1::TPC_STATE_COMMITTED:
      return TpcState::kCommitted;
    case v1::TPC_STATE_ABORTED:
      return TpcState::kAborted;
    default:
      return TpcState::kNone;
  }
}

absl::Status CheckBallot(const v1::Ballot& b) {
  if (b.round() == 0) return absl::InvalidArgumentError("ballot.round must be at least 1");
  if (b.owner().size() > 255 || absl::StrContains(b.owner(), ',')) {
    return absl::InvalidArgumentError("ballot.owner must be a participant name");
  }
  return absl::OkStatus();
}

}  // namespace

core::Ballot BallotFromProto(const v1::Ballot& b) { return core::Ballot{b.round(), b.owner()}; }

v1::Ballot BallotToProto(const core::Ballot& b) {
  v1::Ballot out;
  out.set_round(b.round);
  out.set_owner(b.owner);
  return out;
}

v1::TerminationReply ReplyToProto(const core::TpcReply& r) {
  v1::TerminationReply out;
  switch (r.kind) {
    case core::TpcReply::Kind::kState:
      out.set_kind(v1::TerminationReply::KIND_STATE);
      break;
    case core::TpcReply::Kind::kAck:
      out.set_kind(v1::TerminationReply::KIND_ACK);
      break;
    case core::TpcReply::Kind::kNack:
      out.set_kind(v1::TerminationReply::KIND_NACK);
      break;
    case core::TpcReply::Kind::kDecided:
      out.set_kind(v1::TerminationReply::KIND_DECIDED);
      break;
  }
  *out.mutable_ballot() = BallotToProto(r.ballot);
  out.set_state(StateToProto(r.state));
  *out.mutable_attempted() = BallotToProto(r.attempted);
  return out;
}

core::TpcReply ReplyFromProto(const v1::TerminationReply& r) {
  core::TpcReply out;
  switch (r.kind()) {
    case v1::TerminationReply::KIND_STATE:
      out.kind = core::TpcReply::Kind::kState;
      break;
    case v1::TerminationReply::KIND_ACK:
      out.kind = core::TpcReply::Kind::kAck;
      break;
    case v1::TerminationReply::KIND_DECIDED:
      out.kind = core::TpcReply::Kind::kDecided;
      break;
    default:
      out.kind = core::TpcReply::Kind::kNack;
      break;
  }
  out.ballot = BallotFromProto(r.ballot());
  out.state = StateFromProto(r.state());
  out.attempted = BallotFromProto(r.attempted());
  return out;
}

absl::StatusOr<core::TpcRecord> RecordFromRow(const TpcRow& row) {
  core::TpcRecord rec;
  // Stored as the core's short names (W, PC, PA, C, A).
  bool known = false;
  for (TpcState s : {TpcState::kWaiting, TpcState::kPreCommitted, TpcState::kPreAborted,
                     TpcState::kCommitted, TpcState::kAborted}) {
    if (row.state == core::TpcStateName(s)) {
      rec.state = s;
      known = true;
    }
  }
  if (!known) {
    return absl::DataLossError(absl::StrCat("unknown 3PC record state '", row.state, "'"));
  }
  rec.promised = core::Ballot{row.promised_round, row.promised_owner};
  rec.attempted = core::Ballot{row.attempted_round, row.attempted_owner};
  rec.members = row.members;
  return rec;
}

TpcRow RowFromRecord(const core::TpcRecord& rec) {
  return TpcRow{.state = std::string(core::TpcStateName(rec.state)),
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
  TXN_RETURN_IF_ERROR(adapter_->EnsureTpcTable());
  table_ready_ = true;
  return absl::OkStatus();
}

absl::StatusOr<std::optional<core::TpcRecord>> ThreePhaseRecords::Load(const std::string& gid) {
  TXN_RETURN_IF_ERROR(Ensure());
  TXN_ASSIGN_OR_RETURN(std::optional<TpcRow> row, adapter_->LoadTpcRecord(gid));
  if (!row) return std::optional<core::TpcRecord>();
  TXN_ASSIGN_OR_RETURN(core::TpcRecord rec, RecordFromRow(*row));
  return std::optional<core::TpcRecord>(std::move(rec));
}

absl::Status ThreePhaseRecords::Store(const std::string& gid, const core::TpcRecord& rec) {
  return adapter_->StoreTpcRecord(gid, RowFromRecord(rec));
}

absl::StatusOr<bool> ThreePhaseRecords::RecordYes(const std::string& gid,
                                                  const std::vector<std::string>& members) {
  for (const std::string& m : members) {
    if (m.empty() || m.size() > 255 || absl::StrContains(m, ',')) {
      return absl::InvalidArgumentError(
          absl::StrCat("three_phase_members: '", m, "' is not a participant name"));
    }
  }
  auto m = LockFor(gid);
  std::lock_guard<std::mutex> lock(*m);
  TXN_ASSIGN_OR_RETURN(std::optional<core::TpcRecord> rec, Load(gid));
  if (rec) return rec->state != TpcState::kAborted;
  TXN_RETURN_IF_ERROR(Store(gid, core::WaitingRecord(members)));
  return true;
}

absl::StatusOr<v1::TerminationReply> ThreePhaseRecords::Elect(const v1::ElectRequest& req) {
  TXN_ASSIGN_OR_RETURN(std::string gid, GidOf(req.ref()));
  TXN_RETURN_IF_ERROR(CheckBallot(req.ballot()));
  auto m = LockFor(gid);
  std::lock_guard<std::mutex> lock(*m);
  TXN_ASSIGN_OR_RETURN(std::optional<core::TpcRecord> rec, Load(gid));
  core::Handled h = core::OnElect(rec, BallotFromProto(req.ballot()));
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
  TXN_RETURN_IF_ERROR(CheckBallot(req.ballot()));
  core::Direction d;
  switch (req.direction()) {
    case v1::PRE_DECISION_PRE_COMMIT:
      d = core::Direction::kPreCommit;
      break;
    case v1::PRE_DECISION_PRE_ABORT:
      d = core::Direction::kPreAbort;
      break;
    default:
      return absl::InvalidArgumentError("direction must be PRE_COMMIT or PRE_ABORT");
  }
  auto m = LockFor(gid);
  std::lock_guard<std::mutex> lock(*m);
  TXN_ASSIGN_OR_RETURN(std::optional<core::TpcRecord> rec, Load(gid));
  core::Handled h = core::OnPreDecide(rec, BallotFromProto(req.ballot()), d);
  if (h.persist) TXN_RETURN_IF_ERROR(Store(gid, *h.persist));
  return ReplyToProto(h.reply);
}

absl::Status ThreePhaseRecords::RecordDecision(const std::string& gid, core::Decision decision) {
  auto m = LockFor(gid);
  std::lock_guard<std::mutex> lock(*m);
  TXN_ASSIGN_OR_RETURN(std::optional<core::TpcRecord> rec, Load(gid));
  if (core::DecisionConflicts(rec, decision)) {
    std::string msg =
        absl::StrCat("3PC branch ", gid, " is recorded ", core::TpcStateName(rec->state),
                     " and was told to ", decision == core::Decision::kCommit ? "COMMIT" : "ABORT",
                     ": refusing (a protocol bug; nothing applied)");
    common::LogError(msg);
    return absl::FailedPreconditionError(msg);
  }
  core::Handled h = core::OnDecision(rec, decision);
  if (h.persist) TXN_RETURN_IF_ERROR(Store(gid, *h.persist));
  return absl::OkStatus();
}

}  // namespace txn::agent
