#include "participant-agent/adapters/mysql/mysql_connection.h"

#include <errmsg.h>
#include <poll.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace txn::agent {
namespace {

bool ConnectionLost(unsigned err) {
  return err == CR_SERVER_GONE_ERROR || err == CR_SERVER_LOST || err == CR_CONNECTION_ERROR ||
         err == CR_CONN_HOST_ERROR || err == CR_SERVER_LOST_EXTENDED || err == 1927 /* killed */ ||
         err == 1053 /* server shutdown */ || err == 4031 /* disconnected by server */;
}

absl::Status StatusFor(unsigned err, const char* sqlstate, const char* message) {
  std::string text = absl::StrCat("MySQL error ", err, " (", sqlstate, "): ", message);
  if (ConnectionLost(err)) return absl::UnavailableError(text);
  if (err == kErLockDeadlock || err == kErLockWaitTimeout) return absl::AbortedError(text);
  if (err == kErStatementTimeout) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the statement ran past its transaction's deadline (max_statement_time, set from the "
        "time the call had left): ", text));
  }
  return absl::FailedPreconditionError(text);
}

// Same dead-connection test as the PostgreSQL pool: an idle connection has nothing to read.
bool LooksDead(MYSQL* conn) {
  pollfd p{static_cast<int>(mysql_get_socket(conn)), POLLIN, 0};
  if (p.fd < 0) return true;
  return poll(&p, 1, 0) != 0;
}

}  // namespace

MysqlConnection::~MysqlConnection() {
  pool_->Release(std::move(pooled_), !discard_ && !holds_prepared_xa_, needs_reset_);
}

absl::Status MysqlConnection::Error(MYSQL_STMT* stmt) {
  last_errno_ = stmt ? mysql_stmt_errno(stmt) : mysql_errno(conn_);
  absl::Status s = stmt ? StatusFor(last_errno_, mysql_stmt_sqlstate(stmt), mysql_stmt_error(stmt))
                        : StatusFor(last_errno_, mysql_sqlstate(conn_), mysql_error(conn_));
  if (s.code() == absl::StatusCode::kUnavailable) discard_ = true;
  return s;
}

absl::Status MysqlConnection::ApplyPendingSettings() {
  if (!pooled_->settings_pending) return absl::OkStatus();
  const std::string& set = pool_->SessionSettingsSql();
  if (mysql_real_query(conn_, set.data(), set.size()) != 0) {
    discard_ = true;  // a session without its settings is never pooled again
    return Error(nullptr);
  }
  pooled_->settings_pending = false;
  return absl::OkStatus();
}

absl::Status MysqlConnection::Query(const std::string& sql) { return QueryAll({sql}); }

absl::Status MysqlConnection::QueryAll(const std::vector<std::string>& sqls, size_t* failed_at) {
  last_errno_ = 0;
  // Pending session settings go first, in the same round trip; they do not count in
  // `failed_at` (if they fail, the connection is not pooled again and the failure is reported
  // at index 0, before anything of the caller's ran).
  const bool with_settings = pooled_->settings_pending;
  size_t at = 0;
  auto fail = [&] {
    if (failed_at != nullptr) *failed_at = with_settings && at > 0 ? at - 1 : at;
    if (with_settings && at == 0) discard_ = true;
    return Error(nullptr);
  };
  std::string joined = with_settings ? pool_->SessionSettingsSql() : std::string();
  for (const std::string& sql : sqls) {
    if (!joined.empty()) joined += "; ";
    joined += sql;
  }
  if (mysql_real_query(conn_, joined.data(), joined.size()) != 0) return fail();
  pooled_->settings_pending = false;  // the first statement, if any, was the settings
  for (;;) {
    if (MYSQL_RES* r = mysql_store_result(conn_)) mysql_free_result(r);
    const int next = mysql_next_result(conn_);
    if (next < 0) break;  // no more results
    ++at;
    if (next > 0) return fail();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::vector<std::string>>> MysqlConnection::QueryRows(
    const std::string& sql) {
  last_errno_ = 0;
  TXN_RETURN_IF_ERROR(ApplyPendingSettings());
  if (mysql_real_query(conn_, sql.data(), sql.size()) != 0) return Error(nullptr);
  std::vector<std::vector<std::string>> rows;
  MYSQL_RES* r = mysql_store_result(conn_);
  if (r == nullptr) {
    if (mysql_errno(conn_) != 0) return Error(nullptr);
    return rows;
  }
  const unsigned n = mysql_num_fields(r);
  while (MYSQL_ROW row = mysql_fetch_row(r)) {
    unsigned long* lengths = mysql_fetch_lengths(r);
    std::vector<std::string> out;
    for (unsigned i = 0; i < n; ++i)
      out.emplace_back(row[i] ? std::string(row[i], lengths[i]) : "");
    rows.push_back(std::move(out));
  }
  mysql_free_result(r);
  return rows;
}

absl::StatusOr<v1::ExecuteResult> MysqlConnection::Execute(const v1::Sql& sql, bool* wrote,
                                                           const ResultLimits& limits,
                                                           const std::function<void()>& stop_statement) {
  last_errno_ = 0;
  TXN_RETURN_IF_ERROR(ApplyPendingSettings());
  std::unique_ptr<MYSQL_STMT, decltype(&mysql_stmt_close)> owned(mysql_stmt_init(conn_),
                                                                  &mysql_stmt_close);
  MYSQL_STMT* const stmt = owned.get();
  if (stmt == nullptr) return Error(nullptr);
  // The statement's placeholders are counted by the server as it prepares: the client says how
  // many parameters it binds, and a mismatch fails before anything runs (checked: 1835 from
  // the server for fewer, 2034 from the client library for more).
  unsigned int given = static_cast<unsigned int>(sql.params_size());
  if (mysql_stmt_attr_set(stmt, STMT_ATTR_PREBIND_PARAMS, &given) != 0) return Error(stmt);
  std::vector<MYSQL_BIND> params(given);
  std::vector<my_bool> nulls(given, 0);
  for (uint32_t idx : sql.null_params()) {
    if (idx < given) nulls[idx] = 1;
  }
  for (unsigned int i = 0; i < given; ++i) {
    params[i] = MYSQL_BIND{};
    params[i].buffer_type = MYSQL_TYPE_STRING;
    params[i].buffer = const_cast<char*>(sql.params(static_cast<int>(i)).data());
    params[i].buffer_length = sql.params(static_cast<int>(i)).size();
    params[i].is_null = &nulls[i];
  }
  if (given > 0 && mysql_stmt_bind_param(stmt, params.data()) != 0) return Error(stmt);
  if (mariadb_stmt_execute_direct(stmt, sql.text().data(), sql.text().size()) != 0) {
    const unsigned err = mysql_stmt_errno(stmt);
    if (err == kErMalformedPacket || err == CR_INVALID_PARAMETER_NO) {
      last_errno_ = err;
      return absl::FailedPreconditionError(
          absl::StrCat("the statement's placeholders do not match the ", given,
                       " params given (MySQL error ", err, ": ", mysql_stmt_error(stmt), ")"));
    }
    return Error(stmt);
  }

  v1::ExecuteResult out;
  std::unique_ptr<MYSQL_RES, decltype(&mysql_free_result)> meta(
      mysql_stmt_result_metadata(stmt), &mysql_free_result);
  if (!meta) {
    *wrote = true;
    out.set_rows_affected(static_cast<int64_t>(mysql_stmt_affected_rows(stmt)));
    return out;
  }
  const unsigned n = mysql_num_fields(meta.get());
  MYSQL_FIELD* fields = mysql_fetch_fields(meta.get());
  for (unsigned i = 0; i < n; ++i) out.add_columns(fields[i].name);
  // Rows are fetched one at a time from the server (no mysql_stmt_store_result), so that a
  // result over the limits is never held whole: reading stops there, the statement is stopped in
  // the server, and closing it drops what the server still sent.
  // Fetch each column into a zero-length buffer to learn its length, then fetch it for real.
  std::vector<MYSQL_BIND> cols(n);
  std::vector<unsigned long> lengths(n);
  std::vector<my_bool> is_null(n), errors(n);
  for (unsigned i = 0; i < n; ++i) {
    cols[i] = MYSQL_BIND{};
    cols[i].buffer_type = MYSQL_TYPE_STRING;
    cols[i].length = &lengths[i];
    cols[i].is_null = &is_null[i];
    cols[i].error = &errors[i];
  }
  if (n > 0 && mysql_stmt_bind_result(stmt, cols.data()) != 0) return Error(stmt);
  int64_t bytes = 0;
  for (;;) {
    int rc = mysql_stmt_fetch(stmt);
    if (rc == MYSQL_NO_DATA) break;
    if (rc == 1) return Error(stmt);
    for (unsigned i = 0; i < n; ++i) bytes += is_null[i] ? 0 : static_cast<int64_t>(lengths[i]);
    if (absl::Status over = limits.Check(out.rows_size() + 1, bytes); !over.ok()) {
      if (stop_statement) {
        stop_statement();
        discard_ = true;
      }
      return over;  // closing the statement reads and drops what the server still sends
    }
    v1::Row* row = out.add_rows();
    for (unsigned i = 0; i < n; ++i) {
      if (is_null[i]) {
        row->add_values("");
        row->add_null_values(i);
        continue;
      }
      std::string value(lengths[i], '\0');
      if (lengths[i] > 0) {
        MYSQL_BIND one{};
        one.buffer_type = MYSQL_TYPE_STRING;
        one.buffer = value.data();
        one.buffer_length = value.size();
        if (mysql_stmt_fetch_column(stmt, &one, i, 0) != 0) return Error(stmt);
      }
      row->add_values(std::move(value));
    }
  }
  mysql_stmt_free_result(stmt);
  out.set_rows_affected(out.rows_size());
  return out;
}

namespace {
std::string SessionSettingsFor(int64_t lock_timeout_ms) {
  if (lock_timeout_ms <= 0) return "";
  const int64_t seconds = std::max<int64_t>(1, (lock_timeout_ms + 999) / 1000);
  return absl::StrCat("SET SESSION innodb_lock_wait_timeout = ", seconds);
}
}  // namespace

MysqlPool::MysqlPool(MysqlDsn dsn, int max_idle, int64_t lock_timeout_ms)
    : dsn_(std::move(dsn)),
      max_idle_(max_idle),
      session_settings_sql_(SessionSettingsFor(lock_timeout_ms)) {}

MysqlPool::~MysqlPool() {
  std::lock_guard<std::mutex> lock(mu_);
  idle_.clear();  // closes each connection
}

absl::StatusOr<std::unique_ptr<MysqlConnection>> MysqlPool::Acquire() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    while (!idle_.empty()) {
      std::unique_ptr<PooledMysql> c = std::move(idle_.back());
      idle_.pop_back();
      if (!LooksDead(c->conn)) return std::make_unique<MysqlConnection>(this, std::move(c));
    }
  }
  MYSQL* c = mysql_init(nullptr);
  if (c == nullptr) return absl::ResourceExhaustedError("mysql_init: out of memory");
  unsigned int timeout = 5;
  my_bool no = 0;
  mysql_options(c, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
  mysql_options(c, MYSQL_OPT_RECONNECT, &no);
  mysql_options(c, MYSQL_SET_CHARSET_NAME, "utf8mb4");
  if (mysql_real_connect(c, dsn_.socket.empty() ? dsn_.host.c_str() : nullptr, dsn_.user.c_str(),
                         dsn_.password.empty() ? nullptr : dsn_.password.c_str(),
                         dsn_.dbname.empty() ? nullptr : dsn_.dbname.c_str(), dsn_.port,
                         dsn_.socket.empty() ? nullptr : dsn_.socket.c_str(),
                         // Multi-statement queries carry the agent's own statements (QueryAll);
                         // a client's statement is always a server-side prepared statement,
                         // which the server takes one at a time whatever this flag says
                         // (preparing "SELECT 1; DROP TABLE t" answers 1064, runs nothing).
                         CLIENT_FOUND_ROWS | CLIENT_MULTI_STATEMENTS) == nullptr) {
    std::string msg = mysql_error(c);
    mysql_close(c);
    return absl::UnavailableError(absl::StrCat("cannot connect to MySQL: ", msg));
  }
  if (!session_settings_sql_.empty() &&
      mysql_real_query(c, session_settings_sql_.data(), session_settings_sql_.size()) != 0) {
    std::string msg = mysql_error(c);
    mysql_close(c);
    return absl::UnavailableError(absl::StrCat("cannot set up a MySQL session: ", msg));
  }
  return std::make_unique<MysqlConnection>(this, std::make_unique<PooledMysql>(c));
}

void MysqlPool::Release(std::unique_ptr<PooledMysql> conn, bool reusable, bool needs_reset) {
  if (reusable && needs_reset) {
    // A reset returns session variables to the server's defaults: ours are applied again with
    // the connection's next statement (PooledMysql::settings_pending).
    reusable = mysql_reset_connection(conn->conn) == 0;
    conn->settings_pending = !session_settings_sql_.empty();
  }
  if (reusable) {
    std::lock_guard<std::mutex> lock(mu_);
    if (static_cast<int>(idle_.size()) < max_idle_) {
      idle_.push_back(std::move(conn));
      return;
    }
  }
  // conn closes here, outside the lock
}

}  // namespace txn::agent
