// MySQL/MariaDB connections through libmariadb, and a small pool of them.
//
// Statements from clients always go through server-side prepared statements (parameters bound
// as strings; the server prepares one statement at a time, so a client's text is never a
// multi-statement); only the adapter's own fixed statements (XA ..., with hex literals it built
// itself) use plain queries, several in one round trip where they can. Connections are made
// with CLIENT_FOUND_ROWS so "rows affected" counts matched rows, as PostgreSQL does, and never
// reconnect by themselves (a silent reconnect in the middle of an XA transaction would lose it).
// Thread-compatible: one thread uses a connection at a time; the pool is thread-safe.
#pragma once

#include <mysql.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "participant-agent/adapters/mysql/mysql_dsn.h"
#include "participant-agent/resource_adapter.h"
#include "txn/v1/common.pb.h"

namespace txn::agent {

// MySQL error numbers the adapter acts on.
inline constexpr unsigned kErLockWaitTimeout = 1205;
inline constexpr unsigned kErLockDeadlock = 1213;
inline constexpr unsigned kErXaerNota = 1397;  // unknown XID
inline constexpr unsigned kErStatementTimeout = 1969;  // max_statement_time exceeded
inline constexpr unsigned kErMalformedPacket = 1835;  // e.g. fewer parameters than placeholders

class MysqlPool;

// One connection as the pool keeps it. `settings_pending`: the session was reset and the
// agent's session settings (MysqlPool::SessionSettingsSql) are not applied yet; the connection
// applies them with its first statement (in the same round trip when that statement is one of
// the adapter's own, as XA START is), so a reset costs no extra round trip for them.
struct PooledMysql {
  explicit PooledMysql(MYSQL* c) : conn(c) {}
  ~PooledMysql() { mysql_close(conn); }
  PooledMysql(const PooledMysql&) = delete;
  PooledMysql& operator=(const PooledMysql&) = delete;
  MYSQL* const conn;
  bool settings_pending = false;
};

class MysqlConnection {
 public:
  MysqlConnection(MysqlPool* pool, std::unique_ptr<PooledMysql> pooled)
      : pool_(pool), pooled_(std::move(pooled)), conn_(pooled_->conn) {}
  ~MysqlConnection();
  MysqlConnection(const MysqlConnection&) = delete;
  MysqlConnection& operator=(const MysqlConnection&) = delete;

  // Runs a statement of the adapter's own. Errors: UNAVAILABLE when the connection is lost,
  // ABORTED for deadlock / lock wait timeout, FAILED_PRECONDITION otherwise; the message
  // carries the MySQL error number.
  absl::Status Query(const std::string& sql);
  // Runs statements of the adapter's own in order, in one round trip (a multi-statement query:
  // the pool's connections allow them; a client's statement never is one, see Execute). Stops
  // at the first that fails: its status, with `*failed_at` (if given) its index. Result sets are
  // dropped.
  absl::Status QueryAll(const std::vector<std::string>& sqls, size_t* failed_at = nullptr);
  // Runs a query of the adapter's own and returns its rows as text ("" for NULL).
  absl::StatusOr<std::vector<std::vector<std::string>>> QueryRows(const std::string& sql);
  // Runs a client's statement as a server-side prepared statement, prepared and executed in
  // one round trip (mariadb_stmt_execute_direct) and closed after it: a statement is not
  // reused across branches anyway, since the reset between them drops every prepared
  // statement. `wrote` is set when it returned no result set (a data change).
  // Reading its rows stops at `limits` (RESOURCE_EXHAUSTED naming the limit); then
  // `stop_statement`, if given, stops the statement in the server (KILL QUERY from another
  // connection), so that dropping the rest of the result does not read all of it, and the
  // connection is never pooled again (a late KILL QUERY could reach its next statement).
  absl::StatusOr<v1::ExecuteResult> Execute(const v1::Sql& sql, bool* wrote,
                                            const ResultLimits& limits = ResultLimits(),
                                            const std::function<void()>& stop_statement = {});

  unsigned last_errno() const { return last_errno_; }
  // The server's id of this connection (KILL QUERY takes it; INNODB_TRX shows it).
  int64_t thread_id() const { return static_cast<int64_t>(mysql_thread_id(conn_)); }
  // Keeps the connection out of the pool when it is released (it holds state, e.g. a prepared
  // XA transaction, or is broken).
  void Discard() { discard_ = true; }
  // A client's statement ran on this connection: before another call gets it, the pool resets
  // the session (mysql_reset_connection), so nothing one client left behind (user variables,
  // LAST_INSERT_ID, session variables, temporary tables) reaches the next.
  void NoteClientStatement() { needs_reset_ = true; }
  // Between a successful XA PREPARE and the XA COMMIT / XA ROLLBACK of that branch on this
  // connection. Such a connection is never reset or pooled (a reset would roll back what it
  // holds, which only a closed connection leaves prepared); on release it is closed.
  void SetHoldsPreparedXa(bool holds) { holds_prepared_xa_ = holds; }

 private:
  absl::Status Error(MYSQL_STMT* stmt);
  // Applies pending session settings in a round trip of their own (before a statement that
  // cannot carry them, a client's prepared statement or a query whose rows are read).
  absl::Status ApplyPendingSettings();
  MysqlPool* const pool_;
  std::unique_ptr<PooledMysql> pooled_;
  MYSQL* const conn_;
  unsigned last_errno_ = 0;
  bool discard_ = false;
  bool needs_reset_ = false;
  bool holds_prepared_xa_ = false;
};

class MysqlPool {
 public:
  // `lock_timeout_ms` > 0 sets innodb_lock_wait_timeout (whole seconds, at least 1) on every new
  // connection; see PgPool for why.
  MysqlPool(MysqlDsn dsn, int max_idle, int64_t lock_timeout_ms = 0);
  ~MysqlPool();
  // An idle connection or a new one. UNAVAILABLE naming the server when it cannot connect.
  absl::StatusOr<std::unique_ptr<MysqlConnection>> Acquire();
  // Pools `conn` when `reusable`, after resetting its session when `needs_reset` (a connection
  // whose reset fails is closed); closes it otherwise.
  void Release(std::unique_ptr<PooledMysql> conn, bool reusable, bool needs_reset);
  // The agent's session settings (innodb_lock_wait_timeout) as one statement, or "" when there
  // are none. A new connection gets them at once; a reset one with its next statement.
  const std::string& SessionSettingsSql() const { return session_settings_sql_; }

 private:
  const MysqlDsn dsn_;
  const int max_idle_;
  const std::string session_settings_sql_;
  std::mutex mu_;
  std::vector<std::unique_ptr<PooledMysql>> idle_;  // guarded by mu_
};

}  // namespace txn::agent
