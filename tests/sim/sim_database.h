// SimDatabase: an in-memory database behind the agents' real ResourceAdapter interface, for the
// simulation. It models what atomic commit depends on:
//   - a table acct(id, bal) changed only by the simulation's transfer statement
//     (kTransferSql: bal = bal + $2 where id = $1 and the result stays >= 0, else 0 rows),
//     which may end in a comment naming the client's transfer (kept per gid for the checks);
//   - row locks held to the end of the transaction, also while it is prepared; a statement that
//     meets another transaction's lock fails at once (the simulation has no lock waits: a wait
//     that would end in a lock timeout or a deadlock victim ends the same way, sooner);
//   - PREPARE TRANSACTION under a gid, COMMIT / ROLLBACK PREPARED, a commit marker for one-phase
//     commits, proof of a finished prepared transaction by its native id (PostgreSQL's xid);
//   - a crash (Crash()): open transactions are lost, prepared ones survive with their locks;
//   - the saga barrier table (gid, op) -> origin, whose row a concurrent inserter holds locked
//     until it ends (a second inserter fails at once: UNAVAILABLE, so it is retried).
// A database may also be one that cannot prepare (`can_prepare`), a last resource.
// It also refuses to prepare now and then, and loses a one-phase COMMIT's answer after
// committing now and then (`flaky_chance` each), as a database and its connection may.
//
// What it saw (per gid: committed or rolled back) is kept for the run's checks. Single-threaded,
// like the whole simulation.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "participant-agent/resource_adapter.h"
#include "tests/sim/sim_scheduler.h"

namespace txn::sim {

inline constexpr char kTransferSql[] =
    "UPDATE acct SET bal = bal + $2 WHERE id = $1 AND bal + $2 >= 0";
// The same without the guard (a saga's compensation must not fail for want of money).
inline constexpr char kAdjustSql[] = "UPDATE acct SET bal = bal + $2 WHERE id = $1";

class SimSession;

class SimDatabase final : public agent::ResourceAdapter,
                          public agent::SagaBarrierStore,
                          public agent::ThreePhaseRecordStore {
 public:
  // `can_prepare` false: a database without two-phase commit (like MongoDB), which takes part
  // only as a last resource, committed in one phase; it keeps no 3PC records or saga barrier.
  SimDatabase(std::string name, SimScheduler* scheduler, int accounts, int64_t balance,
              double flaky_chance, bool can_prepare = true);
  ~SimDatabase() override;

  const std::string& name() const { return name_; }

  bool supports_prepare() const override { return can_prepare_; }
  absl::Status CheckReady() override { return absl::OkStatus(); }
  absl::StatusOr<std::unique_ptr<agent::BranchSession>> Begin(const std::string& gid) override;
  absl::StatusOr<agent::FinishResult> CommitPrepared(const std::string& gid,
                                                     const std::string& native_id) override;
  absl::StatusOr<agent::FinishResult> RollbackPrepared(const std::string& gid,
                                                       const std::string& native_id) override;
  absl::StatusOr<bool> IsPrepared(const std::string& gid) override;
  absl::StatusOr<std::vector<std::string>> ListPrepared() override;
  absl::StatusOr<agent::FinishedAs> ProveOnePhase(const std::string& gid) override;
  agent::SagaBarrierStore* saga_barrier() override { return can_prepare_ ? this : nullptr; }
  agent::ThreePhaseRecordStore* three_phase_records() override {
    return can_prepare_ ? this : nullptr;
  }
  // 3PC records: a table of its own, each store one committed statement (it survives crashes).
  absl::Status EnsureTpcTable() override { return absl::OkStatus(); }
  absl::StatusOr<std::optional<agent::TpcRow>> LoadTpcRecord(const std::string& gid) override;
  absl::Status StoreTpcRecord(const std::string& gid, const agent::TpcRow& row) override;
  absl::StatusOr<std::vector<std::string>> ListUndecidedTpc() override;
  absl::Status EnsureSagaBarrier() override { return absl::OkStatus(); }

  // The database server restarts: every open transaction is rolled back, every session lost.
  void Crash();

  // For the run's checks.
  int64_t TotalBalance() const;
  // Every gid whose (two-phase or one-phase) transaction wrote here and finished: true =
  // committed. Saga steps are in saga_effects().
  const std::map<std::string, bool>& finished() const { return finished_; }
  // The comment its statements carried, by gid (see kTransferSql).
  const std::map<std::string, std::string>& tags() const { return tags_; }
  std::vector<std::string> prepared() const;
  // Saga steps: the barrier rows, and what each gid's committed step and compensation changed.
  struct SagaEffects {
    bool step_ran = false;           // its ("action") row was written by the step
    bool compensated = false;        // its ("compensation") row exists
    int64_t step_delta = 0;          // money the step moved here
    int64_t compensation_delta = 0;  // money its compensation moved here
  };
  const std::map<std::string, SagaEffects>& saga_effects() const { return saga_effects_; }

 private:
  friend class SimSession;
  struct Write {
    int64_t id;
    int64_t delta;
  };
  struct Prepared {
    std::vector<Write> writes;
    std::string native_id;
  };
  // Applies `writes` and frees their locks.
  void Apply(const std::vector<Write>& writes);
  void Unlock(const std::vector<Write>& writes);
  // Finishes a prepared transaction; `commit` or roll back.
  agent::FinishResult FinishPrepared(const std::string& gid, const std::string& native_id,
                                     bool commit);

  const std::string name_;
  SimScheduler* const scheduler_;
  const double flaky_chance_;
  const bool can_prepare_;
  std::map<int64_t, int64_t> balances_;
  std::map<int64_t, std::string> lock_holder_;  // row id -> session token or prepared gid
  std::map<std::string, Prepared> prepared_;
  std::map<std::string, bool> native_outcomes_;  // native id -> committed (the commit log)
  std::set<std::string> one_phase_markers_;
  std::map<uint64_t, SimSession*> open_;  // by session number: crashes go in a fixed order
  std::map<std::string, bool> finished_;
  std::map<std::string, std::string> tags_;
  std::map<std::pair<std::string, std::string>, std::string> barrier_;  // committed rows
  std::map<std::pair<std::string, std::string>, uint64_t> barrier_locks_;  // -> session number
  std::map<std::string, SagaEffects> saga_effects_;
  std::map<std::string, agent::TpcRow> tpc_rows_;
  uint64_t next_session_ = 1;
  uint64_t next_native_ = 1;
};

}  // namespace txn::sim
