#include "participant-agent/lock_wait_reporter.h"

#include <algorithm>
#include <unordered_map>

#include "common/ids.h"
#include "common/status_macros.h"

namespace txn::agent {

LockWaitReporter::LockWaitReporter(std::string participant,
                                   std::function<std::vector<LiveBranch>()> live_branches,
                                   LockWaitSource* source, WaitSink* sink, common::Clock* clock,
                                   LockWaitReporterOptions options)
    : participant_(std::move(participant)),
      live_branches_(std::move(live_branches)),
      source_(source),
      sink_(sink),
      clock_(clock),
      options_(options),
      // A thousand sequence numbers per millisecond since the epoch: a successor process, which
      // starts later, starts above anything this one can reach in its lifetime (one report per
      // pass, at most one pass per millisecond).
      next_sequence_(static_cast<uint64_t>(std::max<int64_t>(clock->NowUnixMs(), 1)) * 1000) {}

std::vector<LiveBranch> CallsToLookUp(const std::vector<LiveBranch>& live, int64_t threshold_ms) {
  std::vector<LiveBranch> out;
  // Nothing is asked while no call has run `threshold_ms`. Once one has, every running call is
  // asked about: it is one query either way, and the wait that closes a cycle is often one that
  // has only just begun (asking only about calls past the threshold left it to a later pass: up
  // to threshold + interval later).
  if (std::none_of(live.begin(), live.end(),
                   [&](const LiveBranch& b) { return b.running_ms >= threshold_ms; })) {
    return out;
  }
  for (const LiveBranch& b : live) {
    if (b.running_ms >= 0) out.push_back(b);
  }
  return out;
}

absl::StatusOr<int> LockWaitReporter::RunOnce() {
  const int64_t pass_ms = clock_->NowMonotonicMs();
  std::vector<LiveBranch> live = live_branches_();
  std::vector<LiveBranch> waiting = CallsToLookUp(live, options_.threshold_ms);
  std::unordered_map<std::string, const LiveBranch*> waiter_of;
  for (const LiveBranch& b : waiting) waiter_of[b.gid] = &b;
  std::vector<LockWaitFound> found;
  if (!waiting.empty()) {
    if (source_ == nullptr) {
      return absl::UnimplementedError("this participant cannot report lock waits");
    }
    // A database that must be left alone between looks (MariaDB: see MysqlAdapter) is asked
    // again only once that long has passed since the last look ended; until then the snapshot
    // last sent stands (the coordinator keeps it for --wait-report-ttl-ms). Passes in between
    // cost nothing, and the first one after a call crosses the threshold may look at once.
    if (last_look_end_ms_.has_value() &&
        pass_ms - *last_look_end_ms_ < source_->min_lock_wait_interval_ms()) {
      return 0;
    }
    absl::StatusOr<std::vector<LockWaitFound>> looked = source_->FindLockWaits(waiting, live);
    // A look that failed may still have read the database: the interval starts again either way.
    last_look_end_ms_ = clock_->NowMonotonicMs();
    if (!looked.ok()) return looked.status();
    found = *std::move(looked);
  }
  // Since when each waiter has waited for the holder found, not since its call began (a
  // statement queued behind several holders in turn has waited for the current one only since
  // the last one let go): the coordinator builds a cycle's age from these.
  std::vector<WaitAges::Looked> looked;
  looked.reserve(waiting.size());
  for (const LiveBranch& b : waiting) {
    looked.push_back(WaitAges::Looked{b.gid, b.call_number, pass_ms - b.running_ms});
  }
  std::vector<WaitAges::Found> pairs;
  pairs.reserve(found.size());
  for (const LockWaitFound& f : found) {
    const bool named = !f.holder_gid.empty();
    pairs.push_back(WaitAges::Found{f.waiter_gid, named ? f.holder_gid : f.holder, named});
  }
  const std::vector<int64_t> began = ages_.Pass(pass_ms, looked, pairs);
  if (found.empty() && !coordinator_may_hold_waits_) return 0;

  const int64_t sent_ms = clock_->NowMonotonicMs();
  v1::ReportWaitsRequest req;
  req.set_participant(participant_);
  req.set_sequence(next_sequence_++);
  for (size_t i = 0; i < found.size(); ++i) {
    const LockWaitFound& f = found[i];
    std::optional<common::BranchName> waiter = common::ParseBranchGid(f.waiter_gid);
    if (!waiter) continue;
    v1::LockWait* w = req.add_waits();
    w->set_waiter_txn_id(waiter->txn_id);
    w->set_participant(participant_);
    if (std::optional<common::BranchName> holder = common::ParseBranchGid(f.holder_gid)) {
      w->set_holder_txn_id(holder->txn_id);
    }
    w->set_holder(f.holder);
    if (auto it = waiter_of.find(f.waiter_gid); it != waiter_of.end()) {
      // As of now, after the look: the query's own time is part of the wait.
      if (began[i] != WaitAges::kUnknown) w->set_waited_ms(sent_ms - began[i]);
      w->set_waiter_call(it->second->call_number);
    }
  }
  // Until the coordinator has taken an empty snapshot, it may still hold waits of ours.
  coordinator_may_hold_waits_ = true;
  TXN_RETURN_IF_ERROR(sink_->ReportWaits(req));
  coordinator_may_hold_waits_ = req.waits_size() > 0;
  return req.waits_size();
}

}  // namespace txn::agent
