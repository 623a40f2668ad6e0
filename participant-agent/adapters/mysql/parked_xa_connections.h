// ParkedXaConnections: connections that hold an XA branch this agent prepared, kept until the
// branch is committed or rolled back.
//
// MariaDB (10.5 and later, checked on 10.11) keeps a prepared XA transaction attached to the
// connection that prepared it: that connection can do nothing but XA COMMIT / XA ROLLBACK it,
// and no other connection can finish it (XAER_NOTA) until this one closes and the server
// detaches the transaction. Closing the connection after every XA PREPARE, as this agent once
// did, costs a new connection (TCP, authentication, session setup) per prepared branch, and
// made the second phase wait for the detach. Parking the connection instead lets Commit or
// Rollback finish the branch on it and hand it back to the pool.
//
// A parked connection is only an optimisation: if it breaks or is closed (agent restart, a
// stale branch, more branches prepared than `max_parked`), the server detaches the prepared
// transaction and any connection finishes it as before. Thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <map>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "participant-agent/adapters/mysql/mysql_connection.h"

namespace txn::agent {

class ParkedXaConnections {
 public:
  explicit ParkedXaConnections(size_t max_parked) : max_parked_(max_parked) {}
  // Closes every parked connection (never back into the pool: each is in the PREPARED state).
  ~ParkedXaConnections();

  // Keeps `conn`, which holds the prepared branch `gid`. When `max_parked` are parked already,
  // closes it instead (the transaction stays prepared, detached).
  void Park(const std::string& gid, std::unique_ptr<MysqlConnection> conn);
  // The connection holding `gid`, or nullptr; it is no longer parked.
  std::unique_ptr<MysqlConnection> Take(const std::string& gid);
  // Closes connections parked longer than `age` (a branch whose decision is slow to come: its
  // connection goes back to the server, and the branch is finished from any connection later).
  // Returns how many were closed.
  size_t CloseOlderThan(std::chrono::steady_clock::duration age);
  size_t size() const;
  // `thread_id`'s connection, which held `gid`, was closed elsewhere (after Take) with the branch
  // unfinished: ThreadIds reports it as detached until Finished(gid).
  void RememberClosed(const std::string& gid, int64_t thread_id);
  // The branch `gid` is committed or rolled back: its closed connection's id is forgotten.
  void Finished(const std::string& gid);
  // The server thread id of each parked connection, with the branch it holds; also of each
  // connection closed here whose branch has not been finished since (Finished): MariaDB keeps the
  // closed connection's id on the detached prepared transaction in INNODB_TRX, so a lock it holds
  // can still be named (lock-wait reports).
  std::vector<std::pair<int64_t, std::string>> ThreadIds() const;

 private:
  struct Parked {
    std::unique_ptr<MysqlConnection> conn;
    std::chrono::steady_clock::time_point since;
  };
  // Requires mu_ held.
  void NoteDetached(const std::string& gid, int64_t thread_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static constexpr size_t kMaxDetached = 10'000;
  const size_t max_parked_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Parked> parked_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> detached_ ABSL_GUARDED_BY(mu_);  // gid -> closed connection's id
};

}  // namespace txn::agent
