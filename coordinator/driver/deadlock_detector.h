// DeadlockDetector: the coordinator's global deadlock detector. Agents report the lock waits of
// their branches (Coordinator.ReportWaits, one snapshot per agent); the detector keeps them in a
// WaitForGraph (coordinator/core/wait_for_graph.h, which holds the rule) and, after every
// report, aborts the youngest executing transaction of each cycle through
// TransactionDriver::AbortDeadlockVictim. The victim's outcome says it was chosen to break a
// deadlock and names the cycle; its branches' Rollbacks interrupt the statement that waits.
//
// Metrics: txcoord_deadlocks_broken_total, txcoord_deadlock_cycle_age_seconds (from the cycle's
// last wait starting to its victim's abort, as the agents measured the waits), txcoord_lock_waits
// (edges held now). Thread-safe.
#pragma once

#include <mutex>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "coordinator/core/wait_for_graph.h"
#include "txn/v1/coordinator.pb.h"

namespace txn::driver {

class TransactionDriver;

struct DeadlockOptions {
  // Detection on; off, reports are still taken (and shown by txctl waits) but nobody is aborted.
  bool enabled = true;
  // A report not renewed within this long is dropped (agents renew theirs while waits last).
  int64_t edge_ttl_ms = 1'000;
  // How long reports naming a victim are ignored while its locks are released.
  int64_t exclude_ms = 5'000;
};

// The transactions the detector may look at and abort (TransactionDriver; a fake in tests).
class DeadlockTarget {
 public:
  virtual ~DeadlockTarget() = default;
  // The standing of edge.waiter as the waiter of `edge` (see core::MemberStanding).
  virtual std::optional<core::MemberStanding> DeadlockStanding(const core::WaitEdge& edge) = 0;
  virtual bool AbortDeadlockVictim(const std::string& txn_id, const std::string& reason) = 0;
};

class DeadlockDetector {
 public:
  // `is_participant(name)`: whether `name` is a configured participant (reports from others
  // are refused).
  DeadlockDetector(DeadlockTarget* target, common::Clock* clock,
                   std::function<bool(const std::string&)> is_participant, DeadlockOptions options);

  // INVALID_ARGUMENT naming the bad field, NOT_FOUND for an unknown participant.
  absl::Status Report(const v1::ReportWaitsRequest& req);
  v1::ListWaitsResponse ListWaits();
  // The reason a victim's outcome carries.
  static std::string VictimReason(const core::DeadlockVictim& victim);

 private:
  DeadlockTarget* const target_;
  common::Clock* const clock_;
  const std::function<bool(const std::string&)> is_participant_;
  const DeadlockOptions options_;
  common::Counter* const broken_;
  common::Histogram* const cycle_age_;
  common::Gauge* const waits_;
  std::mutex mu_;
  core::WaitForGraph graph_ ABSL_GUARDED_BY(mu_);
  uint64_t broken_count_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace txn::driver
