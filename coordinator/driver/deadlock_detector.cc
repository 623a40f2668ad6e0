#include "coordinator/driver/deadlock_detector.h"

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/logging.h"

namespace txn::driver {
namespace {

// A report is one agent's waiting branches: one edge per branch and holder. More than this
// many is not a snapshot a sane agent sends.
constexpr int kMaxWaitsPerReport = 10'000;

}  // namespace

DeadlockDetector::DeadlockDetector(DeadlockTarget* target, common::Clock* clock,
                                   std::function<bool(const std::string&)> is_participant,
                                   DeadlockOptions options)
    : target_(target),
      clock_(clock),
      is_participant_(std::move(is_participant)),
      options_(options),
      broken_(common::DefaultMetrics().GetCounter(
          "txcoord_deadlocks_broken_total",
          "Deadlocks across databases broken by aborting their youngest transaction.")),
      cycle_age_(common::DefaultMetrics().GetHistogram(
          "txcoord_deadlock_cycle_age_seconds",
          "From a deadlock's last wait beginning to its victim's abort (each wait of the cycle "
          "for its present holder, as agents bound it).",
          {}, {0.01, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2, 0.25, 0.3, 0.5, 1, 2, 5})),
      waits_(common::DefaultMetrics().GetGauge(
          "txcoord_lock_waits", "Lock waits agents reported that the coordinator holds now.")),
      graph_(options.edge_ttl_ms, options.exclude_ms) {}

std::string DeadlockDetector::VictimReason(const core::DeadlockVictim& victim) {
  std::string cycle;
  for (size_t i = 0; i < victim.cycle.size(); ++i) {
    const std::string waiter = i == 0 ? std::string("it") : victim.cycle[i];
    const std::string holder =
        i + 1 == victim.cycle.size() ? std::string("it") : victim.cycle[i + 1];
    absl::StrAppend(&cycle, i == 0 ? "" : ", ", waiter, " waited for ", holder, " in ",
                    victim.participants[i]);
  }
  return absl::StrCat("chosen as the victim of a deadlock across databases (the youngest "
                      "transaction on the cycle): ",
                      cycle);
}

absl::Status DeadlockDetector::Report(const v1::ReportWaitsRequest& req) {
  if (req.participant().empty()) return absl::InvalidArgumentError("participant is empty");
  if (!is_participant_(req.participant())) {
    return absl::NotFoundError(absl::StrCat("participant '", req.participant().substr(0, 100),
                                            "' is not a configured participant"));
  }
  if (req.waits_size() > kMaxWaitsPerReport) {
    return absl::InvalidArgumentError(
        absl::StrCat("waits has ", req.waits_size(), " entries; at most ", kMaxWaitsPerReport));
  }
  std::vector<core::WaitEdge> edges;
  edges.reserve(req.waits_size());
  for (int i = 0; i < req.waits_size(); ++i) {
    const v1::LockWait& w = req.waits(i);
    if (!common::IsValidTxnId(w.waiter_txn_id())) {
      return absl::InvalidArgumentError(absl::StrCat("waits[", i, "].waiter_txn_id is not a txn id"));
    }
    if (!w.holder_txn_id().empty() && !common::IsValidTxnId(w.holder_txn_id())) {
      return absl::InvalidArgumentError(absl::StrCat("waits[", i, "].holder_txn_id is not a txn id"));
    }
    edges.push_back(core::WaitEdge{w.waiter_txn_id(), w.holder_txn_id(), req.participant(),
                                   w.holder().substr(0, 200), std::max<int64_t>(0, w.waited_ms()),
                                   w.waiter_call()});
  }
  std::vector<core::DeadlockVictim> victims;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t now = clock_->NowMonotonicMs();
    graph_.Expire(now);
    graph_.Report(req.participant(), req.sequence(), std::move(edges), now);
    if (options_.enabled) {
      // The aborts run under mu_: each is a state change under the transaction's own lock and
      // RPCs sent asynchronously, so nothing here waits for I/O.
      victims = graph_.BreakDeadlocks(
          now, [this](const core::WaitEdge& e) { return target_->DeadlockStanding(e); },
          [this](const core::DeadlockVictim& v) {
            return target_->AbortDeadlockVictim(v.txn_id, VictimReason(v));
          });
      broken_count_ += victims.size();
    }
    waits_->Set(static_cast<double>(graph_.Edges(now).size()));
  }
  for (const core::DeadlockVictim& v : victims) {
    broken_->Inc();
    cycle_age_->Observe(static_cast<double>(v.cycle_age_ms) / 1000.0);
  }
  return absl::OkStatus();
}

v1::ListWaitsResponse DeadlockDetector::ListWaits() {
  v1::ListWaitsResponse resp;
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = clock_->NowMonotonicMs();
  graph_.Expire(now);
  for (const core::WaitEdge& e : graph_.Edges(now)) {
    v1::LockWait* w = resp.add_waits();
    w->set_waiter_txn_id(e.waiter);
    w->set_participant(e.participant);
    w->set_holder_txn_id(e.holder);
    w->set_holder(e.holder_description);
    w->set_waited_ms(e.waited_ms);
    w->set_waiter_call(e.waiter_call);
  }
  resp.set_deadlocks_broken(broken_count_);
  return resp;
}

}  // namespace txn::driver
