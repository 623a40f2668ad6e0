// LockWaitReporter: tells the coordinator which of this agent's branches wait for whom, for the
// global deadlock detector (coordinator/driver/deadlock_detector.h). Neither database can see a
// deadlock that runs through two of them; the coordinator can, given every agent's waits.
//
// Each pass (RunOnce, on the agent's own reporting thread, never a gRPC or lane worker): once
// some branch's current call has run longer than `threshold_ms`, the branches with a call running
// are looked up in the database (CallsToLookUp; LockWaitSource::FindLockWaits, one query), and
// the waits found are sent as one snapshot (Coordinator.ReportWaits) that replaces this agent's
// previous one. While waits last, every pass that looks sends them again, which renews them at
// the coordinator (a database that must be left alone between looks, MariaDB, is looked at only
// every min_lock_wait_interval_ms; the passes between send nothing); the first pass that finds
// none sends an empty snapshot, which clears them. Sequence numbers start from the process's
// start time, so a restarted agent's reports are newer than its predecessor's.
//
// Each wait says how long, at most, the waiter has waited for that holder (WaitAges), as of the
// moment the report is sent.
//
// Waits on sessions that are not txcoord branches are reported too (with an empty holder txn
// id): never part of a cycle the coordinator can break, but an operator sees them in
// `txctl waits`. Not thread-safe: one thread calls RunOnce.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/clock.h"
#include "participant-agent/resource_adapter.h"
#include "participant-agent/wait_ages.h"
#include "txn/v1/coordinator.pb.h"

namespace txn::agent {

// Where reports go (the coordinator's ReportWaits; a fake in tests).
class WaitSink {
 public:
  virtual ~WaitSink() = default;
  virtual absl::Status ReportWaits(const v1::ReportWaitsRequest& req) = 0;
};

struct LockWaitReporterOptions {
  // No query is made until some call has run this long (shorter waits are not worth one).
  int64_t threshold_ms = 50;
};

// The branches a pass asks the database about: none while no call has run `threshold_ms`,
// otherwise every branch with a call running.
std::vector<LiveBranch> CallsToLookUp(const std::vector<LiveBranch>& live, int64_t threshold_ms);

class LockWaitReporter {
 public:
  // `live_branches` lists the agent's branches with a session (BranchRegistry::LiveBranches);
  // `source` is the adapter's lock-wait source (nullptr: it has none, and a pass that needs one
  // fails UNIMPLEMENTED).
  LockWaitReporter(std::string participant,
                   std::function<std::vector<LiveBranch>()> live_branches, LockWaitSource* source,
                   WaitSink* sink, common::Clock* clock, LockWaitReporterOptions options);

  // One pass. Returns how many waits were reported (0 also when nothing was sent).
  absl::StatusOr<int> RunOnce();

 private:
  const std::string participant_;
  const std::function<std::vector<LiveBranch>()> live_branches_;
  LockWaitSource* const source_;
  WaitSink* const sink_;
  common::Clock* const clock_;
  const LockWaitReporterOptions options_;
  uint64_t next_sequence_;
  // The last snapshot sent was not empty (or its send failed): the next empty one must be sent.
  bool coordinator_may_hold_waits_ = false;
  WaitAges ages_;
  // When the last FindLockWaits returned (monotonic ms); none yet: nullopt.
  std::optional<int64_t> last_look_end_ms_;
};

}  // namespace txn::agent
