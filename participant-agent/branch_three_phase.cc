// The three-phase participant's part of BranchRegistry: what a 3PC Prepare, Commit and Rollback
// add to the two-phase branch (branch_registry.cc) through this agent's 3PC records
// (three_phase_records.h): a YES vote is recorded before it is sent, a decision before it is
// carried out, and a branch that the members' termination round already finished is answered
// from its record instead of running again. docs/three-phase.md is the protocol.
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "participant-agent/branch_registry.h"
#include "participant-agent/three_phase_records.h"

namespace txn::agent {

absl::Status BranchRegistry::CheckThreePhase() const {
  if (tpc_ == nullptr) {
    return absl::FailedPreconditionError("this agent does not take part in three-phase commit");
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::PrepareBranchResponse> BranchRegistry::PrepareThreePhase(
    const v1::PrepareBranchRequest& req, const std::string& gid) {
  TXN_RETURN_IF_ERROR(CheckThreePhase());
  if (req.ref().branch() >= static_cast<uint32_t>(req.three_phase_members_size())) {
    return absl::InvalidArgumentError("ref.branch is not among three_phase_members");
  }
  TXN_ASSIGN_OR_RETURN(std::optional<v1::PrepareBranchResponse> finished, FinishedByARound(gid));
  if (finished) return *std::move(finished);
  TXN_ASSIGN_OR_RETURN(v1::PrepareBranchResponse resp, PrepareLocal(req, gid));
  if (resp.vote() == v1::VOTE_NO) return resp;
  // The record before the YES (a read-only branch stays a member of the quorum too).
  std::vector<std::string> members(req.three_phase_members().begin(),
                                   req.three_phase_members().end());
  TXN_ASSIGN_OR_RETURN(bool recorded, tpc_->RecordYes(gid, members));
  if (recorded) return resp;
  // A termination round reached this branch before its vote and aborted it: roll the prepared
  // transaction back, once. If that fails (the database's own reasons stay in its adapter),
  // the reconciler finishes it from the A record.
  bool rolled_back = resp.vote() != v1::VOTE_YES;  // READ_ONLY: nothing is prepared
  if (!rolled_back) rolled_back = adapter_->RollbackPrepared(gid, resp.native_id()).ok();
  const std::string reason = "aborted by a termination round before it voted";
  if (rolled_back) {
    auto e = GetOrCreate(gid);
    std::lock_guard<std::mutex> lock(e->mu);
    e->initialized = true;
    e->state = State::kAborted;
    e->reason = reason;
  }
  // Otherwise the entry stays PREPARED: the reconciler rolls it back from the A record (a
  // Commit is refused by that record).
  resp.set_vote(v1::VOTE_NO);
  resp.set_reason(reason);
  return resp;
}

absl::StatusOr<std::optional<v1::PrepareBranchResponse>> BranchRegistry::FinishedByARound(
    const std::string& gid) {
  // A Prepare that comes again after the members decided without the coordinator (which then
  // still waits for votes) and the decision was carried out here: the decision stands, and the
  // operations must not run a second time (after a restart this agent no longer remembers the
  // branch). While the database still holds the branch prepared (the decision not carried out
  // yet), PrepareLocal finds it prepared and the record check answers as usual.
  TXN_ASSIGN_OR_RETURN(std::optional<protocol::TpcRecord> rec, tpc_->Load(gid));
  if (!rec || !protocol::IsFinal(rec->state)) return std::nullopt;
  TXN_ASSIGN_OR_RETURN(bool still_prepared, adapter_->IsPrepared(gid));
  if (still_prepared) return std::nullopt;
  const bool committed = rec->state == protocol::TpcState::kCommitted;
  const std::string reason = "aborted by a termination round";
  auto e = GetOrCreate(gid);
  std::lock_guard<std::mutex> lock(e->mu);
  Touch(gid, *e);
  if (!e->initialized) {
    e->initialized = true;
    e->state = committed ? State::kCommitted : State::kAborted;
    if (!committed) e->reason = reason;
  }
  v1::PrepareBranchResponse resp;
  resp.set_vote(committed ? v1::VOTE_YES : v1::VOTE_NO);
  if (!committed) resp.set_reason(reason);
  return resp;
}

absl::StatusOr<bool> BranchRegistry::RecordThreePhaseDecision(const std::string& gid,
                                                              protocol::Decision decision) {
  TXN_RETURN_IF_ERROR(CheckThreePhase());
  bool committed_before = false;
  if (decision == protocol::Decision::kCommit) {
    TXN_ASSIGN_OR_RETURN(std::optional<protocol::TpcRecord> rec, tpc_->Load(gid));
    committed_before = rec && rec->state == protocol::TpcState::kCommitted;
  }
  TXN_RETURN_IF_ERROR(tpc_->RecordDecision(gid, decision));
  return committed_before;
}

}  // namespace txn::agent
