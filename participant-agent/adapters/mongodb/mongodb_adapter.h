// MongoAdapter: a MongoDB participant through libmongoc. MongoDB has no client-visible prepare
// (a transaction dies with its session), so this adapter cannot prepare: its branch is the
// transaction's last resource (DESIGN.md section 3), committed last, in one phase.
//
//   work     a session from the client pool, startTransaction (majority write concern),
//            MongoOp operations checked by BuildMongoOperation
//   commit   insert the commit marker {_id: gid, at: now} into txcoord_markers in the same
//            transaction, then commitTransaction, retried while the result is
//            UnknownTransactionCommitResult (never guessed)
//   abort    abortTransaction
//   proof    ProveOnePhase looks the marker up (markers expire after marker_retention_hours)
//
// CheckReady refuses a standalone mongod (no transactions) and a URI without a database; it reads
// transactionLifetimeLimitSeconds (default 60 s when it cannot) so the coordinator gives a Mongo
// transaction a deadline below it. Thread-safe.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "participant-agent/resource_adapter.h"

typedef struct _mongoc_client_pool_t mongoc_client_pool_t;
typedef struct _mongoc_uri_t mongoc_uri_t;

namespace txn::agent {

class MongoAdapter final : public ResourceAdapter {
 public:
  // INVALID_ARGUMENT for a URI that does not parse or names no database, or a `password` (from
  // --dsn-password-file; it replaces any password in the URI) with no user in the URI.
  static absl::StatusOr<std::unique_ptr<MongoAdapter>> Create(const std::string& uri,
                                                              const std::string& password = "",
                                                              int marker_retention_hours = 24 * 7);
  ~MongoAdapter() override;

  bool supports_prepare() const override { return false; }
  int64_t max_txn_lifetime_ms() const override { return max_txn_lifetime_ms_.load(); }
  absl::Status CheckReady() override;
  absl::StatusOr<std::unique_ptr<BranchSession>> Begin(const std::string& gid) override;
  absl::StatusOr<FinishResult> CommitPrepared(const std::string& gid,
                                              const std::string& native_id) override;
  absl::StatusOr<FinishResult> RollbackPrepared(const std::string& gid,
                                                const std::string& native_id) override;
  absl::StatusOr<bool> IsPrepared(const std::string& gid) override { return false; }
  absl::StatusOr<std::vector<std::string>> ListPrepared() override {
    return std::vector<std::string>();
  }
  absl::StatusOr<FinishedAs> ProveOnePhase(const std::string& gid) override;
  absl::Status CollectGarbage() override;

 private:
  MongoAdapter(mongoc_uri_t* uri, mongoc_client_pool_t* pool, std::string database,
               int marker_retention_hours);
  mongoc_uri_t* uri_;
  mongoc_client_pool_t* pool_;
  const std::string database_;
  const int marker_retention_hours_;
  std::atomic<int64_t> max_txn_lifetime_ms_{55'000};
};

}  // namespace txn::agent
