#include "participant-agent/three_phase_terminator.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "protocol/three_phase_wire.h"

namespace txn::agent {

using Kind = protocol::TerminationRound::Next::Kind;

namespace {

std::string Fingerprint(const protocol::TpcRecord& rec) {
  return absl::StrCat(protocol::TpcStateName(rec.state), "|", protocol::BallotString(rec.promised), "|",
                      protocol::BallotString(rec.attempted));
}

v1::BranchRef RefOf(const std::string& txn_id, size_t index) {
  v1::BranchRef ref;
  ref.set_txn_id(txn_id);
  ref.set_branch(static_cast<uint32_t>(index));
  return ref;
}

const char* Name(protocol::Decision d) { return d == protocol::Decision::kCommit ? "COMMIT" : "ABORT"; }

}  // namespace

absl::StatusOr<TerminationPass> ThreePhaseTerminator::RunOnce() {
  TerminationPass pass;
  TXN_ASSIGN_OR_RETURN(std::vector<std::string> gids, records_->ListUndecided());
  std::map<std::string, Watch> still;
  const int64_t now = clock_->NowMonotonicMs();
  for (const std::string& gid : gids) {
    absl::StatusOr<std::optional<protocol::TpcRecord>> rec = records_->Load(gid);
    if (!rec.ok() || !*rec || protocol::IsFinal((*rec)->state)) continue;
    Watch w = watch_.count(gid) ? watch_[gid] : Watch{};
    const std::string fp = Fingerprint(**rec);
    if (w.fingerprint != fp) {
      w.fingerprint = fp;
      w.since_ms = now;
    }
    const auto& members = (*rec)->members;
    const size_t turn = std::find(members.begin(), members.end(), self_) - members.begin();
    int64_t wait = options_.timeout_ms * static_cast<int64_t>(std::min(turn, members.size()) + 1);
    // In W the coordinator may still be collecting votes (its prepare timeout is 10 s by
    // default): wait four times as long.
    if ((*rec)->state == protocol::TpcState::kWaiting) wait *= 4;
    if (now - w.since_ms >= wait) {
      absl::StatusOr<bool> decided = Terminate(gid, **rec, w);
      if (!decided.ok()) {
        common::LogWarning(
            absl::StrCat("branch=", gid, " 3PC termination failed: ", decided.status().message()));
      }
      if (decided.ok() && *decided) {
        ++pass.decided;
        continue;
      }
      ++pass.blocked;
      w.since_ms = now;  // wait a full turn again before the next round
    }
    still[gid] = w;
  }
  watch_ = std::move(still);
  return pass;
}

absl::StatusOr<bool> ThreePhaseTerminator::Terminate(const std::string& gid,
                                                     const protocol::TpcRecord& rec, Watch& w) {
  std::optional<common::BranchName> name = common::ParseBranchGid(gid);
  if (!name) return absl::InvalidArgumentError(absl::StrCat("not a branch gid: ", gid));
  // Which member we are comes from our own gid, and must agree with our name.
  const size_t me = name->branch;
  if (me >= rec.members.size() || rec.members[me] != self_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "branch ", gid, " is member '", me < rec.members.size() ? rec.members[me] : "?",
        "' of its transaction, but this agent is '", self_, "'"));
  }
  // E4: ask the coordinator first. Its COMMIT or ABORT for a 3PC transaction is final.
  absl::StatusOr<v1::Decision> asked = coordinator_->GetDecision(name->txn_id);
  if (asked.ok() && (*asked == v1::DECISION_COMMIT || *asked == v1::DECISION_ABORT)) {
    TXN_RETURN_IF_ERROR(Finish(
        gid, rec, *asked == v1::DECISION_COMMIT ? protocol::Decision::kCommit : protocol::Decision::kAbort,
        /*tell_coordinator=*/false));
    return true;
  }

  // T1: a ballot above everything promised or seen.
  const protocol::Ballot ballot =
      protocol::NextBallot(std::max(rec.promised.round, w.highest_round), self_);
  protocol::TerminationRound round(ballot, rec.members);
  common::LogInfo(absl::StrCat("branch=", gid, " coordinator silent (",
                               asked.ok() ? "UNKNOWN" : std::string(asked.status().message()),
                               "): termination round at ballot ", protocol::BallotString(ballot)));
  const v1::Ballot wire_ballot = protocol::BallotToProto(ballot);
  // Our own member first, then the others in order.
  std::vector<size_t> order = {me};
  for (size_t i = 0; i < rec.members.size(); ++i) {
    if (i != me) order.push_back(i);
  }
  // The first answer that ends a phase (have == false: none yet).
  protocol::TerminationRound::Next next;
  bool have = false;
  auto see = [&](const protocol::TerminationRound::Next& n) {
    if (n.kind != Kind::kWait) {
      next = n;
      have = true;
    }
    w.highest_round = std::max(w.highest_round, round.highest_round_seen());
  };

  // T1/T2/T3: ELECT. Our own promise must be durable before anyone else hears the ballot: if it
  // cannot be written (or was refused), the round does not start, so a ballot is never used
  // without being remembered.
  for (size_t i : order) {
    if (have) break;
    v1::ElectRequest req;
    *req.mutable_ref() = RefOf(name->txn_id, i);
    *req.mutable_ballot() = wire_ballot;
    req.set_participant(rec.members[i]);
    absl::StatusOr<v1::TerminationReply> r =
        i == me ? records_->Elect(req) : peers_->Elect(rec.members[i], req);
    if (i == me) {
      if (!r.ok()) return r.status();
      if (r->kind() != v1::TerminationReply::KIND_STATE &&
          r->kind() != v1::TerminationReply::KIND_DECIDED) {
        see(round.OnElectReply(rec.members[i], protocol::ReplyFromProto(*r)));
        return false;
      }
    }
    if (!r.ok()) continue;  // unreachable: not part of this round
    see(round.OnElectReply(rec.members[i], protocol::ReplyFromProto(*r)));
  }
  if (!have || next.kind == Kind::kAbandon) return false;  // no majority, or a later round
  if (next.kind == Kind::kDecided) {
    TXN_RETURN_IF_ERROR(Finish(gid, rec, next.decision, /*tell_coordinator=*/true));
    return true;
  }

  // T5/T6: PRE_x, our own first (persisted: if it is refused or fails, the round stops before
  // anyone else hears it); a majority of ACKs decides.
  const v1::PreDecision direction = next.direction == protocol::Direction::kPreCommit
                                        ? v1::PRE_DECISION_PRE_COMMIT
                                        : v1::PRE_DECISION_PRE_ABORT;
  have = false;
  for (size_t i : order) {
    if (have) break;
    v1::PreDecideRequest req;
    *req.mutable_ref() = RefOf(name->txn_id, i);
    *req.mutable_ballot() = wire_ballot;
    req.set_direction(direction);
    req.set_participant(rec.members[i]);
    absl::StatusOr<v1::TerminationReply> r =
        i == me ? records_->PreDecide(req) : peers_->PreDecide(rec.members[i], req);
    if (i == me) {
      if (!r.ok()) return r.status();
      if (r->kind() != v1::TerminationReply::KIND_ACK &&
          r->kind() != v1::TerminationReply::KIND_DECIDED) {
        see(round.OnPreDecideReply(rec.members[i], protocol::ReplyFromProto(*r)));
        return false;
      }
    }
    if (!r.ok()) continue;
    see(round.OnPreDecideReply(rec.members[i], protocol::ReplyFromProto(*r)));
  }
  if (!have || next.kind != Kind::kDecided) return false;
  // T7.
  TXN_RETURN_IF_ERROR(Finish(gid, rec, next.decision, /*tell_coordinator=*/true));
  return true;
}

absl::Status ThreePhaseTerminator::Finish(const std::string& gid, const protocol::TpcRecord& rec,
                                          protocol::Decision d, bool tell_coordinator) {
  std::optional<common::BranchName> name = common::ParseBranchGid(gid);
  common::LogInfo(absl::StrCat("branch=", gid, " 3PC decided ", Name(d),
                               " without the coordinator; telling the other members"));
  // Our own branch: the record, then the database.
  if (d == protocol::Decision::kCommit) {
    v1::CommitBranchRequest req;
    *req.mutable_ref() = RefOf(name->txn_id, name->branch);
    req.set_three_phase(true);
    TXN_ASSIGN_OR_RETURN(v1::CommitBranchResponse r, registry_->Commit(req));
    (void)r;
  } else {
    v1::RollbackBranchRequest req;
    *req.mutable_ref() = RefOf(name->txn_id, name->branch);
    req.set_three_phase(true);
    TXN_ASSIGN_OR_RETURN(v1::RollbackBranchResponse r, registry_->Rollback(req));
    (void)r;
  }
  // The coordinator, which logs and adopts it (best effort: its own round would find it too).
  if (tell_coordinator) {
    absl::Status told = coordinator_->ReportDecision(
        name->txn_id, self_,
        d == protocol::Decision::kCommit ? v1::DECISION_COMMIT : v1::DECISION_ABORT);
    if (!told.ok()) {
      common::LogWarning(absl::StrCat("branch=", gid, " could not report ", Name(d),
                                      " to the coordinator: ", told.message()));
    }
  }
  // The others, best effort: each also finds it by its own round or from the coordinator.
  for (size_t i = 0; i < rec.members.size(); ++i) {
    if (rec.members[i] == self_) continue;
    absl::Status s;
    if (d == protocol::Decision::kCommit) {
      v1::CommitBranchRequest req;
      *req.mutable_ref() = RefOf(name->txn_id, i);
      req.set_three_phase(true);
      s = peers_->Commit(rec.members[i], req);
    } else {
      v1::RollbackBranchRequest req;
      *req.mutable_ref() = RefOf(name->txn_id, i);
      req.set_three_phase(true);
      s = peers_->Rollback(rec.members[i], req);
    }
    if (!s.ok()) {
      common::LogWarning(absl::StrCat("branch=", gid, " could not tell ", rec.members[i], " ",
                                      Name(d), ": ", s.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace txn::agent
