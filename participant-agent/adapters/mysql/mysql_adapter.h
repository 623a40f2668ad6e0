// MysqlAdapter: maps a branch onto XA transactions in MySQL >= 5.7.7 / MariaDB >= 10.5.2 through
// libmariadb.
//
//   work     XA START xid; statements as server-side prepared statements (? placeholders)
//   prepare  nothing written -> XA END + XA ROLLBACK, vote READ_ONLY; otherwise insert the
//            branch's commit marker, XA END, XA PREPARE, and park the connection, which can
//            now only finish this branch (ParkedXaConnections, at most 5 s; the prepared
//            transaction also survives the connection's close)
//   commit   XA COMMIT xid, on the parked connection if there is one, which then returns to
//            the pool; one phase: marker, XA END, XA COMMIT xid ONE PHASE
//   abort    XA ROLLBACK xid
//   in doubt XA RECOVER, our format id and gid prefix
//
// The xid is (gtrid = the gid, bqual = '', formatID = 7868), written as hex literals. XAER_NOTA
// is trusted only once XA RECOVER no longer lists the xid (see CheckDetached). The commit
// marker is a row (gid) in `txcoord_xa_markers`, written inside the branch's own XA transaction:
// when XA COMMIT / XA ROLLBACK answer XAER_NOTA (the xid is gone), the marker proves whether the
// branch committed (row present) or not (absent), so nothing is guessed. Markers are deleted after
// `marker_retention_hours`.
//
// CheckReady refuses servers that lose prepared XA transactions on disconnect, and a user that
// cannot run XA RECOVER (MySQL 8 needs XA_RECOVER_ADMIN); it warns where XA is not crash-safe
// with the binary log. Thread-safe.
#pragma once

#include <memory>
#include <string>

#include "participant-agent/adapters/mysql/mysql_dsn.h"
#include "participant-agent/resource_adapter.h"

namespace txn::agent {

class MysqlPool;
class ParkedXaConnections;

inline constexpr int kXaFormatId = 7868;

// `XA ... X'<hex gid>',X'',7868` argument for `gid`.
std::string XidLiteral(const std::string& gid);

class MysqlAdapter final : public ResourceAdapter,
                           public SagaBarrierStore,
                           public ThreePhaseRecordStore,
                           public LockWaitSource {
 public:
  MysqlAdapter(MysqlDsn dsn, int max_idle, int64_t lock_timeout_ms = 0,
               int marker_retention_hours = 24 * 7);
  ~MysqlAdapter() override;

  bool supports_prepare() const override { return !last_resource_only_; }
  void set_result_limits(const ResultLimits& limits) override { limits_ = limits; }
  void set_last_resource_only(bool on) { last_resource_only_ = on; }
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
  // InnoDB serves INNODB_TRX / INNODB_LOCK_WAITS from a snapshot it refreshes only once
  // nobody has read it for 100 ms (trx0i_s.cc, CACHE_MIN_IDLE_TIME_NS, checked on MariaDB
  // 10.11): a reporter looking every 20 ms while some branch keeps waiting froze the snapshot for
  // as long as any wait lasted, so new waits (and the cycles they close) were never seen and 32
  // clients on 10 hot rows gridlocked until the lock timeout. The reporter waits 120 ms from the
  // end of one look (when its result has arrived, after InnoDB's read ended) to the start of the
  // next (which reaches InnoDB later still), so the snapshot is idle for more than 100 ms and is
  // refreshed before each look.
  int64_t min_lock_wait_interval_ms() const override { return 120; }

 private:
  // XA COMMIT / XA ROLLBACK of the prepared branch `gid`, on its parked connection if any.
  absl::StatusOr<FinishResult> CommitXa(const std::string& gid);
  absl::StatusOr<FinishResult> RollbackXa(const std::string& gid);
  // After XAER_NOTA: what the marker says became of `gid`.
  absl::StatusOr<FinishResult> ProveByMarker(const std::string& gid);
  // After XAER_NOTA: UNAVAILABLE (retry) if `gid` is still listed by XA RECOVER. The server
  // detaches a prepared XA transaction from its connection only once it has processed that
  // connection's close, and until then other connections get XAER_NOTA for it.
  absl::Status CheckDetached(const std::string& gid);
  // Runs `verb` (XA COMMIT / XA ROLLBACK) for `gid` on the connection parked with it, if any;
  // *done when that finished the branch. An error other than a lost connection is returned.
  absl::Status FinishParked(const std::string& gid, const char* verb, bool* done);
  std::unique_ptr<MysqlPool> pool_;
  // After pool_: parked connections go back to (or are closed through) the pool.
  std::unique_ptr<ParkedXaConnections> parked_;
  const int marker_retention_hours_;
  ResultLimits limits_;
  bool last_resource_only_ = false;
};

// Parses "10.11.19-MariaDB-..." / "8.0.36" into (is_mariadb, major, minor, patch); false if not
// a version string.
struct ServerVersion {
  bool mariadb = false;
  int major = 0, minor = 0, patch = 0;
};
bool ParseServerVersion(const std::string& text, ServerVersion* out);
// FAILED_PRECONDITION when the server loses prepared XA transactions on disconnect.
absl::Status CheckXaSupport(const ServerVersion& v);

}  // namespace txn::agent
