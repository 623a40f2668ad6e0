#include "tools/txbench/workloads.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/bearer_token.h"
#include "tools/txbench/sql_clients.h"

namespace txn::bench {
namespace {

// An amount no account holds: the debit's `bal >= amount` fails and the branch votes NO.
constexpr int64_t kAbortAmount = 2'000'000'000;

struct Draw {
  int64_t from = 1;
  int64_t to = 1;
  int64_t amount = 1;
  bool abort = false;
};

Draw DrawTransfer(const WorkloadOptions& o, std::mt19937_64& rng) {
  Draw d;
  d.from = std::uniform_int_distribution<int64_t>(1, o.accounts)(rng);
  d.to = std::uniform_int_distribution<int64_t>(1, o.accounts)(rng);
  d.amount = std::uniform_int_distribution<int64_t>(1, 5)(rng);
  d.abort = o.abort_ratio > 0 && std::uniform_real_distribution<double>(0, 1)(rng) < o.abort_ratio;
  if (d.abort) d.amount = kAbortAmount;
  return d;
}

void AddSql(v1::Branch* b, const std::string& text, std::vector<std::string> params,
            std::optional<int64_t> expect) {
  v1::Sql* sql = b->add_operations()->mutable_sql();
  sql->set_text(text);
  for (auto& p : params) sql->add_params(std::move(p));
  if (expect) sql->set_expect_rows_affected(*expect);
}

void AddDebit(v1::Branch* b, bool postgres, const Draw& d) {
  const std::string amount = absl::StrCat(d.amount), from = absl::StrCat(d.from);
  if (postgres) {
    AddSql(b, "UPDATE acct SET bal = bal - $1 WHERE id = $2 AND bal >= $1", {amount, from}, 1);
  } else {
    AddSql(b, "UPDATE acct SET bal = bal - ? WHERE id = ? AND bal >= ?", {amount, from, amount},
           1);
  }
}

void AddCredit(v1::Branch* b, bool postgres, const Draw& d) {
  AddSql(b,
         postgres ? "UPDATE acct SET bal = bal + $1 WHERE id = $2"
                  : "UPDATE acct SET bal = bal + ? WHERE id = ?",
         {absl::StrCat(d.amount), absl::StrCat(d.to)}, 1);
}

// Debit in PostgreSQL, credit in MariaDB: two branches.
void AddTransfer(v1::RunRequest* req, const WorkloadOptions& o, const Draw& d) {
  v1::Branch* pg = req->add_branches();
  pg->set_participant(o.pg_participant);
  AddDebit(pg, true, d);
  v1::Branch* my = req->add_branches();
  my->set_participant(o.mysql_participant);
  AddCredit(my, false, d);
}

v1::RunRequest BuildRun(const WorkloadOptions& o, std::mt19937_64& rng) {
  v1::RunRequest req;
  req.set_protocol(v1::PROTOCOL_TWO_PHASE);
  req.set_wait_for_completion(o.wait_for_completion);
  if (o.timeout_ms > 0) req.set_timeout_ms(o.timeout_ms);
  switch (o.workload) {
    case Workload::kTransfer:
      AddTransfer(&req, o, DrawTransfer(o, rng));
      break;
    case Workload::kMix: {
      const Draw d = DrawTransfer(o, rng);
      const double r = std::uniform_real_distribution<double>(0, 1)(rng);
      if (r < 0.9) {
        const bool postgres = r < 0.45;
        v1::Branch* b = req.add_branches();
        b->set_participant(postgres ? o.pg_participant : o.mysql_participant);
        AddDebit(b, postgres, d);
        AddCredit(b, postgres, d);
      } else {
        AddTransfer(&req, o, d);
      }
      break;
    }
    case Workload::kReadOnly: {
      const Draw d = DrawTransfer(o, rng);
      v1::Branch* pg = req.add_branches();
      pg->set_participant(o.pg_participant);
      AddSql(pg, "SELECT bal FROM acct WHERE id = $1", {absl::StrCat(d.from)}, std::nullopt);
      v1::Branch* my = req.add_branches();
      my->set_participant(o.mysql_participant);
      AddSql(my, "SELECT bal FROM acct WHERE id = ?", {absl::StrCat(d.to)}, std::nullopt);
      break;
    }
    case Workload::kEmpty: {
      const bool abort = o.abort_ratio > 0 &&
                         std::uniform_real_distribution<double>(0, 1)(rng) < o.abort_ratio;
      for (size_t i = 0; i < o.participants.size(); ++i) {
        v1::Branch* b = req.add_branches();
        b->set_participant(o.participants[i]);
        // A noop agent reports 0 rows affected: expecting 1 makes it vote NO.
        AddSql(b, "SELECT 1", {}, abort && i == 0 ? std::optional<int64_t>(1) : std::nullopt);
      }
      break;
    }
  }
  return req;
}

TxnEnd FromOutcome(const grpc::Status& s, const v1::Outcome& out) {
  if (!s.ok()) {
    return {TxnEnd::kError, absl::StrCat("rpc ", absl::StatusCodeToString(
                                                     static_cast<absl::StatusCode>(s.error_code())),
                                         ": ", s.error_message().substr(0, 120))};
  }
  if (out.state() == v1::TXN_STATE_COMMITTED) return {TxnEnd::kCommitted, ""};
  if (out.state() == v1::TXN_STATE_ABORTED) return {TxnEnd::kAborted, ""};
  return {TxnEnd::kError, v1::TxnState_Name(out.state())};
}

// One client's connections for --direct.
struct DirectClient {
  std::unique_ptr<PgClient> pg;
  std::unique_ptr<MysqlClient> my;
  int64_t seq = 0;
};

}  // namespace

TxnFunction CoordinatorTxn(const WorkloadOptions& options,
                           std::vector<std::shared_ptr<v1::Coordinator::Stub>> stubs) {
  return [options, stubs](int client, std::mt19937_64& rng) {
    v1::RunRequest req = BuildRun(options, rng);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    common::AddBearerToken(&ctx, options.token);
    v1::Outcome out;
    grpc::Status s = stubs[client % stubs.size()]->Run(&ctx, req, &out);
    return FromOutcome(s, out);
  };
}

TxnFunction DirectTransferTxn(const WorkloadOptions& options, std::string pg_dsn,
                              std::string mysql_dsn, std::string mysql_password, int clients) {
  auto state = std::make_shared<std::vector<DirectClient>>(clients);
  const int pid = static_cast<int>(getpid());
  return [=](int client, std::mt19937_64& rng) -> TxnEnd {
    DirectClient& c = (*state)[client];
    if (!c.pg) {
      auto pg = PgClient::Connect(pg_dsn);
      if (!pg.ok()) return {TxnEnd::kError, std::string(pg.status().message())};
      c.pg = std::move(*pg);
    }
    if (!c.my) {
      auto my = MysqlClient::Connect(mysql_dsn, mysql_password);
      if (!my.ok()) return {TxnEnd::kError, std::string(my.status().message())};
      c.my = std::move(*my);
    }
    const Draw d = DrawTransfer(options, rng);
    const std::string gid = absl::StrCat("txbench_", pid, "_", client, "_", ++c.seq);
    const std::string amount = absl::StrCat(d.amount);
    bool pg_prepared = false, my_started = false, my_prepared = false;
    auto fail = [&](const absl::Status& s) -> TxnEnd {
      // Undo what was prepared; a lost connection is remade next time (and --setup rolls
      // back whatever a killed run left).
      if (c.pg) {
        (void)c.pg->Exec(pg_prepared ? absl::StrCat("ROLLBACK PREPARED '", gid, "'") : "ROLLBACK");
      }
      if (c.my && (my_started || my_prepared)) {
        if (!my_prepared) (void)c.my->Query(absl::StrCat("XA END '", gid, "'"));
        (void)c.my->Query(absl::StrCat("XA ROLLBACK '", gid, "'"));
      }
      if (s.code() == absl::StatusCode::kUnavailable) {
        c.pg.reset();
        c.my.reset();
      }
      if (s.code() == absl::StatusCode::kOk) return {TxnEnd::kAborted, ""};
      return {TxnEnd::kError, std::string(s.message().substr(0, 120))};
    };
    if (auto r = c.pg->Exec("BEGIN"); !r.ok()) return fail(r.status());
    auto debited = c.pg->Exec("UPDATE acct SET bal = bal - $1 WHERE id = $2 AND bal >= $1",
                              {amount, absl::StrCat(d.from)});
    if (!debited.ok()) return fail(debited.status());
    if (*debited != 1) return fail(absl::OkStatus());  // insufficient funds: both abort
    if (auto r = c.pg->Exec(absl::StrCat("PREPARE TRANSACTION '", gid, "'")); !r.ok()) {
      return fail(r.status());
    }
    pg_prepared = true;
    if (auto r = c.my->Query(absl::StrCat("XA START '", gid, "'")); !r.ok()) return fail(r.status());
    my_started = true;
    auto credited = c.my->Credit(d.to, d.amount);
    if (!credited.ok()) return fail(credited.status());
    if (*credited != 1) return fail(absl::OkStatus());
    if (auto r = c.my->Query(absl::StrCat("XA END '", gid, "'")); !r.ok()) return fail(r.status());
    if (auto r = c.my->Query(absl::StrCat("XA PREPARE '", gid, "'")); !r.ok()) {
      return fail(r.status());
    }
    my_prepared = true;
    if (auto r = c.pg->Exec(absl::StrCat("COMMIT PREPARED '", gid, "'")); !r.ok()) {
      return {TxnEnd::kError, absl::StrCat("COMMIT PREPARED: ", r.status().message())};
    }
    if (auto r = c.my->Query(absl::StrCat("XA COMMIT '", gid, "'")); !r.ok()) {
      return {TxnEnd::kError, absl::StrCat("XA COMMIT: ", r.status().message())};
    }
    return {TxnEnd::kCommitted, ""};
  };
}

}  // namespace txn::bench
