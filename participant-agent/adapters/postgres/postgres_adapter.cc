#include "participant-agent/adapters/postgres/postgres_adapter.h"

#include <cctype>
#include <cstdlib>

#include <limits>
#include <optional>
#include <unordered_map>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/ids.h"
#include "common/statement_guard.h"
#include "common/status_macros.h"
#include "participant-agent/adapters/postgres/pg_pool.h"
#include "participant-agent/call_cancellation.h"
#include "participant-agent/database_superuser.h"

namespace txn::agent {
namespace {

constexpr char kUndefinedObject[] = "42704";  // "prepared transaction ... does not exist"
// One row per one-phase commit, written in the committed transaction itself (see CommitLocal).
constexpr char kMarkerTable[] = "txcoord_markers";
constexpr char kBarrierTable[] = "txcoord_saga_barrier";
constexpr char kTpcTable[] = "txcoord_3pc";

// Gids are written into SQL as literals (PREPARE TRANSACTION takes no parameter), so only a gid
// of our own strict form is accepted.
absl::Status CheckGid(const std::string& gid) {
  if (!common::ParseBranchGid(gid)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid gid '", gid.substr(0, 80), "'"));
  }
  return absl::OkStatus();
}

bool IsDigits(const std::string& s) {
  if (s.empty() || s.size() > 20) return false;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// Settings made LOCAL to the branch's transaction (as SET LOCAL), all in one statement,
// `SELECT set_config(name, value, true), ...`: PostgreSQL parses and runs one statement instead
// of one SET each. set_config('role', ...) is SET ROLE (the same membership check; 'none' ends
// it). The query's parameters point into this object, which must outlive the query's run.
class LocalSettings {
 public:
  void Add(const char* name, std::string value) {
    names_.push_back(name);
    values_.push_back(std::make_unique<std::string>(std::move(value)));
  }
  bool empty() const { return names_.empty(); }
  PgQuery Query() const {
    PgQuery q{"SELECT ", {}, nullptr};
    for (size_t i = 0; i < names_.size(); ++i) {
      absl::StrAppend(&q.sql, i == 0 ? "" : ", ", "set_config('", names_[i], "', $", i + 1,
                      ", true)");
      q.params.push_back(values_[i]->c_str());
    }
    return q;
  }

 private:
  std::vector<const char*> names_;  // literals: "role", "statement_timeout"
  std::vector<std::unique_ptr<std::string>> values_;
};

class PostgresSession final : public BranchSession, public SagaSession {
 public:
  SagaSession* saga() override { return this; }
  // `run_as` (a plain role name, or empty): client statements run under that role, set LOCAL
  // in the transaction; the agent's own statements (markers, barriers, PREPARE TRANSACTION)
  // under the session user.
  PostgresSession(std::unique_ptr<PgConnection> conn, std::string run_as, ResultLimits limits)
      : conn_(std::move(conn)), run_as_(std::move(run_as)), limits_(limits) {}

  int64_t database_session_id() const override { return PQbackendPID(conn_->get()); }

  ~PostgresSession() override {
    if (conn_ && PQtransactionStatus(conn_->get()) != PQTRANS_IDLE) {
      (void)conn_->Exec("ROLLBACK");
    }
  }

  absl::StatusOr<v1::ExecuteResult> Execute(const v1::Operation& op) override {
    if (!op.has_sql()) {
      return absl::InvalidArgumentError("a PostgreSQL participant takes sql operations only");
    }
    const v1::Sql& sql = op.sql();
    TXN_RETURN_IF_ERROR(common::CheckStatement(sql.text(), common::SqlDialect::kPostgres));
    TXN_RETURN_IF_ERROR(common::CheckParameterCount(sql.params_size()));
    std::vector<const char*> params;
    params.reserve(sql.params_size());
    for (const auto& p : sql.params()) params.push_back(p.c_str());
    for (uint32_t idx : sql.null_params()) {
      if (idx >= params.size()) {
        return absl::InvalidArgumentError(absl::StrCat("sql.null_params names parameter ", idx,
                                                       " but there are only ", params.size()));
      }
      params[idx] = nullptr;
    }
    conn_->NoteClientStatement();
    // BEGIN (with the branch's first statement), the statement timeout and the switch to the
    // run-as role travel with the statement: one round trip.
    std::vector<PgQuery> queries;
    if (!begun_) queries.push_back({"BEGIN", {}});
    const std::optional<int64_t> timeout = StatementTimeoutToSet();
    const bool switch_role = !run_as_.empty() && !role_active_;
    // PostgreSQL arms each statement's timer as its Execute arrives, with the setting then in
    // effect: this setting, ahead in the same pipeline, is the statement's timeout. BEGIN and
    // the settings cannot fail on a healthy connection outside a failed transaction (the role
    // was checked at start), and in a failed one the statement fails too.
    LocalSettings settings;
    if (timeout) settings.Add("statement_timeout", absl::StrCat(*timeout));
    if (switch_role) settings.Add("role", run_as_);
    if (!settings.empty()) queries.push_back(settings.Query());
    // Rows are read one at a time and the result stops at the agent's limits, so a statement
    // that returns a huge result never has it in the agent's memory.
    v1::ExecuteResult out;
    int64_t bytes = 0;
    queries.push_back({sql.text(), params, [&](const PGresult& one) -> absl::Status {
                         const int cols = PQnfields(&one);
                         if (out.columns_size() == 0) {
                           for (int c = 0; c < cols; ++c) out.add_columns(PQfname(&one, c));
                         }
                         v1::Row* pr = out.add_rows();
                         for (int c = 0; c < cols; ++c) {
                           if (PQgetisnull(&one, 0, c)) {
                             pr->add_values("");
                             pr->add_null_values(c);
                           } else {
                             bytes += PQgetlength(&one, 0, c);
                             pr->add_values(PQgetvalue(&one, 0, c), PQgetlength(&one, 0, c));
                           }
                         }
                         return limits_.Check(out.rows_size(), bytes);
                       }});
    const bool sends_begin = !begun_;
    TXN_ASSIGN_OR_RETURN(auto results, conn_->ExecPipeline(queries, /*cancellable=*/true));
    if (sends_begin && results[0].ok()) begun_ = true;
    for (size_t i = 0; i + 1 < results.size(); ++i) TXN_RETURN_IF_ERROR(results[i].status());
    role_active_ = role_active_ || switch_role;
    if (timeout) statement_timeout_ms_ = *timeout;
    TXN_ASSIGN_OR_RETURN(PgResult r, std::move(results.back()));
    NoteWrite(r.get());
    const char* affected = PQcmdTuples(r.get());
    int64_t n = 0;
    if (affected != nullptr && *affected != '\0' && absl::SimpleAtoi(affected, &n)) {
      out.set_rows_affected(n);
    } else if (PQresultStatus(r.get()) == PGRES_TUPLES_OK) {
      out.set_rows_affected(out.rows_size());
    }
    if (PQresultStatus(r.get()) == PGRES_TUPLES_OK && out.columns_size() == 0) {
      // No rows: the columns come with the final (empty) result.
      for (int c = 0; c < PQnfields(r.get()); ++c) out.add_columns(PQfname(r.get(), c));
    }
    return out;
  }

  absl::StatusOr<PrepareResult> Prepare(const std::string& gid) override {
    TXN_RETURN_IF_ERROR(CheckGid(gid));
    if (!begun_) return PrepareResult{LocalVote::kReadOnly, "", ""};  // nothing ever ran
    if (PQtransactionStatus(conn_->get()) == PQTRANS_INERROR) {
      (void)conn_->Exec("ROLLBACK");
      return PrepareResult{LocalVote::kNo, "the transaction failed earlier", ""};
    }
    if (wrote_) return PrepareWritten(gid);
    TXN_ASSIGN_OR_RETURN(PgResult xid, AgentExec("SELECT pg_current_xact_id_if_assigned()::text"));
    if (PQgetisnull(xid.get(), 0, 0)) {
      // No xid: nothing was written. Finish the local transaction; no phase 2 for us.
      TXN_ASSIGN_OR_RETURN(PgResult done, AgentExec("COMMIT"));
      EndedTransaction();
      return PrepareResult{LocalVote::kReadOnly, "", ""};
    }
    std::string native_id = PQgetvalue(xid.get(), 0, 0);
    absl::StatusOr<PgResult> prepared = AgentExec(absl::StrCat("PREPARE TRANSACTION '", gid, "'"));
    EndedTransaction();
    return VoteFrom(std::move(prepared), native_id);
  }

  absl::Status CommitLocal(const std::string& gid) override {
    TXN_RETURN_IF_ERROR(CheckGid(gid));
    TXN_RETURN_IF_ERROR(EnsureBegun());
    if (PQtransactionStatus(conn_->get()) != PQTRANS_INTRANS) return Commit();
    // The marker and COMMIT in one round trip: a COMMIT behind a failed marker insert does not
    // run (the pipeline skips it), and the transaction is rolled back.
    TXN_ASSIGN_OR_RETURN(
        auto results,
        AgentPipeline({{absl::StrCat("INSERT INTO ", kMarkerTable, " (gid) VALUES ($1)"),
                        {gid.c_str()}},
                       {"COMMIT", {}}}));
    EndedTransaction();
    if (!results[0].ok()) {
      if (results[0].status().code() == absl::StatusCode::kUnavailable) return results[0].status();
      if (PQtransactionStatus(conn_->get()) != PQTRANS_IDLE) (void)conn_->Exec("ROLLBACK");
      return absl::AbortedError(absl::StrCat("commit marker: ", results[0].status().message()));
    }
    return CommitResult(results[1]);
  }

  absl::Status RollbackLocal() override {
    if (!begun_ || PQtransactionStatus(conn_->get()) == PQTRANS_IDLE) return absl::OkStatus();
    return conn_->Exec("ROLLBACK").status();
  }

  absl::StatusOr<bool> InsertBarrier(const std::string& gid, const std::string& op,
                                     const std::string& origin) override {
    TXN_RETURN_IF_ERROR(EnsureBegun());
    TXN_ASSIGN_OR_RETURN(PgResult r,
                         AgentExec(absl::StrCat("INSERT INTO ", kBarrierTable,
                                                  " (gid, op, origin) VALUES ($1, $2, $3) "
                                                  "ON CONFLICT DO NOTHING"),
                                     {gid.c_str(), op.c_str(), origin.c_str()}));
    return std::string(PQcmdTuples(r.get())) == "1";
  }

  absl::StatusOr<std::string> BarrierOrigin(const std::string& gid,
                                            const std::string& op) override {
    TXN_RETURN_IF_ERROR(EnsureBegun());
    TXN_ASSIGN_OR_RETURN(PgResult r, AgentExec(absl::StrCat("SELECT origin FROM ", kBarrierTable,
                                                            " WHERE gid = $1 AND op = $2"),
                                               {gid.c_str(), op.c_str()}));
    return PQntuples(r.get()) > 0 ? std::string(PQgetvalue(r.get(), 0, 0)) : std::string();
  }

  absl::Status Commit() override {
    TXN_RETURN_IF_ERROR(EnsureBegun());
    absl::StatusOr<PgResult> r = AgentExec("COMMIT");
    EndedTransaction();
    return CommitResult(r);
  }

  // The local transaction starts with the first statement (BEGIN is sent with it); until then
  // nothing has been sent and there is nothing to roll back.
  absl::Status Open() { return absl::OkStatus(); }

 private:
  // Sends BEGIN on its own if no statement did yet (the agent's own statements need the open
  // transaction: saga barrier rows, the one-phase commit marker).
  absl::Status EnsureBegun() {
    if (begun_) return absl::OkStatus();
    TXN_RETURN_IF_ERROR(conn_->Exec("BEGIN").status());
    begun_ = true;
    return absl::OkStatus();
  }

  // The statement_timeout to set before a client statement, or nullopt to keep the one set:
  // the time the current call has left (CallCancellation), so that a statement ends in the
  // database by the transaction's deadline even if the call's cancellation cannot reach it.
  // The setting is LOCAL (gone with the transaction, and the policy refuses a client's own
  // SET of it); it is sent again only when the call has less time than it allows, or much more.
  std::optional<int64_t> StatementTimeoutToSet() const {
    std::optional<int64_t> left = CallCancellation::CurrentRemainingMs();
    if (!left) return std::nullopt;
    const int64_t ms = std::min<int64_t>(*left, std::numeric_limits<int32_t>::max());
    if (statement_timeout_ms_ != 0 && statement_timeout_ms_ <= ms &&
        ms <= statement_timeout_ms_ + statement_timeout_ms_ / 4) {
      return std::nullopt;
    }
    return ms;
  }

  // Runs the agent's own statements in the branch's transaction (in one round trip) as the
  // agent, not as the client's last statement left the session: the run-as role is ended (the
  // owner of a prepared transaction is the role current at PREPARE, and only that role or a
  // superuser may finish it), and the statement timeout is the current call's, not the one an
  // earlier Execute set from its own deadline: a Prepare's marker insert or xid read must not be
  // cut short by what was left of an Execute's time. Outside a call with a deadline (recovery)
  // there is none. Both travel with the statements. PostgreSQL never times out PREPARE
  // TRANSACTION or COMMIT themselves (it stops the timer before it commits), so deferred
  // triggers and constraint checks there are bounded by nothing the agent sets.
  // Returns one result per statement of `own`.
  absl::StatusOr<std::vector<absl::StatusOr<PgResult>>> AgentPipeline(
      const std::vector<PgQuery>& own) {
    std::vector<PgQuery> queries;
    // A failed transaction runs nothing but its end (COMMIT answers ROLLBACK), and ends them.
    const bool failed = PQtransactionStatus(conn_->get()) == PQTRANS_INERROR;
    std::optional<int64_t> timeout;
    if (!failed) {
      timeout = CallCancellation::CurrentRemainingMs() ? StatementTimeoutToSet()
                : statement_timeout_ms_ != 0          ? std::optional<int64_t>(0)
                                                      : std::nullopt;
    }
    LocalSettings settings;
    if (role_active_ && !failed) settings.Add("role", "none");
    if (timeout) settings.Add("statement_timeout", absl::StrCat(*timeout));
    if (!settings.empty()) queries.push_back(settings.Query());
    // If a reset fails, the transaction is aborted and the agent's statements fail too.
    const size_t resets = queries.size();
    std::vector<absl::StatusOr<PgResult>> results;
    if (resets == 0 && own.size() == 1) {
      results.push_back(conn_->Exec(own[0].sql, own[0].params));
      return results;
    }
    queries.insert(queries.end(), own.begin(), own.end());
    TXN_ASSIGN_OR_RETURN(results, conn_->ExecPipeline(queries, /*cancellable=*/false));
    bool reset = true;
    for (size_t i = 0; i < resets; ++i) reset = reset && results[i].ok();
    if (reset) {
      role_active_ = false;
      if (timeout) statement_timeout_ms_ = *timeout;
    }
    results.erase(results.begin(), results.begin() + static_cast<std::ptrdiff_t>(resets));
    return results;
  }

  // One of the agent's own statements, as AgentPipeline.
  absl::StatusOr<PgResult> AgentExec(const std::string& sql,
                                     const std::vector<const char*>& params = {}) {
    TXN_ASSIGN_OR_RETURN(auto results, AgentPipeline({{sql, params}}));
    return std::move(results[0]);
  }

  // A statement that inserted, updated or deleted rows has certainly been given a transaction
  // id: Prepare then need not ask whether the branch wrote anything.
  void NoteWrite(PGresult* r) {
    const std::string tag = PQcmdStatus(r);
    const char* affected = PQcmdTuples(r);
    int64_t n = 0;
    const bool writes = tag.rfind("INSERT", 0) == 0 || tag.rfind("UPDATE", 0) == 0 ||
                        tag.rfind("DELETE", 0) == 0 || tag.rfind("MERGE", 0) == 0;
    if (writes && affected != nullptr && absl::SimpleAtoi(affected, &n) && n > 0) wrote_ = true;
  }

  // Prepare of a branch known to have written: the xid read and PREPARE TRANSACTION in one
  // round trip.
  absl::StatusOr<PrepareResult> PrepareWritten(const std::string& gid) {
    TXN_ASSIGN_OR_RETURN(auto results,
                         AgentPipeline({{"SELECT pg_current_xact_id_if_assigned()::text", {}},
                                        {absl::StrCat("PREPARE TRANSACTION '", gid, "'"), {}}}));
    EndedTransaction();
    const absl::StatusOr<PgResult>& xid = results[0];
    std::string native_id;
    if (xid.ok() && !PQgetisnull(xid->get(), 0, 0)) native_id = PQgetvalue(xid->get(), 0, 0);
    return VoteFrom(std::move(results[1]), native_id);
  }

  // What COMMIT's result says: PostgreSQL answers ROLLBACK when the transaction had failed.
  static absl::Status CommitResult(const absl::StatusOr<PgResult>& r) {
    TXN_RETURN_IF_ERROR(r.status());
    if (std::string(PQcmdStatus(r->get())) != "COMMIT") {
      return absl::AbortedError("the transaction failed earlier and was rolled back");
    }
    return absl::OkStatus();
  }

  // PREPARE TRANSACTION, COMMIT or ROLLBACK was sent: nothing LOCAL is in effect any more.
  void EndedTransaction() {
    role_active_ = false;
    statement_timeout_ms_ = 0;
  }

  // The vote from PREPARE TRANSACTION's result (the transaction is rolled back on a NO).
  absl::StatusOr<PrepareResult> VoteFrom(absl::StatusOr<PgResult> r,
                                         const std::string& native_id) {
    if (!r.ok()) {
      if (r.status().code() == absl::StatusCode::kUnavailable) return r.status();
      if (PQtransactionStatus(conn_->get()) != PQTRANS_IDLE) (void)conn_->Exec("ROLLBACK");
      return PrepareResult{LocalVote::kNo, std::string(r.status().message()), ""};
    }
    // PostgreSQL answers ROLLBACK instead when the transaction had already failed.
    if (std::string(PQcmdStatus(r->get())) != "PREPARE TRANSACTION") {
      return PrepareResult{LocalVote::kNo, "the transaction failed earlier and was rolled back",
                           ""};
    }
    return PrepareResult{LocalVote::kYes, "", native_id};
  }

  std::unique_ptr<PgConnection> conn_;
  const std::string run_as_;
  const ResultLimits limits_;
  bool role_active_ = false;  // the LOCAL role run_as_ is in effect
  bool begun_ = false;        // BEGIN was sent
  bool wrote_ = false;  // a statement changed rows (so an xid is assigned)
  int64_t statement_timeout_ms_ = 0;  // the SET LOCAL statement_timeout in effect; 0: none
};

}  // namespace

PostgresAdapter::PostgresAdapter(std::string dsn, std::string password, int max_idle,
                                 int64_t lock_timeout_ms, int marker_retention_hours)
    : pool_(
          std::make_unique<PgPool>(std::move(dsn), std::move(password), max_idle, lock_timeout_ms)),
      marker_retention_hours_(marker_retention_hours) {}

PostgresAdapter::~PostgresAdapter() = default;

absl::Status PostgresAdapter::SetRunAsRole(const std::string& role) {
  bool plain = !role.empty() && role.size() <= 63 && !std::isdigit(static_cast<unsigned char>(role[0]));
  for (char c : role) {
    plain = plain && (std::islower(static_cast<unsigned char>(c)) ||
                      std::isdigit(static_cast<unsigned char>(c)) || c == '_');
  }
  if (!plain) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--run-as-role must be a plain role name ([a-z_][a-z0-9_]*, at most 63 bytes), got '",
        role.substr(0, 80), "'"));
  }
  run_as_role_ = role;
  run_as_quoted_ = absl::StrCat("\"", role, "\"");
  return absl::OkStatus();
}

absl::Status PostgresAdapter::CheckPrivileges(PgConnection& conn) {
  TXN_ASSIGN_OR_RETURN(PgResult who,
                       conn.Exec("SELECT session_user::text, rolsuper FROM pg_roles "
                                 "WHERE rolname = session_user"));
  const bool superuser = PQntuples(who.get()) > 0 && std::string(PQgetvalue(who.get(), 0, 1)) == "t";
  const std::string user = PQntuples(who.get()) > 0 ? PQgetvalue(who.get(), 0, 0) : "?";
  NoteDatabaseSuperuser(
      superuser, absl::StrCat("user ", user, " is a PostgreSQL superuser"),
      run_as_role_.empty()
          ? "client statements run with its privileges, limited only by the statement policy; "
            "connect as an ordinary user or set --run-as-role"
          : absl::StrCat("client statements run as role ", run_as_role_, " (--run-as-role)"));
  if (run_as_role_.empty()) return absl::OkStatus();
  TXN_ASSIGN_OR_RETURN(
      PgResult role,
      conn.Exec("SELECT rolsuper, pg_has_role(session_user, oid, 'MEMBER') FROM pg_roles "
                "WHERE rolname = $1",
                {run_as_role_.c_str()}));
  if (PQntuples(role.get()) == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("--run-as-role ", run_as_role_, ": no such role (CREATE ROLE ", run_as_role_,
                     " NOLOGIN, and grant it what clients may touch)"));
  }
  if (std::string(PQgetvalue(role.get(), 0, 0)) == "t") {
    return absl::FailedPreconditionError(absl::StrCat(
        "--run-as-role ", run_as_role_, " is a superuser, so it would not limit client statements"));
  }
  if (std::string(PQgetvalue(role.get(), 0, 1)) != "t") {
    return absl::FailedPreconditionError(
        absl::StrCat("--run-as-role ", run_as_role_, ": user ", user,
                     " cannot SET ROLE to it (GRANT ", run_as_role_, " TO ", user, ")"));
  }
  return absl::OkStatus();
}

absl::Status PostgresAdapter::KeepFromRunAsRole(PgConnection& conn, const char* table) {
  if (run_as_role_.empty()) return absl::OkStatus();
  TXN_RETURN_IF_ERROR(
      conn.Exec(absl::StrCat("REVOKE ALL ON ", table, " FROM ", run_as_quoted_, ", PUBLIC"))
          .status());
  // A REVOKE does not take away what the role has through another role it belongs to, or as
  // the table's owner: check what it can really do (on the table, or on any of its columns),
  // and refuse to serve if anything.
  TXN_ASSIGN_OR_RETURN(
      PgResult can,
      conn.Exec("SELECT has_table_privilege($1, $2, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, "
                "REFERENCES, TRIGGER') OR "
                "has_any_column_privilege($1, $2, 'SELECT, INSERT, UPDATE, REFERENCES')",
                {run_as_role_.c_str(), table}));
  if (PQntuples(can.get()) == 1 && std::string(PQgetvalue(can.get(), 0, 0)) == "f") {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "--run-as-role ", run_as_role_, " still has privileges on the agent's table ", table,
      " after REVOKE (it owns it, or has them through another role): clients could forge "
      "outcome records; give the agent's table to the agent's user and take the role out of "
      "the roles that have them"));
}

absl::Status PostgresAdapter::CheckReady() {
  TXN_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  TXN_RETURN_IF_ERROR(CheckPrivileges(*conn));
  TXN_ASSIGN_OR_RETURN(PgResult r, conn->Exec("SHOW max_prepared_transactions"));
  int n = 0;
  if (!last_resource_only_ && (!absl::SimpleAtoi(PQgetvalue(r.get(), 0, 0), &n) || n <= 0)) {
    return absl::FailedPreconditionError(
        "PostgreSQL has max_prepared_transactions = 0, so it cannot prepare transactions: set it "
        "above 0 (e.g. 100) in postgresql.conf and restart the server");
  }
  absl::StatusOr<PgResult> created = conn->Exec(
      absl::StrCat("CREATE TABLE IF NOT EXISTS ", kMarkerTable,
                   " (gid text PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now())"));
  if (!created.ok() && created.status().code() != absl::StatusCode::kUnavailable) {
    return absl::FailedPreconditionError(absl::StrCat("cannot create the commit-marker table ",
                                                      kMarkerTable,
                                                      " (the agent's user needs CREATE "
                                                      "on the database's default schema): ",
                                                      created.status().message()));
  }
  TXN_RETURN_IF_ERROR(created.status());
  TXN_RETURN_IF_ERROR(KeepFromRunAsRole(*conn, kMarkerTable));
  role_checked_.store(true);
  return absl::OkStatus();
}

absl::Status PostgresAdapter::EnsureSagaBarrier() {
  TXN_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  absl::StatusOr<PgResult> created =
      conn->Exec(absl::StrCat("CREATE TABLE IF NOT EXISTS ", kBarrierTable,
                              " (gid text NOT NULL, op text NOT NULL, origin text NOT NULL, "
                              "created_at timestamptz NOT NULL DEFAULT now(), "
                              "PRIMARY KEY (gid, op))"));
  if (!created.ok() && created.status().code() != absl::StatusCode::kUnavailable) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create the saga barrier table ", kBarrierTable,
                     " (the agent's user needs CREATE on the database's default schema): ",
                     created.status().message()));
  }
  TXN_RETURN_IF_ERROR(created.status());
  return KeepFromRunAsRole(*conn, kBarrierTable);
}

absl::Status PostgresAdapter::EnsureTpcTable() {
  TXN_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  absl::StatusOr<PgResult> created = conn->Exec(
      absl::StrCat("CREATE TABLE IF NOT EXISTS ", kTpcTable,
                   " (gid text PRIMARY KEY, state text NOT NULL, promised_round bigint NOT NULL, "
                   "promised_owner text NOT NULL, attempted_round bigint NOT NULL, "
                   "attempted_owner text NOT NULL, members text NOT NULL, "
                   "updated_at timestamptz NOT NULL DEFAULT now())"));
  if (!created.ok() && created.status().code() != absl::StatusCode::kUnavailable) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create the three-phase-commit table ", kTpcTable,
                     " (the agent's user needs CREATE on the database's default schema): ",
                     created.status().message()));
  }
  TXN_RETURN_IF_ERROR(created.status());
  return KeepFromRunAsRole(*conn, kTpcTable);
}

absl::StatusOr<std::optional<TpcRow>> PostgresAdapter::LoadTpcRecord(const std::string& gid) {
  TXN_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  TXN_ASSIGN_OR_RETURN(PgResult r,
                       conn->Exec(absl::StrCat("SELECT state, promised_round, promised_owner, "
                                               "attempted_round, attempted_owner, members FROM ",
                                               kTpcTable, " WHERE gid = $1"),
                                  {gid.c_str()}));
  if (PQntuples(r.get()) == 0) return std::optional<TpcRow>();
  TpcRow row;
  row.state = PQgetvalue(r.get(), 0, 0);
  if (!absl::SimpleAtoi(PQgetvalue(r.get(), 0, 1), &row.promised_round) ||
      !absl::SimpleAtoi(PQgetvalue(r.get(), 0, 3), &row.attempted_round)) {
    return absl::DataLossError(absl::StrCat("corrupt ", kTpcTable, " row for ", gid));
  }
  row.promised_owner = PQgetvalue(r.get(), 0, 2);
  row.attempted_owner = PQgetvalue(r.get(), 0, 4);
  std::string members = PQgetvalue(r.get(), 0, 5);
  if (!members.empty()) row.members = absl::StrSplit(members, ',');
  return std::optional<TpcRow>(std::move(row));
}

absl::Status PostgresAdapter::StoreTpcRecord(const std::string& gid, const TpcRow& row) {
  TXN_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  const std::string promised = absl::StrCat(row.promised_round);
  const std::string attempted = absl::StrCat(row.attempted_round);
  const std::string members = absl::StrJoin(row.members, ",");
  // One autocommit statement: committed (and, with synchronous_commit on, flushed) on return.
  return conn
      ->Exec(absl::StrCat("INSERT INTO ", kTpcTable,
                          " (gid, state, promised_round, promised_owner, attempted_round, "
                          "attempted_owner, members) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                          "ON CONFLICT (gid) DO UPDATE SET state = EXCLUDED.state, "
                          "promised_round = EXCLUDED.promised_round, "
                          "promised_owner = EXCLUDED.promised_owner, "
                          "attempted_round = EXCLUDED.attempted_round, "
                          "attempted_owner = EXCLUDED.attempted_owner, "
                          "members = EXCLUDED.members, updated_at = now()"),
             {gid.c_str(), row.state.c_str(), promised.c_str(), row.promised_owner.c_str(),
              attempted.c_str(), row.attempted_owner.c_str(), members.c_str()})
      .status();
}

absl::StatusOr<std::vector<std::string>> PostgresAdapter::ListUndecidedTpc() {
  TXN_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  TXN_ASSIGN_OR_RETURN(PgResult r,
                       conn->Exec(absl::StrCat("SELECT gid FROM ", kTpcTable,
                                               " WHERE state IN ('W', 'PC', 'PA') ORDER BY gid")));
  std::vector<std::string> gids;
  for (int i = 0; i < PQntuples(r.get()); ++i) gids.push_back(PQgetvalue(r.get(), i, 0));
  return gids;
}

absl::StatusOr<FinishedAs> PostgresAdapter::ProveOnePhase(const std::string& gid) {
  TXN_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  TXN_ASSIGN_OR_RETURN(
      PgResult r,
      conn->Exec(absl::StrCat("SELECT 1 FROM ", kMarkerTable, " WHERE gid = $1"), {gid.c_str()}));
  return PQntuples(r.get()) > 0 ? FinishedAs::kCommitted : FinishedAs::kAborted;
}

absl::Status PostgresAdapter::CollectGarbage() {
  TXN_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  return conn
      ->Exec(absl::StrCat("DELETE FROM ", kMarkerTable, " WHERE created_at < now() - interval '",
                          marker_retention_hours_, " hours'"))
      .status();
}

absl::StatusOr<std::unique_ptr<BranchSession>> PostgresAdapter::Begin(const std::string& gid) {
  if (!run_as_role_.empty() && !role_checked_.load()) {
    // Fail closed: until CheckReady has checked the role, it might be missing or a superuser.
    return absl::UnavailableError(absl::StrCat("--run-as-role ", run_as_role_,
                                               " has not been checked yet (database not reached)"));
  }
  TXN_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  auto session = std::make_unique<PostgresSession>(std::move(conn), run_as_role_, limits_);
  TXN_RETURN_IF_ERROR(session->Open());
  return std::unique_ptr<BranchSession>(std::move(session));
}

absl::StatusOr<std::vector<LockWaitFound>> PostgresAdapter::FindLockWaits(
    const std::vector<LiveBranch>& waiting, const std::vector<LiveBranch>& live) {
  std::unordered_map<int64_t, std::string> gid_of_pid;
  for (const LiveBranch& b : live) {
    if (b.session_id != 0) gid_of_pid[b.session_id] = b.gid;
  }
  std::string pids = "{";
  for (const LiveBranch& b : waiting) {
    if (b.session_id == 0) continue;
    absl::StrAppend(&pids, pids.size() > 1 ? "," : "", b.session_id);
  }
  pids += "}";
  if (pids == "{}") return std::vector<LockWaitFound>{};
  // Live holders come from pg_blocking_pids(). A prepared transaction has no backend: it shows
  // there as pid 0, so the waiter's ungranted transactionid lock is matched to
  // pg_prepared_xacts instead, which names its gid.
  static const std::string kQuery =
      "SELECT w.pid, b.pid, a.usename::text, a.application_name, NULL::text "
      "  FROM unnest($1::int[]) AS w(pid) "
      "  CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS b(pid) "
      "  LEFT JOIN pg_stat_activity a ON a.pid = b.pid "
      " WHERE b.pid <> 0 "
      "UNION ALL "
      "SELECT l.pid, 0, NULL, NULL, p.gid "
      "  FROM pg_locks l JOIN pg_prepared_xacts p ON p.transaction = l.transactionid "
      " WHERE l.locktype = 'transactionid' AND NOT l.granted AND l.pid = ANY($1::int[])";
  TXN_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  TXN_ASSIGN_OR_RETURN(PgResult r, conn->Exec(kQuery, {pids.c_str()}));
  std::vector<LockWaitFound> out;
  for (int row = 0; row < PQntuples(r.get()); ++row) {
    int64_t waiter = 0, holder = 0;
    if (!absl::SimpleAtoi(PQgetvalue(r.get(), row, 0), &waiter) ||
        !absl::SimpleAtoi(PQgetvalue(r.get(), row, 1), &holder)) {
      continue;
    }
    auto w = gid_of_pid.find(waiter);
    if (w == gid_of_pid.end()) continue;  // its call ended meanwhile
    LockWaitFound found{w->second, "", ""};
    if (holder == 0) {
      const std::string gid = PQgetvalue(r.get(), row, 4);
      if (absl::StartsWith(gid, common::kGidPrefix)) {
        found.holder_gid = gid;
      }
      found.holder = absl::StrCat("prepared transaction '", gid.substr(0, 200), "'");
    } else if (auto h = gid_of_pid.find(holder); h != gid_of_pid.end()) {
      found.holder_gid = h->second;
      found.holder = absl::StrCat("backend pid ", holder, " (branch ", h->second, ")");
    } else {
      found.holder = absl::StrCat("backend pid ", holder, " (", PQgetvalue(r.get(), row, 3),
                                  ", user ", PQgetvalue(r.get(), row, 2), ")");
    }
    out.push_back(std::move(found));
  }
  return out;
}

absl::StatusOr<FinishResult> PostgresAdapter::ProveOutcome(const std::string& native_id) {
  if (!IsDigits(native_id)) {
    return FinishResult{FinishedAs::kUnknown,
                        "the prepared transaction is gone and no xid is "
                        "known to prove its outcome"};
  }
  TXN_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  TXN_ASSIGN_OR_RETURN(PgResult r,
                       conn->Exec("SELECT pg_xact_status($1::xid8)", {native_id.c_str()}));
  if (PQgetisnull(r.get(), 0, 0)) {
    return FinishResult{FinishedAs::kUnknown, absl::StrCat("xid ", native_id, " is too old")};
  }
  std::string status = PQgetvalue(r.get(), 0, 0);
  if (status == "committed") return FinishResult{FinishedAs::kCommitted, ""};
  if (status == "aborted") {
    return FinishResult{FinishedAs::kAborted, absl::StrCat("xid ", native_id, " was rolled back")};
  }
  return FinishResult{FinishedAs::kUnknown, absl::StrCat("xid ", native_id, " is ", status)};
}

absl::StatusOr<FinishResult> PostgresAdapter::CommitPrepared(const std::string& gid,
                                                             const std::string& native_id) {
  TXN_RETURN_IF_ERROR(CheckGid(gid));
  TXN_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  absl::StatusOr<PgResult> r = conn->Exec(absl::StrCat("COMMIT PREPARED '", gid, "'"));
  if (r.ok()) return FinishResult{FinishedAs::kCommitted, ""};
  if (conn->last_sqlstate() == kUndefinedObject) return ProveOutcome(native_id);
  return r.status();
}

absl::StatusOr<FinishResult> PostgresAdapter::RollbackPrepared(const std::string& gid,
                                                               const std::string& native_id) {
  TXN_RETURN_IF_ERROR(CheckGid(gid));
  TXN_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  absl::StatusOr<PgResult> r = conn->Exec(absl::StrCat("ROLLBACK PREPARED '", gid, "'"));
  if (r.ok()) return FinishResult{FinishedAs::kAborted, ""};
  if (conn->last_sqlstate() != kUndefinedObject) return r.status();
  // Nothing prepared under that name. If its xid is known and committed, say so; otherwise the
  // branch never prepared here, which is an abort.
  if (IsDigits(native_id)) {
    TXN_ASSIGN_OR_RETURN(FinishResult proven, ProveOutcome(native_id));
    if (proven.as == FinishedAs::kCommitted) return proven;
  }
  return FinishResult{FinishedAs::kAborted, ""};
}

absl::StatusOr<bool> PostgresAdapter::IsPrepared(const std::string& gid) {
  TXN_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  TXN_ASSIGN_OR_RETURN(PgResult r, conn->Exec("SELECT 1 FROM pg_prepared_xacts WHERE gid = $1 AND "
                                              "database = current_database()",
                                              {gid.c_str()}));
  return PQntuples(r.get()) > 0;
}

absl::StatusOr<std::vector<std::string>> PostgresAdapter::ListPrepared() {
  TXN_ASSIGN_OR_RETURN(auto conn, pool_->Acquire());
  TXN_ASSIGN_OR_RETURN(PgResult r,
                       conn->Exec("SELECT gid FROM pg_prepared_xacts WHERE database = "
                                  "current_database() AND gid LIKE 'txc\\_%' ORDER BY gid"));
  std::vector<std::string> gids;
  for (int i = 0; i < PQntuples(r.get()); ++i) gids.push_back(PQgetvalue(r.get(), i, 0));
  return gids;
}

}  // namespace txn::agent
