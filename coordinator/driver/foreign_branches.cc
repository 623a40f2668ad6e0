#include "coordinator/driver/foreign_branches.h"

#include "absl/strings/str_cat.h"
#include "common/ids.h"

namespace txn::driver {

absl::Status ForeignBranchBook::Report(const v1::ReportForeignBranchesRequest& report) {
  for (int i = 0; i < report.branches_size(); ++i) {
    const v1::ForeignBranch& b = report.branches(i);
    std::string problem;
    if (!common::ParseBranchGid(b.gid())) {
      problem = "gid is not a txcoord branch name (txc_<txn id>_<branch>)";
    } else if (b.node_id() != common::NodeOfGid(b.gid())) {
      problem = "node_id is not the node its gid names";
    } else if (b.node_id() == own_node_) {
      problem = "it is this coordinator's own branch, not a foreign one";
    } else if (b.seen_ms() < 0) {
      problem = "seen_ms is negative";
    }
    if (!problem.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "branches[", i, "] ('", b.gid().substr(0, 70), "'): ", problem, "; report not taken"));
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (report.branches().empty()) {
    by_participant_.erase(report.participant());
    return absl::OkStatus();
  }
  Last& last = by_participant_[report.participant()];
  last.report = report;
  if (last.report.branches_size() > kMaxPerParticipant) {
    last.report.mutable_branches()->DeleteSubrange(
        kMaxPerParticipant, last.report.branches_size() - kMaxPerParticipant);
  }
  last.unix_ms = clock_->NowUnixMs();
  return absl::OkStatus();
}

v1::ListForeignBranchesResponse ForeignBranchBook::List() const {
  v1::ListForeignBranchesResponse out;
  const int64_t now = clock_->NowUnixMs();
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [participant, last] : by_participant_) {
    if (now - last.unix_ms > ttl_ms_) continue;
    for (const v1::ForeignBranch& b : last.report.branches()) {
      v1::ForeignBranchReport* r = out.add_branches();
      r->set_participant(participant);
      *r->mutable_branch() = b;
      r->set_reported_unix_ms(last.unix_ms);
    }
  }
  return out;
}

}  // namespace txn::driver
