// NoopAdapter: a participant with no database, for tests and benchmarks of the coordinator.
// Every statement "affects" 0 rows (so `expect_rows_affected: 1` votes NO); a branch that ran at
// least one operation votes YES, one that ran none votes READ_ONLY. Prepared branches live in
// memory only, and so are saga barrier rows and three-phase-commit records. Thread-safe.
#pragma once

#include <map>
#include <mutex>
#include <set>

#include "participant-agent/resource_adapter.h"

namespace txn::agent {

class NoopAdapter final : public ResourceAdapter,
                          public SagaBarrierStore,
                          public ThreePhaseRecordStore {
 public:
  bool supports_prepare() const override { return true; }
  absl::Status CheckReady() override { return absl::OkStatus(); }
  SagaBarrierStore* saga_barrier() override { return this; }
  ThreePhaseRecordStore* three_phase_records() override { return this; }
  absl::StatusOr<std::unique_ptr<BranchSession>> Begin(const std::string& gid) override;
  absl::StatusOr<FinishResult> CommitPrepared(const std::string& gid,
                                              const std::string& native_id) override;
  absl::StatusOr<FinishResult> RollbackPrepared(const std::string& gid,
                                                const std::string& native_id) override;
  absl::StatusOr<bool> IsPrepared(const std::string& gid) override;
  absl::StatusOr<std::vector<std::string>> ListPrepared() override;
  // The noop adapter keeps no markers: a lost one-phase answer stays unknown.
  absl::StatusOr<FinishedAs> ProveOnePhase(const std::string& gid) override {
    return FinishedAs::kUnknown;
  }

  void MarkPrepared(const std::string& gid);
  // How often IsPrepared was asked: what a branch's first Prepare should not need.
  int is_prepared_calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return is_prepared_calls_;
  }
  // Saga barrier rows, in memory: (gid, op) -> origin. A session's rows land at its Commit.
  absl::Status EnsureSagaBarrier() override { return absl::OkStatus(); }
  std::string BarrierOrigin(const std::string& gid, const std::string& op);
  void AddBarrierRows(const std::map<std::pair<std::string, std::string>, std::string>& rows);

  absl::Status EnsureTpcTable() override { return absl::OkStatus(); }
  absl::StatusOr<std::optional<TpcRow>> LoadTpcRecord(const std::string& gid) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tpc_.find(gid);
    if (it == tpc_.end()) return std::optional<TpcRow>();
    return std::optional<TpcRow>(it->second);
  }
  absl::Status StoreTpcRecord(const std::string& gid, const TpcRow& row) override {
    std::lock_guard<std::mutex> lock(mu_);
    tpc_[gid] = row;
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<std::string>> ListUndecidedTpc() override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> gids;
    for (const auto& [gid, row] : tpc_) {
      if (row.state == "W" || row.state == "PC" || row.state == "PA") gids.push_back(gid);
    }
    return gids;
  }

 private:
  std::mutex mu_;
  std::set<std::string> prepared_;                                      // guarded by mu_
  int is_prepared_calls_ = 0;                                           // guarded by mu_
  std::map<std::pair<std::string, std::string>, std::string> barrier_;  // guarded by mu_
  std::map<std::string, TpcRow> tpc_;                                   // guarded by mu_
};

}  // namespace txn::agent
