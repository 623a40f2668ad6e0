#include "participant-agent/in_doubt_reconciler.h"

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/status_macros.h"

namespace txn::agent {

void InDoubtReconciler::NoteForeign(const std::string& gid,
                                    std::map<std::string, int64_t>* still_seen) {
  const int64_t now = clock_ != nullptr ? clock_->NowMonotonicMs() : 0;
  auto [it, first] = foreign_first_seen_.emplace(gid, now);
  (*still_seen)[gid] = it->second;
  const int64_t seen_s = (now - it->second) / 1000;
  // Once when found, then about every ten minutes while it stays.
  if (first || (seen_s > 0 && seen_s % 600 < 5)) {
    common::LogWarning(absl::StrCat(
        "branch=", gid, " is prepared for coordinator node '", common::NodeOfGid(gid),
        "', not this agent's ('", coordinator_node_, "'); seen for ", seen_s,
        " s. Nothing here will finish it: an operator must COMMIT or ROLLBACK it by hand, after "
        "asking that node's coordinator"));
  }
}

absl::StatusOr<ReconcilePass> InDoubtReconciler::RunOnce() {
  TXN_ASSIGN_OR_RETURN(v1::ListInDoubtResponse in_doubt, registry_->ListInDoubt());
  ReconcilePass pass;
  std::map<std::string, int64_t> foreign_seen;
  for (const auto& b : in_doubt.branches()) {
    const std::string& gid = b.native_name();
    if (!coordinator_node_.empty() && common::NodeOfGid(gid) != coordinator_node_) {
      ++pass.foreign;
      NoteForeign(gid, &foreign_seen);
      continue;
    }
    bool three_phase = false;
    std::optional<v1::Decision> recorded;
    if (three_phase_ != nullptr) {
      absl::StatusOr<std::optional<protocol::TpcRecord>> rec = three_phase_->Load(gid);
      if (!rec.ok()) {
        ++pass.undecided;
        common::LogWarning(absl::StrCat(
            "branch=", gid, " in doubt; cannot read its 3PC record: ", rec.status().message()));
        continue;
      }
      if (*rec) {
        three_phase = true;
        if ((*rec)->state == protocol::TpcState::kCommitted) recorded = v1::DECISION_COMMIT;
        if ((*rec)->state == protocol::TpcState::kAborted) recorded = v1::DECISION_ABORT;
      }
    }
    absl::StatusOr<v1::Decision> d = recorded ? absl::StatusOr<v1::Decision>(*recorded)
                                              : decisions_->GetDecision(b.ref().txn_id());
    if (!d.ok()) {
      ++pass.undecided;
      common::LogWarning(absl::StrCat(
          "branch=", gid, " in doubt; cannot ask the coordinator: ", d.status().message()));
      continue;
    }
    if (*d == v1::DECISION_COMMIT) {
      v1::CommitBranchRequest req;
      *req.mutable_ref() = b.ref();
      req.set_three_phase(three_phase);
      auto r = registry_->Commit(req);
      if (r.ok() && r->result() == v1::BRANCH_RESULT_COMMITTED) {
        ++pass.committed;
        common::LogInfo(
            absl::StrCat("branch=", gid, " in doubt: committed (coordinator said COMMIT)"));
      } else {
        ++pass.undecided;
        common::LogWarning(absl::StrCat("branch=", gid, " commit failed: ",
                                        r.ok() ? r->reason() : std::string(r.status().message())));
      }
    } else if (*d == v1::DECISION_ABORT) {
      v1::RollbackBranchRequest req;
      *req.mutable_ref() = b.ref();
      req.set_three_phase(three_phase);
      auto r = registry_->Rollback(req);
      if (r.ok()) {
        ++pass.aborted;
        common::LogInfo(
            absl::StrCat("branch=", gid, " in doubt: rolled back (coordinator said ABORT)"));
      } else {
        ++pass.undecided;
        common::LogWarning(
            absl::StrCat("branch=", gid, " rollback failed: ", r.status().message()));
      }
    } else {
      ++pass.undecided;
    }
  }
  foreign_first_seen_ = std::move(foreign_seen);  // forgets those no longer prepared
  if (!foreign_first_seen_.empty() || reported_foreign_) {
    const int64_t now = clock_ != nullptr ? clock_->NowMonotonicMs() : 0;
    std::vector<v1::ForeignBranch> report;
    for (const auto& [gid, first_seen] : foreign_first_seen_) {
      v1::ForeignBranch b;
      b.set_gid(gid);
      b.set_node_id(common::NodeOfGid(gid));
      b.set_seen_ms(now - first_seen);
      report.push_back(std::move(b));
    }
    // Best effort: sent again next pass, and the log and gauge have them meanwhile.
    reported_foreign_ = decisions_->ReportForeignBranches(report).ok() ? !report.empty() : true;
  }
  auto& metrics = common::DefaultMetrics();
  metrics
      .GetGauge("txagent_foreign_prepared_branches",
                "Prepared branches with txcoord's gid prefix for another coordinator node "
                "(--coordinator-node-id): no coordinator here will finish them.")
      ->Set(static_cast<double>(pass.foreign));
  const std::string help = "In-doubt branches this agent finished by asking the coordinator.";
  metrics.GetCounter("txagent_reconciled_branches_total", help, {{"decision", "commit"}})
      ->Inc(pass.committed);
  metrics.GetCounter("txagent_reconciled_branches_total", help, {{"decision", "abort"}})
      ->Inc(pass.aborted);
  metrics
      .GetGauge("txagent_in_doubt_branches",
                "Prepared branches still waiting for a decision after the last reconcile pass.")
      ->Set(static_cast<double>(pass.undecided));
  return pass;
}

}  // namespace txn::agent
