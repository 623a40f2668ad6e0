// ResourceAdapter: what an agent needs from one database to take part in atomic commit. One
// implementation per database (adapters/postgres, adapters/noop, ...), registered by name in
// adapter_registry.h. Each database's SQL dialect stays inside its adapter.
//
// A BranchSession is one open local transaction on one connection. BranchRegistry serializes all
// calls on a session, so sessions need not be thread-safe; adapters must be.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "txn/v1/common.pb.h"

namespace txn::agent {

enum class LocalVote { kYes, kNo, kReadOnly };

struct PrepareResult {
  LocalVote vote = LocalVote::kNo;
  std::string reason;
  // The database's id of the prepared transaction, to prove its outcome later (PostgreSQL xid).
  std::string native_id;
};

// What the database says became of a prepared transaction.
enum class FinishedAs { kCommitted, kAborted, kUnknown };

struct FinishResult {
  FinishedAs as = FinishedAs::kUnknown;
  std::string reason;
};

// A participant's three-phase-commit record for one branch (docs/three-phase.md section 8),
// as stored in the agent's table in its own database, so that an agent keeps no state on its own
// disk and a replacement picks up where it stopped. States: W, PC, PA, C, A.
struct TpcRow {
  std::string state;
  uint64_t promised_round = 0;
  std::string promised_owner;
  uint64_t attempted_round = 0;
  std::string attempted_owner;
  std::vector<std::string> members;
};

// A branch of this agent with an open database session (BranchRegistry::LiveBranches).
struct LiveBranch {
  std::string gid;
  // The database's id of the session: PostgreSQL backend pid, MariaDB thread id; 0 if unknown.
  int64_t session_id = 0;
  // How long the call running on the branch has run, or -1 when none runs.
  int64_t running_ms = -1;
  // The coordinator's call_number of that call (0 when none runs or it sent none).
  uint64_t call_number = 0;
};

// A lock wait the database shows: `waiter_gid` (one of ours) waits for a lock held by
// `holder_gid` (a txcoord branch: ours, or a prepared transaction with a txc_ gid) or, when that
// is empty, by a session `holder` describes.
struct LockWaitFound {
  std::string waiter_gid;
  std::string holder_gid;
  std::string holder;
};

// The most one operation's result may hold (--max-result-rows / --max-result-bytes). Adapters
// that read results row by row stop reading there (so a huge result never fills the agent's
// memory); BranchRegistry checks every result against the same limits as well.
struct ResultLimits {
  int64_t max_rows = 10'000;
  int64_t max_bytes = 1 << 20;
  // RESOURCE_EXHAUSTED naming the limit once `rows` rows holding `value_bytes` bytes of values
  // (read so far) are more than allowed.
  absl::Status Check(int64_t rows, int64_t value_bytes) const {
    if (rows > max_rows) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "its result has more than ", max_rows, " rows, the limit (--max-result-rows)"));
    }
    if (value_bytes > max_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "its result has more than ", max_bytes, " bytes, the limit (--max-result-bytes)"));
    }
    return absl::OkStatus();
  }
};

// --- Optional capabilities. An adapter (or its session) that has one derives from it and
// returns itself from the accessor (ResourceAdapter::three_phase_records() and the like); the
// others return nullptr, and the agent refuses that kind of call, naming what is missing. ---

// Saga steps (participant-agent/saga_steps.h) on an open session.
class SagaSession {
 public:
  virtual ~SagaSession() = default;
  // In the open transaction: inserts the barrier row (gid, op, origin) unless (gid, op) exists
  // (waiting for a concurrent inserter to finish). Returns whether it inserted.
  [[nodiscard]] virtual absl::StatusOr<bool> InsertBarrier(const std::string& gid,
                                                           const std::string& op,
                                                           const std::string& origin) = 0;
  // The origin of the barrier row (gid, op), or "" when there is none.
  [[nodiscard]] virtual absl::StatusOr<std::string> BarrierOrigin(const std::string& gid,
                                                                  const std::string& op) = 0;
  // Commits the open local transaction (no commit marker). OK only when the database committed;
  // UNAVAILABLE when the answer was lost; another error when it rolled back.
  [[nodiscard]] virtual absl::Status Commit() = 0;
};

// Saga steps: the barrier table beside the data.
class SagaBarrierStore {
 public:
  virtual ~SagaBarrierStore() = default;
  // Creates the saga barrier table if it is missing (called before the first saga call).
  [[nodiscard]] virtual absl::Status EnsureSagaBarrier() = 0;
};

// Three-phase commit: the participant's records (see TpcRow) in its own database.
class ThreePhaseRecordStore {
 public:
  virtual ~ThreePhaseRecordStore() = default;
  // Creates the record table if it is missing.
  [[nodiscard]] virtual absl::Status EnsureTpcTable() = 0;
  // The record of branch `gid`, or nullopt when there is none.
  [[nodiscard]] virtual absl::StatusOr<std::optional<TpcRow>> LoadTpcRecord(
      const std::string& gid) = 0;
  // Inserts or replaces the record in one committed statement of its own; it is durable when
  // this returns OK (the agent replies only after that).
  [[nodiscard]] virtual absl::Status StoreTpcRecord(const std::string& gid,
                                                    const TpcRow& row) = 0;
  // The gids whose record is not decided (W, PC, PA): what the agent's termination timer watches.
  [[nodiscard]] virtual absl::StatusOr<std::vector<std::string>> ListUndecidedTpc() = 0;
};

// Deadlock detection (lock_wait_reporter.h): who waits for whom, as the database sees it.
class LockWaitSource {
 public:
  virtual ~LockWaitSource() = default;
  // Who each of `waiting` waits for, if it waits on a lock: one entry per waiter and holder.
  // `live` is every branch with a session (holders are looked up among them).
  [[nodiscard]] virtual absl::StatusOr<std::vector<LockWaitFound>> FindLockWaits(
      const std::vector<LiveBranch>& waiting, const std::vector<LiveBranch>& live) = 0;
  // The shortest time from the end of one FindLockWaits call to the start of the next that
  // still sees the database's present (0: any); the agent's reporter never looks sooner (see
  // MysqlAdapter).
  virtual int64_t min_lock_wait_interval_ms() const { return 0; }
};

class BranchSession {
 public:
  virtual ~BranchSession() = default;
  // The database's id of this session (see LiveBranch::session_id); 0 when it has none.
  virtual int64_t database_session_id() const { return 0; }
  // Runs one operation in the open transaction. Errors: INVALID_ARGUMENT for a statement refused
  // before it reached the database (the transaction is still usable); any other code means the
  // database failed the statement and the transaction must be rolled back.
  [[nodiscard]] virtual absl::StatusOr<v1::ExecuteResult> Execute(const v1::Operation& op) = 0;
  // Prepares the transaction under `gid` (validated by the caller). kReadOnly: nothing was
  // written and the local transaction is already finished. kNo: it could not be prepared and has
  // been rolled back. An error status means the connection failed: the outcome is a rollback
  // unless `gid` shows up as prepared.
  [[nodiscard]] virtual absl::StatusOr<PrepareResult> Prepare(const std::string& gid) = 0;
  // One-phase commit of the branch `gid`. It also writes the branch's commit marker in the same
  // transaction, so ProveOnePhase can tell later whether it committed. OK only when the database
  // committed; ABORTED when it rolled back; another error when the answer was lost.
  [[nodiscard]] virtual absl::Status CommitLocal(const std::string& gid) = 0;
  [[nodiscard]] virtual absl::Status RollbackLocal() = 0;

  // Saga steps: the session's SagaSession, or nullptr where the database runs none.
  virtual SagaSession* saga() { return nullptr; }
};

class ResourceAdapter {
 public:
  virtual ~ResourceAdapter() = default;
  // Whether the database can hold a prepared transaction across disconnects.
  virtual bool supports_prepare() const = 0;
  // The result limits to read results under (see ResultLimits); set before serving. Adapters
  // that cannot read row by row ignore it (BranchRegistry's check still applies).
  virtual void set_result_limits(const ResultLimits& limits) {}
  // The longest a transaction may stay open here (0: no limit), reported to the coordinator.
  virtual int64_t max_txn_lifetime_ms() const { return 0; }
  // Checks the database is reachable and configured for prepared transactions. FAILED_PRECONDITION
  // with a one-line fix when it is reachable but misconfigured, UNAVAILABLE when unreachable.
  [[nodiscard]] virtual absl::Status CheckReady() = 0;
  // Opens a local transaction for the branch named `gid` (validated by the caller).
  [[nodiscard]] virtual absl::StatusOr<std::unique_ptr<BranchSession>> Begin(
      const std::string& gid) = 0;
  // Finishes the prepared transaction `gid`. When it no longer exists, `native_id` (if known)
  // is used to prove what became of it; otherwise kUnknown.
  [[nodiscard]] virtual absl::StatusOr<FinishResult> CommitPrepared(
      const std::string& gid, const std::string& native_id) = 0;
  [[nodiscard]] virtual absl::StatusOr<FinishResult> RollbackPrepared(
      const std::string& gid, const std::string& native_id) = 0;
  [[nodiscard]] virtual absl::StatusOr<bool> IsPrepared(const std::string& gid) = 0;
  // Every prepared transaction whose gid starts with txc_ (this agent's or its predecessor's).
  [[nodiscard]] virtual absl::StatusOr<std::vector<std::string>> ListPrepared() = 0;
  // Whether the one-phase commit of `gid` happened: kCommitted when its marker exists, kAborted
  // when not. Requires that no transaction for `gid` can still be running here.
  [[nodiscard]] virtual absl::StatusOr<FinishedAs> ProveOnePhase(const std::string& gid) = 0;
  // Optional capabilities (see above); nullptr where the database has none.
  virtual SagaBarrierStore* saga_barrier() { return nullptr; }
  virtual ThreePhaseRecordStore* three_phase_records() { return nullptr; }
  virtual LockWaitSource* lock_waits() { return nullptr; }

  // Periodic housekeeping (e.g. old commit markers). Called from the agent's background loop.
  [[nodiscard]] virtual absl::Status CollectGarbage() { return absl::OkStatus(); }
};

}  // namespace txn::agent
