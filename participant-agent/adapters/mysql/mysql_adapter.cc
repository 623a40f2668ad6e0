#include "participant-agent/adapters/mysql/mysql_adapter.h"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <tuple>
#include <unordered_map>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/ids.h"
#include "common/logging.h"
#include "common/statement_guard.h"
#include "common/status_macros.h"
#include "participant-agent/adapters/mysql/mysql_connection.h"
#include "participant-agent/adapters/mysql/parked_xa_connections.h"
#include "participant-agent/call_cancellation.h"
#include "participant-agent/database_superuser.h"

namespace txn::agent {
namespace {

constexpr char kMarkerTable[] = "txcoord_xa_markers";
constexpr char kBarrierTable[] = "txcoord_saga_barrier";
constexpr char kTpcTable[] = "txcoord_3pc";
// How long a prepared branch's connection stays parked for its Commit / Rollback (which come
// within milliseconds when the coordinator is well). Past it the connection is closed, so that
// an operator's manual XA COMMIT / XA ROLLBACK from another session can reach the branch (the
// server refuses it, XAER_NOTA, while the branch is attached to a connection).
constexpr std::chrono::seconds kMaxParkedAge(5);

absl::Status CheckGid(const std::string& gid) {
  if (!common::ParseBranchGid(gid)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid gid '", gid.substr(0, 80), "'"));
  }
  return absl::OkStatus();
}

// The commit marker's insert, for a gid CheckGid accepted (written as a hex literal: one round
// trip, no statement to prepare).
std::string MarkerInsert(const std::string& gid) {
  return absl::StrCat("INSERT INTO ", kMarkerTable, " (gid) VALUES (X'",
                      absl::BytesToHexString(gid), "')");
}

// Interrupts the statement running on connection `thread` (a call was cancelled). Best effort:
// if it fails, the statement ends at innodb_lock_wait_timeout as before.
void KillQuery(MysqlPool* pool, int64_t thread) {
  absl::StatusOr<std::unique_ptr<MysqlConnection>> conn = pool->Acquire();
  absl::Status s = conn.ok() ? (*conn)->Query(absl::StrCat("KILL QUERY ", thread)) : conn.status();
  if (!s.ok()) common::LogWarning(absl::StrCat("KILL QUERY ", thread, " failed: ", s.message()));
}

// `sql` run with a max_statement_time from the time the current call has left
// (CallCancellation), so that the statement ends in the server by the transaction's deadline
// even when the call's KILL QUERY cannot reach it. SET STATEMENT ... FOR limits this one
// statement and leaves no session state behind (a parked XA connection keeps its session). The
// time is rounded down to whole seconds from 10 s up and to tenths below. Every
// statement gets the prefix (MariaDB takes any statement after FOR, DO and VALUES included); the
// policy refuses every way a client could change max_statement_time itself.
v1::Sql WithStatementTime(const v1::Sql& sql) {
  std::optional<int64_t> left = CallCancellation::CurrentRemainingMs();
  if (!left) return sql;
  const int64_t ms = std::min<int64_t>(*left, int64_t{24} * 3600 * 1000);
  const std::string seconds = ms >= 10'000 ? absl::StrCat(ms / 1000)
                                           : absl::StrCat(std::max<int64_t>(ms / 100, 1) / 10, ".",
                                                          std::max<int64_t>(ms / 100, 1) % 10);
  v1::Sql limited = sql;
  limited.set_text(absl::StrCat("SET STATEMENT max_statement_time=", seconds, " FOR ", sql.text()));
  return limited;
}

class MysqlSession final : public BranchSession, public SagaSession {
 public:
  SagaSession* saga() override { return this; }
  MysqlSession(std::unique_ptr<MysqlConnection> conn, std::string gid, ParkedXaConnections* parked,
               MysqlPool* pool, ResultLimits limits)
      : conn_(std::move(conn)),
        gid_(std::move(gid)),
        xid_(XidLiteral(gid_)),
        parked_(parked),
        pool_(pool),
        limits_(limits) {}

  int64_t database_session_id() const override { return conn_ ? conn_->thread_id() : 0; }

  ~MysqlSession() override {
    if (conn_ && open_) (void)RollbackLocal();
  }

  absl::Status Open() {
    TXN_RETURN_IF_ERROR(conn_->Query(absl::StrCat("XA START ", xid_)));
    open_ = true;
    return absl::OkStatus();
  }

  absl::StatusOr<v1::ExecuteResult> Execute(const v1::Operation& op) override {
    if (!op.has_sql()) {
      return absl::InvalidArgumentError("a MySQL participant takes sql operations only");
    }
    TXN_RETURN_IF_ERROR(common::CheckStatement(op.sql().text(), common::SqlDialect::kMysql));
    TXN_RETURN_IF_ERROR(common::CheckParameterCount(op.sql().params_size()));
    for (uint32_t idx : op.sql().null_params()) {
      if (idx >= static_cast<uint32_t>(op.sql().params_size())) {
        return absl::InvalidArgumentError(absl::StrCat("sql.null_params names parameter ", idx,
                                                       " but there are only ",
                                                       op.sql().params_size()));
      }
    }
    bool wrote = false;
    absl::StatusOr<v1::ExecuteResult> r;
    {
      // A statement waiting for a row lock is interrupted with KILL QUERY from another
      // connection when the call is cancelled (a Rollback of the branch, e.g. a deadlock
      // victim's), instead of holding the branch until innodb_lock_wait_timeout.
      auto kill = [pool = pool_, thread = conn_->thread_id()] { KillQuery(pool, thread); };
      CallCancellation::Interruptible interruptible(kill);
      if (interruptible.interrupted()) return absl::CancelledError("the call was cancelled");
      conn_->NoteClientStatement();
      r = conn_->Execute(WithStatementTime(op.sql()), &wrote, limits_, kill);
      // A late KILL QUERY could hit this connection's next statement: never reuse it.
      if (interruptible.interrupted()) conn_->Discard();
    }
    wrote_ = wrote_ || wrote;
    return r;
  }

  absl::StatusOr<PrepareResult> Prepare(const std::string& gid) override {
    TXN_RETURN_IF_ERROR(CheckGid(gid));
    if (!wrote_) {
      TXN_RETURN_IF_ERROR(RollbackLocal());
      return PrepareResult{LocalVote::kReadOnly, "", ""};
    }
    // The marker commits or rolls back with the branch: it is the proof of the outcome when the
    // xid is gone (XAER_NOTA). Marker, XA END and XA PREPARE in one round trip.
    absl::Status s = conn_->QueryAll(
        {MarkerInsert(gid), absl::StrCat("XA END ", xid_), absl::StrCat("XA PREPARE ", xid_)});
    if (!s.ok()) {
      if (s.code() == absl::StatusCode::kUnavailable) {
        open_ = false;
        return s;
      }
      (void)RollbackLocal();
      return PrepareResult{LocalVote::kNo, std::string(s.message()), ""};
    }
    // The session is now stuck in the PREPARED state: it can only finish this branch. It is
    // parked for the branch's Commit or Rollback (ParkedXaConnections).
    open_ = false;
    conn_->SetHoldsPreparedXa(true);
    parked_->Park(gid, std::move(conn_));
    return PrepareResult{LocalVote::kYes, "", ""};
  }

  absl::Status CommitLocal(const std::string& gid) override {
    TXN_RETURN_IF_ERROR(CheckGid(gid));
    // Marker, XA END and XA COMMIT ONE PHASE in one round trip.
    size_t failed_at = 0;
    absl::Status s = conn_->QueryAll({MarkerInsert(gid), absl::StrCat("XA END ", xid_),
                                      absl::StrCat("XA COMMIT ", xid_, " ONE PHASE")},
                                     &failed_at);
    if (!s.ok() && failed_at == 0 && s.code() != absl::StatusCode::kUnavailable) {
      (void)RollbackLocal();
      return absl::AbortedError(absl::StrCat("commit marker: ", s.message()));
    }
    if (!s.ok()) {
      if (s.code() != absl::StatusCode::kUnavailable) (void)RollbackLocal();
      conn_->Discard();
      open_ = false;
      return s;
    }
    open_ = false;
    return absl::OkStatus();
  }

  absl::StatusOr<bool> InsertBarrier(const std::string& gid, const std::string& op,
                                     const std::string& origin) override {
    v1::Sql insert;
    insert.set_text(
        absl::StrCat("INSERT IGNORE INTO ", kBarrierTable, " (gid, op, origin) VALUES (?, ?, ?)"));
    insert.add_params(gid);
    insert.add_params(op);
    insert.add_params(origin);
    bool wrote = false;
    TXN_ASSIGN_OR_RETURN(v1::ExecuteResult r, conn_->Execute(insert, &wrote));
    return r.rows_affected() == 1;
  }

  absl::StatusOr<std::string> BarrierOrigin(const std::string& gid,
                                            const std::string& op) override {
    v1::Sql select;
    select.set_text(
        absl::StrCat("SELECT origin FROM ", kBarrierTable, " WHERE gid = ? AND op = ?"));
    select.add_params(gid);
    select.add_params(op);
    bool wrote = false;
    TXN_ASSIGN_OR_RETURN(v1::ExecuteResult r, conn_->Execute(select, &wrote));
    if (r.rows_size() == 0 || r.rows(0).values_size() == 0) return std::string();
    return r.rows(0).values(0);
  }

  absl::Status Commit() override {
    absl::Status s = conn_->QueryAll(
        {absl::StrCat("XA END ", xid_), absl::StrCat("XA COMMIT ", xid_, " ONE PHASE")});
    if (!s.ok()) {
      if (s.code() != absl::StatusCode::kUnavailable) (void)RollbackLocal();
      conn_->Discard();
      open_ = false;
      return s;
    }
    open_ = false;
    return absl::OkStatus();
  }

  absl::Status RollbackLocal() override {
    if (!open_) return absl::OkStatus();
    open_ = false;
    (void)conn_->Query(absl::StrCat("XA END ", xid_));  // fails harmlessly if already ended
    absl::Status s = conn_->Query(absl::StrCat("XA ROLLBACK ", xid_));
    if (!s.ok()) conn_->Discard();
    return s;
  }

 private:
  std::unique_ptr<MysqlConnection> conn_;
  const std::string gid_;
  const std::string xid_;
  ParkedXaConnections* const parked_;
  MysqlPool* const pool_;
  const ResultLimits limits_;
  bool open_ = false;
  bool wrote_ = false;
};

}  // namespace

std::string XidLiteral(const std::string& gid) {
  return absl::StrCat("X'", absl::BytesToHexString(gid), "',X'',", kXaFormatId);
}

bool ParseServerVersion(const std::string& text, ServerVersion* out) {
  ServerVersion v;
  if (std::sscanf(text.c_str(), "%d.%d.%d", &v.major, &v.minor, &v.patch) != 3) return false;
  v.mariadb = absl::StrContains(text, "MariaDB");
  *out = v;
  return true;
}

absl::Status CheckXaSupport(const ServerVersion& v) {
  auto at_least = [&](int a, int b, int c) {
    return std::tie(v.major, v.minor, v.patch) >= std::tie(a, b, c);
  };
  if (v.mariadb && !at_least(10, 5, 2)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "MariaDB ", v.major, ".", v.minor, ".", v.patch,
        " loses prepared XA transactions when the connection closes; txagent needs >= 10.5.2"));
  }
  if (!v.mariadb && !at_least(5, 7, 7)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "MySQL ", v.major, ".", v.minor, ".", v.patch,
        " loses prepared XA transactions when the connection closes; txagent needs >= 5.7.7"));
  }
  return absl::OkStatus();
}

MysqlAdapter::MysqlAdapter(MysqlDsn dsn, int max_idle, int64_t lock_timeout_ms,
                           int marker_retention_hours)
    : pool_(std::make_unique<MysqlPool>(std::move(dsn), max_idle, lock_timeout_ms)),
      parked_(std::make_unique<ParkedXaConnections>(static_cast<size_t>(max_idle))),
      marker_retention_hours_(marker_retention_hours) {}

MysqlAdapter::~MysqlAdapter() = default;

absl::Status MysqlAdapter::CheckReady() {
  TXN_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  TXN_ASSIGN_OR_RETURN(auto rows, conn->QueryRows("SELECT VERSION(), @@log_bin, DATABASE()"));
  ServerVersion v;
  if (rows.empty() || !ParseServerVersion(rows[0][0], &v)) {
    return absl::FailedPreconditionError("cannot read the MySQL server version");
  }
  TXN_RETURN_IF_ERROR(CheckXaSupport(v));
  if (rows[0][2].empty()) {
    return absl::FailedPreconditionError("--dsn names no database (dbname=...)");
  }
  if (rows[0][1] == "1") {
    if (v.mariadb) {
      common::LogWarning(
          "the MariaDB binary log is on: prepared XA transactions may not be crash-safe with it");
    } else if (std::tie(v.major, v.minor, v.patch) < std::make_tuple(8, 0, 30)) {
      common::LogWarning("MySQL < 8.0.30 with the binary log on: XA is not crash-safe");
    }
  }
  // Privileges beyond one database's data, which the statement policy must then hold back.
  TXN_ASSIGN_OR_RETURN(
      auto privileges,
      conn->QueryRows("SELECT CURRENT_USER(), IFNULL(GROUP_CONCAT(PRIVILEGE_TYPE), '') "
                      "FROM information_schema.USER_PRIVILEGES WHERE PRIVILEGE_TYPE IN "
                      "('SUPER', 'FILE') AND GRANTEE = CONCAT('''', "
                      "SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', "
                      "SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')"));
  if (!privileges.empty() && privileges[0].size() == 2) {
    NoteDatabaseSuperuser(!privileges[0][1].empty(),
                          absl::StrCat("user ", privileges[0][0], " has ", privileges[0][1]),
                          "client statements run with those privileges, limited only by the "
                          "statement policy; connect as a user with privileges on its database "
                          "only");
  }
  absl::StatusOr<std::vector<std::vector<std::string>>> recover = conn->QueryRows("XA RECOVER");
  if (!recover.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "this MySQL user cannot run XA RECOVER, so in-doubt branches would go unseen (MySQL 8 "
        "needs the XA_RECOVER_ADMIN privilege): ",
        recover.status().message()));
  }
  return conn->Query(absl::StrCat("CREATE TABLE IF NOT EXISTS ", kMarkerTable,
                                  " (gid VARCHAR(64) NOT NULL PRIMARY KEY, created_at TIMESTAMP "
                                  "NOT NULL DEFAULT CURRENT_TIMESTAMP, INDEX (created_at)) "
                                  "ENGINE=InnoDB"));
}

absl::Status MysqlAdapter::EnsureSagaBarrier() {
  TXN_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  return conn->Query(absl::StrCat("CREATE TABLE IF NOT EXISTS ", kBarrierTable,
                                  " (gid VARCHAR(64) NOT NULL, op VARCHAR(16) NOT NULL, "
                                  "origin VARCHAR(16) NOT NULL, created_at TIMESTAMP NOT NULL "
                                  "DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (gid, op)) "
                                  "ENGINE=InnoDB"));
}

absl::Status MysqlAdapter::EnsureTpcTable() {
  TXN_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  return conn->Query(absl::StrCat(
      "CREATE TABLE IF NOT EXISTS ", kTpcTable,
      " (gid VARCHAR(64) NOT NULL PRIMARY KEY, state VARCHAR(2) NOT NULL, "
      "promised_round BIGINT UNSIGNED NOT NULL, promised_owner VARCHAR(255) NOT NULL, "
      "attempted_round BIGINT UNSIGNED NOT NULL, attempted_owner VARCHAR(255) NOT NULL, "
      "members TEXT NOT NULL, updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP "
      "ON UPDATE CURRENT_TIMESTAMP) ENGINE=InnoDB"));
}

absl::StatusOr<std::optional<TpcRow>> MysqlAdapter::LoadTpcRecord(const std::string& gid) {
  TXN_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  v1::Sql q;
  q.set_text(
      absl::StrCat("SELECT state, promised_round, promised_owner, attempted_round, "
                   "attempted_owner, members FROM ",
                   kTpcTable, " WHERE gid = ?"));
  q.add_params(gid);
  bool wrote = false;
  TXN_ASSIGN_OR_RETURN(v1::ExecuteResult r, conn->Execute(q, &wrote));
  if (r.rows_size() == 0) return std::optional<TpcRow>();
  const auto& v = r.rows(0).values();
  if (v.size() < 6) return absl::DataLossError(absl::StrCat("corrupt ", kTpcTable, " row"));
  TpcRow row;
  row.state = v[0];
  if (!absl::SimpleAtoi(v[1], &row.promised_round) ||
      !absl::SimpleAtoi(v[3], &row.attempted_round)) {
    return absl::DataLossError(absl::StrCat("corrupt ", kTpcTable, " row for ", gid));
  }
  row.promised_owner = v[2];
  row.attempted_owner = v[4];
  if (!v[5].empty()) row.members = absl::StrSplit(v[5], ',');
  return std::optional<TpcRow>(std::move(row));
}

absl::Status MysqlAdapter::StoreTpcRecord(const std::string& gid, const TpcRow& row) {
  TXN_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  v1::Sql q;
  // One autocommit statement on a pool connection (never inside an XA branch): committed, and
  // with innodb_flush_log_at_trx_commit=1 (the default) flushed, on return.
  q.set_text(absl::StrCat("INSERT INTO ", kTpcTable,
                          " (gid, state, promised_round, promised_owner, attempted_round, "
                          "attempted_owner, members) VALUES (?, ?, ?, ?, ?, ?, ?) "
                          "ON DUPLICATE KEY UPDATE state = VALUES(state), "
                          "promised_round = VALUES(promised_round), "
                          "promised_owner = VALUES(promised_owner), "
                          "attempted_round = VALUES(attempted_round), "
                          "attempted_owner = VALUES(attempted_owner), members = VALUES(members)"));
  q.add_params(gid);
  q.add_params(row.state);
  q.add_params(absl::StrCat(row.promised_round));
  q.add_params(row.promised_owner);
  q.add_params(absl::StrCat(row.attempted_round));
  q.add_params(row.attempted_owner);
  q.add_params(absl::StrJoin(row.members, ","));
  bool wrote = false;
  return conn->Execute(q, &wrote).status();
}

absl::StatusOr<std::vector<std::string>> MysqlAdapter::ListUndecidedTpc() {
  TXN_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  TXN_ASSIGN_OR_RETURN(
      auto rows, conn->QueryRows(absl::StrCat("SELECT gid FROM ", kTpcTable,
                                              " WHERE state IN ('W', 'PC', 'PA') ORDER BY gid")));
  std::vector<std::string> gids;
  for (const auto& row : rows) {
    if (!row.empty()) gids.push_back(row[0]);
  }
  return gids;
}

absl::StatusOr<std::unique_ptr<BranchSession>> MysqlAdapter::Begin(const std::string& gid) {
  TXN_RETURN_IF_ERROR(CheckGid(gid));
  TXN_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  auto session = std::make_unique<MysqlSession>(std::move(conn), gid, parked_.get(), pool_.get(),
                                                 limits_);
  TXN_RETURN_IF_ERROR(session->Open());
  return std::unique_ptr<BranchSession>(std::move(session));
}

absl::StatusOr<FinishResult> MysqlAdapter::ProveByMarker(const std::string& gid) {
  TXN_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  v1::Sql q;
  q.set_text(absl::StrCat("SELECT 1 FROM ", kMarkerTable, " WHERE gid = ?"));
  q.add_params(gid);
  bool wrote = false;
  TXN_ASSIGN_OR_RETURN(v1::ExecuteResult r, conn->Execute(q, &wrote));
  if (r.rows_size() > 0) return FinishResult{FinishedAs::kCommitted, ""};
  return FinishResult{FinishedAs::kAborted,
                      absl::StrCat(gid, " is not prepared and its commit marker is absent")};
}

absl::Status MysqlAdapter::CheckDetached(const std::string& gid) {
  TXN_ASSIGN_OR_RETURN(bool prepared, IsPrepared(gid));
  if (prepared) {
    return absl::UnavailableError(absl::StrCat(
        gid, " is prepared but still attached to the connection that prepared it; retry"));
  }
  return absl::OkStatus();
}

absl::Status MysqlAdapter::FinishParked(const std::string& gid, const char* verb, bool* done) {
  *done = false;
  std::unique_ptr<MysqlConnection> conn = parked_->Take(gid);
  if (conn == nullptr) return absl::OkStatus();
  absl::Status s = conn->Query(absl::StrCat(verb, " ", XidLiteral(gid)));
  if (s.ok()) {
    *done = true;  // and the connection goes back to the pool, reset
    conn->SetHoldsPreparedXa(false);
    return s;
  }
  // Whatever happened, this session is not reused. A lost connection leaves the branch
  // detached (or finished, which the marker proves): the general path takes over. Until it
  // does, a lock the detached branch holds is still named by this connection's id.
  conn->Discard();
  parked_->RememberClosed(gid, conn->thread_id());
  if (s.code() == absl::StatusCode::kUnavailable) return absl::OkStatus();
  return s;
}

absl::StatusOr<FinishResult> MysqlAdapter::CommitPrepared(const std::string& gid,
                                                          const std::string& native_id) {
  absl::StatusOr<FinishResult> r = CommitXa(gid);
  if (r.ok()) parked_->Finished(gid);
  return r;
}

absl::StatusOr<FinishResult> MysqlAdapter::RollbackPrepared(const std::string& gid,
                                                            const std::string& native_id) {
  absl::StatusOr<FinishResult> r = RollbackXa(gid);
  if (r.ok()) parked_->Finished(gid);
  return r;
}

absl::StatusOr<FinishResult> MysqlAdapter::CommitXa(const std::string& gid) {
  TXN_RETURN_IF_ERROR(CheckGid(gid));
  bool done = false;
  TXN_RETURN_IF_ERROR(FinishParked(gid, "XA COMMIT", &done));
  if (done) return FinishResult{FinishedAs::kCommitted, ""};
  TXN_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  absl::Status s = conn->Query(absl::StrCat("XA COMMIT ", XidLiteral(gid)));
  if (s.ok()) return FinishResult{FinishedAs::kCommitted, ""};
  if (conn->last_errno() == kErXaerNota) {
    TXN_RETURN_IF_ERROR(CheckDetached(gid));
    return ProveByMarker(gid);
  }
  return s;
}

absl::StatusOr<FinishResult> MysqlAdapter::RollbackXa(const std::string& gid) {
  TXN_RETURN_IF_ERROR(CheckGid(gid));
  bool done = false;
  TXN_RETURN_IF_ERROR(FinishParked(gid, "XA ROLLBACK", &done));
  if (done) return FinishResult{FinishedAs::kAborted, ""};
  TXN_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  absl::Status s = conn->Query(absl::StrCat("XA ROLLBACK ", XidLiteral(gid)));
  if (s.ok()) return FinishResult{FinishedAs::kAborted, ""};
  if (conn->last_errno() == kErXaerNota) {
    TXN_RETURN_IF_ERROR(CheckDetached(gid));
    TXN_ASSIGN_OR_RETURN(FinishResult proven, ProveByMarker(gid));
    if (proven.as == FinishedAs::kCommitted) return proven;
    return FinishResult{FinishedAs::kAborted, ""};
  }
  return s;
}

absl::StatusOr<FinishedAs> MysqlAdapter::ProveOnePhase(const std::string& gid) {
  TXN_ASSIGN_OR_RETURN(FinishResult r, ProveByMarker(gid));
  return r.as;
}

absl::StatusOr<std::vector<std::string>> MysqlAdapter::ListPrepared() {
  TXN_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  TXN_ASSIGN_OR_RETURN(auto rows, conn->QueryRows("XA RECOVER"));
  std::vector<std::string> gids;
  for (const auto& row : rows) {
    // formatID, gtrid_length, bqual_length, data
    if (row.size() < 4 || row[0] != std::to_string(kXaFormatId)) continue;
    size_t gtrid_length = std::stoul(row[1]);
    std::string gid = row[3].substr(0, gtrid_length);
    if (common::ParseBranchGid(gid)) gids.push_back(gid);
  }
  return gids;
}

absl::StatusOr<bool> MysqlAdapter::IsPrepared(const std::string& gid) {
  TXN_ASSIGN_OR_RETURN(std::vector<std::string> gids, ListPrepared());
  return std::find(gids.begin(), gids.end(), gid) != gids.end();
}

absl::Status MysqlAdapter::CollectGarbage() {
  if (size_t closed = parked_->CloseOlderThan(kMaxParkedAge); closed > 0) {
    common::LogInfo(absl::StrCat("closed ", closed, " connections holding branches prepared over ",
                                 absl::FormatDuration(absl::FromChrono(kMaxParkedAge)),
                                 " ago (they stay prepared, detached, for any connection to "
                                 "finish)"));
  }
  // Two steps, so that housekeeping never waits for a lock: the old markers are found with a
  // plain (non-locking) read and deleted by primary key. A DELETE ranging over created_at
  // would take next-key locks and wait for the uncommitted markers of prepared branches (up to
  // the lock timeout), and new branches' marker inserts would queue behind it: every branch of
  // the agent stalled for seconds, and the stall hid cross-database deadlocks from the detector
  // (the waiting DELETE is no branch).
  TXN_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  TXN_ASSIGN_OR_RETURN(auto rows,
                       conn->QueryRows(absl::StrCat("SELECT gid FROM ", kMarkerTable,
                                                    " WHERE created_at < NOW() - INTERVAL ",
                                                    marker_retention_hours_, " HOUR LIMIT 1000")));
  std::vector<std::string> quoted;
  for (const auto& row : rows) {
    // Only gids this agent writes (txc_<txn id>_<branch>: letters, digits, '-', '_').
    if (!row.empty() && common::ParseBranchGid(row[0])) quoted.push_back(absl::StrCat("'", row[0], "'"));
  }
  if (quoted.empty()) return absl::OkStatus();
  return conn->Query(absl::StrCat("DELETE FROM ", kMarkerTable, " WHERE gid IN (",
                                  absl::StrJoin(quoted, ","), ")"));
}

absl::StatusOr<std::vector<LockWaitFound>> MysqlAdapter::FindLockWaits(
    const std::vector<LiveBranch>& waiting, const std::vector<LiveBranch>& live) {
  std::unordered_map<int64_t, std::string> gid_of_thread;
  for (const LiveBranch& b : live) {
    if (b.session_id != 0) gid_of_thread[b.session_id] = b.gid;
  }
  // A prepared branch's connection is parked (ParkedXaConnections) and still holds its locks.
  for (auto& [thread, gid] : parked_->ThreadIds()) gid_of_thread[thread] = gid;
  std::unordered_map<int64_t, std::string> waiters;
  for (const LiveBranch& b : waiting) {
    if (b.session_id != 0) waiters[b.session_id] = b.gid;
  }
  if (waiters.empty()) return std::vector<LockWaitFound>{};
  TXN_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  TXN_ASSIGN_OR_RETURN(
      auto rows,
      conn->QueryRows("SELECT r.trx_mysql_thread_id, b.trx_mysql_thread_id, b.trx_state, "
                      "IFNULL(p.USER, ''), IFNULL(p.HOST, '') "
                      "FROM information_schema.INNODB_LOCK_WAITS w "
                      "JOIN information_schema.INNODB_TRX r ON r.trx_id = w.requesting_trx_id "
                      "JOIN information_schema.INNODB_TRX b ON b.trx_id = w.blocking_trx_id "
                      "LEFT JOIN information_schema.PROCESSLIST p ON p.ID = b.trx_mysql_thread_id"));
  std::vector<LockWaitFound> out;
  for (const auto& row : rows) {
    int64_t waiter = 0, holder = 0;
    if (row.size() < 5 || !absl::SimpleAtoi(row[0], &waiter) || !absl::SimpleAtoi(row[1], &holder)) {
      continue;
    }
    auto w = waiters.find(waiter);
    if (w == waiters.end()) continue;
    LockWaitFound found{w->second, "", ""};
    if (auto h = gid_of_thread.find(holder); holder != 0 && h != gid_of_thread.end()) {
      found.holder_gid = h->second;
      found.holder = absl::StrCat("thread ", holder, " (branch ", h->second, ")");
    } else if (holder == 0 || row[3].empty()) {
      // No session: a prepared XA transaction detached from its closed connection that is not
      // one this agent closed (MariaDB shows no xid in INNODB_TRX), so not attributable.
      found.holder = absl::StrCat("thread ", holder, " (connection closed, ", row[2], ")");
    } else {
      found.holder = absl::StrCat("thread ", holder, " (user ", row[3], "@", row[4], ", ",
                                  row[2], ")");
    }
    out.push_back(std::move(found));
  }
  return out;
}

}  // namespace txn::agent
