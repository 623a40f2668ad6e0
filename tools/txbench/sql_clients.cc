#include "tools/txbench/sql_clients.h"

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "participant-agent/adapters/mysql/mysql_dsn.h"

namespace txn::bench {
namespace {

struct PgResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;

absl::StatusOr<PgResult> PgRun(PGconn* conn, const std::string& sql,
                               const std::vector<std::string>& params) {
  std::vector<const char*> values;
  for (const auto& p : params) values.push_back(p.c_str());
  PgResult r(PQexecParams(conn, sql.c_str(), static_cast<int>(values.size()), nullptr,
                          values.data(), nullptr, nullptr, 0));
  const ExecStatusType st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return r;
  std::string msg(absl::StripAsciiWhitespace(r ? PQresultErrorMessage(r.get())
                                               : PQerrorMessage(conn)));
  if (PQstatus(conn) != CONNECTION_OK) return absl::UnavailableError(msg);
  return absl::AbortedError(absl::StrCat("PostgreSQL: ", msg));
}

}  // namespace

absl::StatusOr<std::unique_ptr<PgClient>> PgClient::Connect(const std::string& dsn) {
  PGconn* c = PQconnectdb(dsn.c_str());
  if (c == nullptr || PQstatus(c) != CONNECTION_OK) {
    std::string msg = c ? std::string(absl::StripAsciiWhitespace(PQerrorMessage(c))) : "no memory";
    if (c) PQfinish(c);
    return absl::UnavailableError(absl::StrCat("cannot connect to PostgreSQL (--pg-dsn): ", msg));
  }
  return std::unique_ptr<PgClient>(new PgClient(c));
}

PgClient::~PgClient() { PQfinish(conn_); }

absl::StatusOr<int64_t> PgClient::Exec(const std::string& sql,
                                       const std::vector<std::string>& params) {
  absl::StatusOr<PgResult> r = PgRun(conn_, sql, params);
  if (!r.ok()) return r.status();
  if (PQresultStatus(r->get()) == PGRES_TUPLES_OK) return PQntuples(r->get());
  int64_t n = 0;
  const char* affected = PQcmdTuples(r->get());
  if (affected && *affected && absl::SimpleAtoi(affected, &n)) return n;
  return 0;
}

absl::StatusOr<std::string> PgClient::Scalar(const std::string& sql) {
  absl::StatusOr<PgResult> r = PgRun(conn_, sql, {});
  if (!r.ok()) return r.status();
  if (PQntuples(r->get()) == 0 || PQgetisnull(r->get(), 0, 0)) return std::string();
  return std::string(PQgetvalue(r->get(), 0, 0));
}

absl::StatusOr<std::vector<std::string>> PgClient::Column(const std::string& sql) {
  absl::StatusOr<PgResult> r = PgRun(conn_, sql, {});
  if (!r.ok()) return r.status();
  std::vector<std::string> out;
  for (int i = 0; i < PQntuples(r->get()); ++i) out.emplace_back(PQgetvalue(r->get(), i, 0));
  return out;
}

absl::StatusOr<std::unique_ptr<MysqlClient>> MysqlClient::Connect(const std::string& dsn,
                                                                  const std::string& password) {
  absl::StatusOr<agent::MysqlDsn> parsed = agent::ParseMysqlDsn(dsn);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--mysql-dsn: ", parsed.status().message()));
  }
  if (!password.empty()) parsed->password = password;
  MYSQL* c = mysql_init(nullptr);
  if (c == nullptr) return absl::ResourceExhaustedError("mysql_init failed");
  if (mysql_real_connect(c, parsed->host.c_str(), parsed->user.c_str(),
                         parsed->password.c_str(),
                         parsed->dbname.empty() ? nullptr : parsed->dbname.c_str(), parsed->port,
                         parsed->socket.empty() ? nullptr : parsed->socket.c_str(),
                         CLIENT_FOUND_ROWS) == nullptr) {
    std::string msg = mysql_error(c);
    mysql_close(c);
    return absl::UnavailableError(absl::StrCat("cannot connect to MariaDB (--mysql-dsn): ", msg));
  }
  return std::unique_ptr<MysqlClient>(new MysqlClient(c));
}

MysqlClient::~MysqlClient() {
  if (credit_ != nullptr) mysql_stmt_close(credit_);
  mysql_close(conn_);
}

absl::Status MysqlClient::Error(const std::string& what) {
  const unsigned err = mysql_errno(conn_);
  std::string msg = absl::StrCat("MariaDB ", what, ": error ", err, ": ", mysql_error(conn_));
  if (err >= 2000 && err < 3000) return absl::UnavailableError(msg);  // client/connection errors
  return absl::AbortedError(msg);
}

absl::StatusOr<int64_t> MysqlClient::Query(const std::string& sql) {
  if (mysql_real_query(conn_, sql.data(), sql.size()) != 0) return Error(sql.substr(0, 40));
  MYSQL_RES* res = mysql_store_result(conn_);
  if (res != nullptr) {
    const int64_t n = static_cast<int64_t>(mysql_num_rows(res));
    mysql_free_result(res);
    return n;
  }
  return static_cast<int64_t>(mysql_affected_rows(conn_));
}

absl::StatusOr<std::vector<std::vector<std::string>>> MysqlClient::Rows(const std::string& sql) {
  if (mysql_real_query(conn_, sql.data(), sql.size()) != 0) return Error(sql.substr(0, 40));
  MYSQL_RES* res = mysql_store_result(conn_);
  std::vector<std::vector<std::string>> rows;
  if (res == nullptr) return rows;
  const unsigned cols = mysql_num_fields(res);
  while (MYSQL_ROW row = mysql_fetch_row(res)) {
    unsigned long* lengths = mysql_fetch_lengths(res);
    std::vector<std::string> r;
    for (unsigned i = 0; i < cols; ++i) r.emplace_back(row[i] ? std::string(row[i], lengths[i]) : "");
    rows.push_back(std::move(r));
  }
  mysql_free_result(res);
  return rows;
}

absl::StatusOr<std::string> MysqlClient::Scalar(const std::string& sql) {
  absl::StatusOr<std::vector<std::vector<std::string>>> rows = Rows(sql);
  if (!rows.ok()) return rows.status();
  if (rows->empty() || rows->front().empty()) return std::string();
  return rows->front().front();
}

absl::StatusOr<int64_t> MysqlClient::Credit(int64_t id, int64_t amount) {
  if (credit_ == nullptr) {
    credit_ = mysql_stmt_init(conn_);
    static constexpr char kSql[] = "UPDATE acct SET bal = bal + ? WHERE id = ?";
    if (credit_ == nullptr || mysql_stmt_prepare(credit_, kSql, std::strlen(kSql)) != 0) {
      absl::Status s = Error("prepare credit");
      if (credit_ != nullptr) mysql_stmt_close(credit_);
      credit_ = nullptr;
      return s;
    }
  }
  long long values[2] = {amount, id};
  MYSQL_BIND bind[2];
  std::memset(bind, 0, sizeof bind);
  for (int i = 0; i < 2; ++i) {
    bind[i].buffer_type = MYSQL_TYPE_LONGLONG;
    bind[i].buffer = &values[i];
  }
  if (mysql_stmt_bind_param(credit_, bind) != 0 || mysql_stmt_execute(credit_) != 0) {
    const unsigned err = mysql_stmt_errno(credit_);
    std::string msg = absl::StrCat("MariaDB credit: error ", err, ": ", mysql_stmt_error(credit_));
    if (err >= 2000 && err < 3000) return absl::UnavailableError(msg);
    return absl::AbortedError(msg);
  }
  return static_cast<int64_t>(mysql_stmt_affected_rows(credit_));
}

}  // namespace txn::bench
