// The transactions txbench runs: through txcoord's public API (Run), or --direct against both
// databases' native two-phase commit with no coordinator, the floor any coordinator is measured
// against.
//
//   transfer  debit acct(a) in PostgreSQL by 1..5 (`bal >= amount`, expect_rows_affected 1),
//             credit acct(b) in MariaDB by the same amount; two branches.
//   mix       90% single-participant transfers (debit and credit on one database, one branch,
//             so one-phase commit), 10% transfer.
//   readonly  read one account on each database (both branches vote READ_ONLY).
//   empty     one operation on each --participant (noop agents): the coordinator's own cost.
// With --abort-ratio F, that fraction of transactions asks for more than any balance (or, on
// noop agents, expects a row the agent never reports), so a branch votes NO and all abort.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tools/txbench/load_loop.h"
#include "txn/v1/coordinator.grpc.pb.h"

namespace txn::bench {

enum class Workload { kTransfer, kMix, kReadOnly, kEmpty };

struct WorkloadOptions {
  Workload workload = Workload::kTransfer;
  int64_t accounts = 1000;
  double abort_ratio = 0;
  std::string pg_participant;
  std::string mysql_participant;
  std::vector<std::string> participants;  // for empty
  bool wait_for_completion = false;
  int64_t timeout_ms = 0;  // RunRequest.timeout_ms; 0 = the coordinator's default
  std::string token;       // bearer token sent with each Run ("" for none)
};

// A transaction function that calls Run on `stubs[client % stubs.size()]`.
TxnFunction CoordinatorTxn(const WorkloadOptions& options,
                           std::vector<std::shared_ptr<v1::Coordinator::Stub>> stubs);

// The --direct transfer: PostgreSQL BEGIN + debit + PREPARE TRANSACTION, MariaDB XA START +
// credit + XA END + XA PREPARE, then COMMIT PREPARED and XA COMMIT; one connection to each
// database per client, made on first use and remade after a connection error.
TxnFunction DirectTransferTxn(const WorkloadOptions& options, std::string pg_dsn,
                              std::string mysql_dsn, std::string mysql_password, int clients);

}  // namespace txn::bench
