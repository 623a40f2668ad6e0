// MySQL/MariaDB connection settings from --dsn: `key=value` pairs (host, port, user, password,
// dbname, socket; values may be single-quoted) or a mysql://user:password@host:port/dbname URI.
// Pure; thread-safe.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace txn::agent {

struct MysqlDsn {
  std::string host = "127.0.0.1";
  unsigned int port = 3306;
  std::string user;
  std::string password;
  std::string dbname;
  std::string socket;
};

// INVALID_ARGUMENT naming the bad part (never echoing the password).
absl::StatusOr<MysqlDsn> ParseMysqlDsn(const std::string& dsn);

}  // namespace txn::agent
