#include "tools/txbench/accounts.h"

#include <chrono>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace txn::bench {
namespace {

constexpr char kPgPrepared[] =
    "SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database() AND "
    "(gid LIKE 'txc\\_%' OR gid LIKE 'txbench\\_%')";

absl::StatusOr<int64_t> ToInt(absl::StatusOr<std::string> s, const char* what) {
  if (!s.ok()) return s.status();
  int64_t n = 0;
  if (!s->empty() && !absl::SimpleAtoi(*s, &n)) {
    return absl::DataLossError(absl::StrCat(what, ": not a number: ", *s));
  }
  return n;
}

// XA RECOVER rows of ours: formatID 7868 (txcoord) or a txbench_ gtrid.
absl::StatusOr<int64_t> MysqlPrepared(MysqlClient& my) {
  auto rows = my.Rows("XA RECOVER");
  if (!rows.ok()) return rows.status();
  int64_t n = 0;
  for (const auto& r : *rows) {
    if (r.size() >= 4 && (r[0] == "7868" || r[3].rfind("txbench_", 0) == 0)) ++n;
  }
  return n;
}

}  // namespace

absl::Status SetUpAccounts(PgClient& pg, MysqlClient& my, int64_t accounts) {
  auto leftovers = pg.Column(
      "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() AND gid LIKE "
      "'txbench\\_%'");
  if (!leftovers.ok()) return leftovers.status();
  for (const auto& gid : *leftovers) {
    if (auto r = pg.Exec(absl::StrCat("ROLLBACK PREPARED '", gid, "'")); !r.ok()) return r.status();
  }
  auto xa = my.Rows("XA RECOVER");
  if (!xa.ok()) return xa.status();
  for (const auto& r : *xa) {
    if (r.size() >= 4 && r[3].rfind("txbench_", 0) == 0) {
      if (auto q = my.Query(absl::StrCat("XA ROLLBACK '", r[3], "'")); !q.ok()) return q.status();
    }
  }
  for (const char* sql :
       {"DROP TABLE IF EXISTS acct", "CREATE TABLE acct (id int PRIMARY KEY, bal int NOT NULL)"}) {
    if (auto r = pg.Exec(sql); !r.ok()) return r.status();
  }
  if (auto r = pg.Exec(absl::StrCat("INSERT INTO acct SELECT g, ", kInitialBalance,
                                    " FROM generate_series(1, ", accounts, ") g"));
      !r.ok()) {
    return r.status();
  }
  if (auto r = pg.Exec("VACUUM ANALYZE acct"); !r.ok()) return r.status();
  for (const char* sql :
       {"DROP TABLE IF EXISTS acct",
        "CREATE TABLE acct (id int PRIMARY KEY, bal int NOT NULL) ENGINE=InnoDB"}) {
    if (auto r = my.Query(sql); !r.ok()) return r.status();
  }
  for (int64_t from = 1; from <= accounts; from += 1000) {
    std::string insert = "INSERT INTO acct (id, bal) VALUES ";
    for (int64_t id = from; id < from + 1000 && id <= accounts; ++id) {
      absl::StrAppend(&insert, id == from ? "" : ",", "(", id, ",", kInitialBalance, ")");
    }
    if (auto r = my.Query(insert); !r.ok()) return r.status();
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> TotalBalance(PgClient& pg, MysqlClient& my, double settle_s) {
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(settle_s));
  for (;;) {
    absl::StatusOr<int64_t> pg_prepared = ToInt(pg.Scalar(kPgPrepared), "pg_prepared_xacts");
    if (!pg_prepared.ok()) return pg_prepared.status();
    absl::StatusOr<int64_t> my_prepared = MysqlPrepared(my);
    if (!my_prepared.ok()) return my_prepared.status();
    if (*pg_prepared == 0 && *my_prepared == 0) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      return absl::FailedPreconditionError(absl::StrCat(
          "still prepared after ", settle_s, " s: ", *pg_prepared, " in PostgreSQL, ",
          *my_prepared, " in MariaDB"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  absl::StatusOr<int64_t> a = ToInt(pg.Scalar("SELECT sum(bal) FROM acct"), "PostgreSQL sum");
  if (!a.ok()) return a.status();
  absl::StatusOr<int64_t> b = ToInt(my.Scalar("SELECT sum(bal) FROM acct"), "MariaDB sum");
  if (!b.ok()) return b.status();
  return *a + *b;
}

}  // namespace txn::bench
