#include "coordinator/driver/foreign_branches.h"

namespace txn::driver {

void ForeignBranchBook::Report(const v1::ReportForeignBranchesRequest& report) {
  std::lock_guard<std::mutex> lock(mu_);
  if (report.branches().empty()) {
    by_participant_.erase(report.participant());
    return;
  }
  Last& last = by_participant_[report.participant()];
  last.report = report;
  if (last.report.branches_size() > kMaxPerParticipant) {
    last.report.mutable_branches()->DeleteSubrange(
        kMaxPerParticipant, last.report.branches_size() - kMaxPerParticipant);
  }
  last.unix_ms = clock_->NowUnixMs();
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
