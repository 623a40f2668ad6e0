// ForeignBranchBook: what each agent last reported of the prepared branches of other
// coordinator nodes in its database (Coordinator.ReportForeignBranches), for operators
// (Admin.ListForeignBranches, `txctl foreign`). Such a branch holds its locks and a prepared-
// transaction slot until someone finishes it by hand; nothing here acts on them.
//
// An agent reports its whole list on every reconcile pass; a report replaces the agent's
// previous one, and one not renewed within `ttl_ms` is dropped (the agent is gone, or stopped
// reporting). At most kMaxPerParticipant branches are kept per agent. A report is taken only
// whole and only if every branch in it is what an agent finds: a gid of txcoord's form whose
// node is the one named and is not this coordinator's (its own branches it resolves itself).
// Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "common/clock.h"
#include "txn/v1/coordinator.pb.h"

namespace txn::driver {

class ForeignBranchBook {
 public:
  static constexpr int kMaxPerParticipant = 1000;
  ForeignBranchBook(common::Clock* clock, int64_t ttl_ms, std::string own_node)
      : clock_(clock), ttl_ms_(ttl_ms), own_node_(std::move(own_node)) {}

  // INVALID_ARGUMENT naming the first branch that is not a foreign branch (nothing is taken).
  absl::Status Report(const v1::ReportForeignBranchesRequest& report);
  v1::ListForeignBranchesResponse List() const;

 private:
  struct Last {
    v1::ReportForeignBranchesRequest report;
    int64_t unix_ms = 0;
  };
  common::Clock* const clock_;
  const int64_t ttl_ms_;
  const std::string own_node_;
  mutable std::mutex mu_;
  std::map<std::string, Last> by_participant_ ABSL_GUARDED_BY(mu_);
};

}  // namespace txn::driver
