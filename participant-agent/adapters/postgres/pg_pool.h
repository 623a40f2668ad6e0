// PgPool: libpq connections for one DSN, plus the small helpers that run a statement and turn
// libpq errors into absl::Status. Thread-safe.
#pragma once

#include <libpq-fe.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace txn::agent {

struct PgResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;

class PgPool;

// One statement of a pipeline: text and text parameters (nullptr = NULL). With `on_row` set, its
// rows are read one at a time (libpq's single-row mode) and handed to `on_row` instead of being
// kept in the result, so reading a result never holds more of it in memory than its caller
// keeps. The first error `on_row` returns becomes the statement's answer: the statement is
// cancelled in the server, what it still sends is read and dropped, and the connection is not
// pooled again.
struct PgQuery {
  std::string sql;
  std::vector<const char*> params;
  std::function<absl::Status(const PGresult& row)> on_row;
};

// A connection borrowed from the pool; returned (or dropped if broken) on destruction.
class PgConnection {
 public:
  PgConnection(PgPool* pool, PGconn* conn) : pool_(pool), conn_(conn) {}
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  PGconn* get() const { return conn_; }
  // Runs `sql` with text parameters (nullptr = NULL). Returns the result for COMMAND_OK and
  // TUPLES_OK; otherwise an error whose message carries the SQLSTATE: UNAVAILABLE when the
  // connection is broken, ABORTED for class 40 (serialization, deadlock), FAILED_PRECONDITION
  // for any other database error.
  absl::StatusOr<PgResult> Exec(const std::string& sql,
                                const std::vector<const char*>& params = {});
  // Exec for a client's statement, which may wait (row locks, pg_sleep): the cancellation of
  // the call being served (CallCancellation) interrupts it, and the statement then fails with
  // SQLSTATE 57014; CANCELLED when the call was cancelled before it was sent. The agent's own
  // statements (ROLLBACK, PREPARE TRANSACTION, markers) use Exec and always run.
  absl::StatusOr<PgResult> ExecCancellable(const std::string& sql,
                                           const std::vector<const char*>& params = {});
  // Sends `queries` in one round trip (libpq pipeline mode) and returns each one's result as
  // Exec would; a query after a failed one is ABORTED without running. The whole call is
  // UNAVAILABLE when the connection fails (it is then never pooled again). `cancellable`: the
  // call's cancellation interrupts it, as ExecCancellable.
  absl::StatusOr<std::vector<absl::StatusOr<PgResult>>> ExecPipeline(
      const std::vector<PgQuery>& queries, bool cancellable);
  // The SQLSTATE of the last failed Exec ("" if none).
  const std::string& last_sqlstate() const { return last_sqlstate_; }
  // A client's statement ran on this connection: before another call gets it, the pool resets
  // the session (DISCARD ALL), so nothing one client left behind (settings, prepared
  // statements, cursors, sequence state, advisory locks) reaches the next.
  void NoteClientStatement() { needs_reset_ = true; }

 private:
  // Maps a result to Exec's answer (sets last_sqlstate_).
  absl::StatusOr<PgResult> Check(PgResult r);
  PgPool* const pool_;
  PGconn* conn_;
  std::string last_sqlstate_;
  PGcancel* cancel_ = nullptr;  // made on the first cancellable Exec
  bool interrupted_ = false;    // a cancel request was sent: the connection is not reused
  bool needs_reset_ = false;    // NoteClientStatement
};

class PgPool {
 public:
  // `lock_timeout_ms` > 0 is every session's lock_timeout: a statement waiting longer for a row
  // lock fails, so a deadlock across databases, which neither database can see, ends in a NO
  // vote instead of a stall until the prepare timeout. It is passed in the startup packet
  // (options=-c ...), so that it is the session's default and survives DISCARD ALL.
  PgPool(std::string dsn, std::string password, int max_idle, int64_t lock_timeout_ms = 0);
  ~PgPool();
  // An idle healthy connection, or a new one. UNAVAILABLE naming the server when it cannot connect.
  absl::StatusOr<std::unique_ptr<PgConnection>> Acquire();
  // Pools `conn` if it is healthy and outside any transaction, after DISCARD ALL when
  // `needs_reset`; closes it otherwise.
  void Release(PGconn* conn, bool needs_reset);

 private:
  const std::string dsn_;
  const std::string password_;
  const int max_idle_;
  std::string options_;  // the startup packet's options: the DSN's, then our settings
  std::mutex mu_;
  std::vector<PGconn*> idle_;  // guarded by mu_
};

}  // namespace txn::agent
