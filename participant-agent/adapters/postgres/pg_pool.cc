#include "participant-agent/adapters/postgres/pg_pool.h"

#include <poll.h>

#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "participant-agent/call_cancellation.h"

namespace txn::agent {

namespace {

// An idle connection has nothing to read. If its socket is readable or closed, the server sent
// a termination notice or went away (a restart): the connection is dead. Checked without a
// round trip, so a pool survives a server restart without failing the next call.
bool LooksDead(PGconn* conn) {
  if (PQstatus(conn) != CONNECTION_OK) return true;
  pollfd p{PQsocket(conn), POLLIN, 0};
  if (p.fd < 0) return true;
  return poll(&p, 1, 0) != 0;
}

}  // namespace

PgConnection::~PgConnection() {
  if (cancel_ != nullptr) PQfreeCancel(cancel_);
  if (interrupted_) {
    // A cancel request may still be on its way to this session: never hand it to another call.
    PQfinish(conn_);
    return;
  }
  pool_->Release(conn_, needs_reset_);
}

absl::StatusOr<PgResult> PgConnection::ExecCancellable(const std::string& sql,
                                                       const std::vector<const char*>& params) {
  if (CallCancellation::Current() == nullptr) return Exec(sql, params);
  // PQcancel asks the server to cancel whatever the session runs; it is safe from another
  // thread.
  if (cancel_ == nullptr) cancel_ = PQgetCancel(conn_);
  PGcancel* cancel = cancel_;
  CallCancellation::Interruptible guard([cancel] {
    char err[256];
    if (cancel != nullptr) (void)PQcancel(cancel, err, sizeof err);
  });
  if (guard.interrupted()) {
    return absl::CancelledError("the call was cancelled before its statement ran");
  }
  absl::StatusOr<PgResult> r = Exec(sql, params);
  if (guard.interrupted()) interrupted_ = true;
  return r;
}

absl::StatusOr<PgResult> PgConnection::Exec(const std::string& sql,
                                            const std::vector<const char*>& params) {
  last_sqlstate_.clear();
  return Check(PgResult(PQexecParams(conn_, sql.c_str(), static_cast<int>(params.size()), nullptr,
                                     params.data(), nullptr, nullptr, 0)));
}

absl::StatusOr<std::vector<absl::StatusOr<PgResult>>> PgConnection::ExecPipeline(
    const std::vector<PgQuery>& queries, bool cancellable) {
  std::optional<CallCancellation::Interruptible> guard;
  if (cancellable && CallCancellation::Current() != nullptr) {
    if (cancel_ == nullptr) cancel_ = PQgetCancel(conn_);
    PGcancel* cancel = cancel_;
    guard.emplace([cancel] {
      char err[256];
      if (cancel != nullptr) (void)PQcancel(cancel, err, sizeof err);
    });
    if (guard->interrupted()) {
      return absl::CancelledError("the call was cancelled before its statement ran");
    }
  }
  last_sqlstate_.clear();
  auto lost = [this](const char* what) {
    std::string msg(absl::StripAsciiWhitespace(PQerrorMessage(conn_)));
    // A connection left in pipeline mode is of no further use: never pooled again.
    interrupted_ = true;
    return absl::UnavailableError(absl::StrCat("PostgreSQL connection lost (", what, "): ", msg));
  };
  if (PQenterPipelineMode(conn_) != 1) return lost("entering pipeline mode");
  for (const PgQuery& q : queries) {
    if (PQsendQueryParams(conn_, q.sql.c_str(), static_cast<int>(q.params.size()), nullptr,
                          q.params.data(), nullptr, nullptr, 0) != 1) {
      return lost("sending");
    }
  }
  if (PQpipelineSync(conn_) != 1) return lost("syncing");
  std::vector<absl::StatusOr<PgResult>> results;
  std::string failed_sqlstate;
  for (size_t i = 0; i < queries.size(); ++i) {
    absl::Status row_refused;
    // In a pipeline an earlier statement aborted, the server sends nothing for this one (libpq
    // has its PIPELINE_ABORTED result ready, and refuses single-row mode for it).
    if (queries[i].on_row && PQsetSingleRowMode(conn_) != 1 &&
        PQpipelineStatus(conn_) != PQ_PIPELINE_ABORTED) {
      return lost("single-row mode");
    }
    PgResult r(PQgetResult(conn_));
    for (; r && PQresultStatus(r.get()) == PGRES_SINGLE_TUPLE; r.reset(PQgetResult(conn_))) {
      if (!row_refused.ok()) continue;  // cancelled: drained and dropped
      row_refused = queries[i].on_row(*r);
      if (!row_refused.ok()) {
        if (cancel_ == nullptr) cancel_ = PQgetCancel(conn_);
        char err[256];
        if (cancel_ != nullptr) (void)PQcancel(cancel_, err, sizeof err);
        interrupted_ = true;  // the cancel may reach a later statement: never pooled again
      }
    }
    if (!r) return lost("reading");
    if (!row_refused.ok()) {
      results.push_back(row_refused);
    } else if (PQresultStatus(r.get()) == PGRES_PIPELINE_ABORTED) {
      results.push_back(absl::AbortedError("skipped: an earlier statement in the pipeline failed"));
    } else {
      results.push_back(Check(std::move(r)));
      if (!results.back().ok() && failed_sqlstate.empty()) failed_sqlstate = last_sqlstate_;
    }
    PgResult end(PQgetResult(conn_));  // NULL ends each query's results
    if (end) return lost("reading past a result");
  }
  PgResult sync(PQgetResult(conn_));
  if (!sync || PQresultStatus(sync.get()) != PGRES_PIPELINE_SYNC) return lost("reading the sync");
  if (PQexitPipelineMode(conn_) != 1) return lost("leaving pipeline mode");
  last_sqlstate_ = failed_sqlstate;
  if (guard && guard->interrupted()) interrupted_ = true;
  return results;
}

absl::StatusOr<PgResult> PgConnection::Check(PgResult r) {
  ExecStatusType st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return r;
  const char* state = r ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr;
  last_sqlstate_ = state ? state : "";
  std::string msg(
      absl::StripAsciiWhitespace(r ? PQresultErrorMessage(r.get()) : PQerrorMessage(conn_)));
  if (msg.empty()) msg = PQerrorMessage(conn_);
  if (PQstatus(conn_) != CONNECTION_OK || last_sqlstate_.rfind("08", 0) == 0 ||
      last_sqlstate_.rfind("57P", 0) == 0) {
    return absl::UnavailableError(absl::StrCat("PostgreSQL connection lost: ", msg));
  }
  std::string text = absl::StrCat("SQLSTATE ", last_sqlstate_, ": ", msg);
  if (last_sqlstate_.rfind("40", 0) == 0) return absl::AbortedError(text);
  if (last_sqlstate_ == "57014" && absl::StrContains(msg, "statement timeout")) {
    // The agent's statement_timeout, set from the time the call had left (PostgresSession).
    return absl::ResourceExhaustedError(absl::StrCat(
        "the statement ran past its transaction's deadline (statement_timeout, set from the "
        "time the call had left): ", text));
  }
  return absl::FailedPreconditionError(text);
}

PgPool::PgPool(std::string dsn, std::string password, int max_idle, int64_t lock_timeout_ms)
    : dsn_(std::move(dsn)), password_(std::move(password)), max_idle_(max_idle) {
  // Our setting goes after any `options` the DSN has (the last -c of a name wins).
  if (PQconninfoOption* parsed = PQconninfoParse(dsn_.c_str(), nullptr)) {
    for (PQconninfoOption* o = parsed; o->keyword != nullptr; ++o) {
      if (std::string(o->keyword) == "options" && o->val != nullptr) options_ = o->val;
    }
    PQconninfoFree(parsed);
  }
  if (lock_timeout_ms > 0) {
    absl::StrAppend(&options_, options_.empty() ? "" : " ", "-c lock_timeout=", lock_timeout_ms,
                    "ms");
  }
}

PgPool::~PgPool() {
  std::lock_guard<std::mutex> lock(mu_);
  for (PGconn* c : idle_) PQfinish(c);
}

absl::StatusOr<std::unique_ptr<PgConnection>> PgPool::Acquire() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    while (!idle_.empty()) {
      PGconn* c = idle_.back();
      idle_.pop_back();
      if (!LooksDead(c)) return std::make_unique<PgConnection>(this, c);
      PQfinish(c);
    }
  }
  std::vector<const char*> keys = {"dbname", "application_name"};
  std::vector<const char*> values = {dsn_.c_str(), "txagent"};
  if (!password_.empty()) {
    keys.push_back("password");
    values.push_back(password_.c_str());
  }
  if (!options_.empty()) {
    keys.push_back("options");
    values.push_back(options_.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  PGconn* c = PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1);
  if (c == nullptr || PQstatus(c) != CONNECTION_OK) {
    std::string msg =
        c ? std::string(absl::StripAsciiWhitespace(PQerrorMessage(c))) : "out of memory";
    if (c) PQfinish(c);
    return absl::UnavailableError(absl::StrCat("cannot connect to PostgreSQL: ", msg));
  }
  return std::make_unique<PgConnection>(this, c);
}

void PgPool::Release(PGconn* conn, bool needs_reset) {
  // Only a connection outside any transaction goes back to the pool.
  if (PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) == PQTRANS_IDLE) {
    if (needs_reset) {
      PgResult r(PQexec(conn, "DISCARD ALL"));
      if (!r || PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
        PQfinish(conn);
        return;
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (static_cast<int>(idle_.size()) < max_idle_) {
      idle_.push_back(conn);
      return;
    }
  }
  PQfinish(conn);
}

}  // namespace txn::agent
