// The transfer workload's tables: `acct(id int primary key, bal int)` in PostgreSQL and in
// MariaDB, accounts 1..N. Setup, the total balance (which no transfer may change), and the wait
// for prepared transactions to be finished before the total is read.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "tools/txbench/sql_clients.h"

namespace txn::bench {

inline constexpr int64_t kInitialBalance = 1'000'000;

// (Re)creates both tables with `accounts` rows of kInitialBalance each, and rolls back prepared
// transactions a killed txbench --direct left behind (gids starting with txbench_).
absl::Status SetUpAccounts(PgClient& pg, MysqlClient& my, int64_t accounts);

// Sum of both tables' balances. Before reading, waits (up to `settle_s`) until neither database
// holds a prepared transaction of txcoord's (txc_) or txbench's (txbench_): a transfer is only
// done once both branches committed. FAILED_PRECONDITION naming what is still prepared.
absl::StatusOr<int64_t> TotalBalance(PgClient& pg, MysqlClient& my, double settle_s);

}  // namespace txn::bench
