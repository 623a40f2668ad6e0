// PostgresAdapter: maps a branch onto PostgreSQL's two-phase commit through libpq.
//
//   work     BEGIN; statements via PQexecParams (one statement each, $1.. placeholders)
//   prepare  pg_current_xact_id_if_assigned() NULL -> READ_ONLY (COMMIT, nothing to prepare);
//            else PREPARE TRANSACTION 'gid', the xid kept as the branch's native id
//   commit   COMMIT PREPARED 'gid'; if the gid is gone, pg_xact_status(xid) proves the outcome
//   abort    ROLLBACK / ROLLBACK PREPARED 'gid'
//   in doubt pg_prepared_xacts, this database, gid prefix txc_
//   1-phase  COMMIT, with a row in txcoord_markers written in the same transaction, so a commit
//            whose answer was lost can be proven later (ProveOnePhase); rows expire after
//            `marker_retention_hours`
//   policy   client statements pass common::CheckStatement (kPostgres) and, with a run-as role,
//            run under SET LOCAL ROLE to it; a session that ran client statements is reset with
//            DISCARD ALL before the pool hands it to another branch
//
// Needs max_prepared_transactions > 0 (CheckReady says so plainly). Connections come from a
// small pool; a broken connection is dropped and a new one made, so the adapter survives server
// restarts (prepared transactions survive them too). Thread-safe.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "participant-agent/resource_adapter.h"

namespace txn::agent {

class PgConnection;
class PgPool;

class PostgresAdapter final : public ResourceAdapter,
                              public SagaBarrierStore,
                              public ThreePhaseRecordStore,
                              public LockWaitSource {
 public:
  // `dsn`: a libpq connection string or postgresql:// URI; `password` (may be empty) overrides
  // any password in it. `max_idle`: pooled idle connections kept.
  PostgresAdapter(std::string dsn, std::string password, int max_idle, int64_t lock_timeout_ms = 0,
                  int marker_retention_hours = 24 * 7);
  ~PostgresAdapter() override;

  bool supports_prepare() const override { return !last_resource_only_; }
  void set_result_limits(const ResultLimits& limits) override { limits_ = limits; }
  // Run as a last resource only (no PREPARE TRANSACTION; works with max_prepared_transactions=0).
  void set_last_resource_only(bool on) { last_resource_only_ = on; }
  // Client statements run as `role` (SET LOCAL ROLE), an unprivileged role the agent's user is
  // a member of; CheckReady refuses a role that is missing, a superuser, or not grantable.
  // INVALID_ARGUMENT unless `role` is a plain name ([a-z_][a-z0-9_]*, at most 63 bytes).
  absl::Status SetRunAsRole(const std::string& role);
  absl::Status CheckReady() override;
  SagaBarrierStore* saga_barrier() override { return this; }
  ThreePhaseRecordStore* three_phase_records() override { return this; }
  LockWaitSource* lock_waits() override { return this; }
  absl::Status EnsureSagaBarrier() override;
  absl::Status EnsureTpcTable() override;
  absl::StatusOr<std::optional<TpcRow>> LoadTpcRecord(const std::string& gid) override;
  absl::Status StoreTpcRecord(const std::string& gid, const TpcRow& row) override;
  absl::StatusOr<std::vector<std::string>> ListUndecidedTpc() override;
  absl::StatusOr<std::unique_ptr<BranchSession>> Begin(const std::string& gid) override;
  absl::StatusOr<FinishResult> CommitPrepared(const std::string& gid,
                                              const std::string& native_id) override;
  absl::StatusOr<FinishResult> RollbackPrepared(const std::string& gid,
                                                const std::string& native_id) override;
  absl::StatusOr<bool> IsPrepared(const std::string& gid) override;
  absl::StatusOr<std::vector<std::string>> ListPrepared() override;
  absl::StatusOr<FinishedAs> ProveOnePhase(const std::string& gid) override;
  absl::Status CollectGarbage() override;
  absl::StatusOr<std::vector<LockWaitFound>> FindLockWaits(
      const std::vector<LiveBranch>& waiting, const std::vector<LiveBranch>& live) override;

 private:
  absl::StatusOr<FinishResult> ProveOutcome(const std::string& native_id);
  // Notes a superuser (NoteDatabaseSuperuser); FAILED_PRECONDITION when the run-as role is
  // unusable.
  absl::Status CheckPrivileges(PgConnection& conn);
  // REVOKE ALL on one of the agent's tables from the run-as role (a default privilege may have
  // granted it): client statements must not forge or erase the proof of an outcome.
  absl::Status KeepFromRunAsRole(PgConnection& conn, const char* table);
  std::unique_ptr<PgPool> pool_;
  const int marker_retention_hours_;
  bool last_resource_only_ = false;
  std::string run_as_role_;    // as given
  std::string run_as_quoted_;  // as an SQL identifier, "role"
  ResultLimits limits_;
  std::atomic<bool> role_checked_{false};  // CheckPrivileges passed once
};

}  // namespace txn::agent
