// Minimal direct clients of PostgreSQL (libpq) and MariaDB/MySQL (libmariadb) for txbench: the
// account tables' setup and balance checks, and the --direct floor. One connection each; not
// thread-safe (one per client thread).
#pragma once

#include <libpq-fe.h>
#include <mysql.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace txn::bench {

class PgClient {
 public:
  static absl::StatusOr<std::unique_ptr<PgClient>> Connect(const std::string& dsn);
  ~PgClient();
  // Runs `sql` with text parameters; returns the rows affected (or rows returned).
  absl::StatusOr<int64_t> Exec(const std::string& sql, const std::vector<std::string>& params = {});
  // The first column of the first row, as text ("" when no row).
  absl::StatusOr<std::string> Scalar(const std::string& sql);
  absl::StatusOr<std::vector<std::string>> Column(const std::string& sql);

 private:
  explicit PgClient(PGconn* conn) : conn_(conn) {}
  PGconn* conn_;
};

class MysqlClient {
 public:
  // `dsn`: key=value (host, port, user, password, dbname, socket) or mysql:// URI; a non-empty
  // `password` replaces the DSN's.
  static absl::StatusOr<std::unique_ptr<MysqlClient>> Connect(const std::string& dsn,
                                                              const std::string& password);
  ~MysqlClient();
  // A statement of txbench's own (no parameters); returns the rows affected.
  absl::StatusOr<int64_t> Query(const std::string& sql);
  absl::StatusOr<std::string> Scalar(const std::string& sql);
  absl::StatusOr<std::vector<std::vector<std::string>>> Rows(const std::string& sql);
  // `UPDATE acct SET bal = bal + ? WHERE id = ?` as a server-side prepared statement, prepared
  // once per connection (what a careful XA client does); returns the rows matched.
  absl::StatusOr<int64_t> Credit(int64_t id, int64_t amount);

 private:
  explicit MysqlClient(MYSQL* conn) : conn_(conn) {}
  absl::Status Error(const std::string& what);
  MYSQL* conn_;
  MYSQL_STMT* credit_ = nullptr;
};

}  // namespace txn::bench
