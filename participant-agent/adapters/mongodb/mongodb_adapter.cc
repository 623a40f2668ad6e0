#include "participant-agent/adapters/mongodb/mongodb_adapter.h"

#include <mongoc/mongoc.h>

#include <chrono>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/status_macros.h"
#include "participant-agent/adapters/mongodb/mongo_operation.h"

namespace txn::agent {
namespace {

constexpr char kMarkers[] = "txcoord_markers";
constexpr int kWriteConflict = 112;
constexpr int kCommitAttempts = 10;

absl::Status FromMongo(const bson_error_t& e, absl::string_view what) {
  std::string text =
      absl::StrCat("MongoDB ", what, ": ", e.message, " (", e.domain, ".", e.code, ")");
  if (e.domain == MONGOC_ERROR_SERVER_SELECTION || e.domain == MONGOC_ERROR_STREAM ||
      e.domain == MONGOC_ERROR_CLIENT) {
    return absl::UnavailableError(text);
  }
  if (e.code == kWriteConflict) return absl::AbortedError(text);
  return absl::FailedPreconditionError(text);
}

// A client borrowed from the pool for as long as it lives.
class PooledClient {
 public:
  explicit PooledClient(mongoc_client_pool_t* pool)
      : pool_(pool), client_(mongoc_client_pool_pop(pool)) {}
  ~PooledClient() { mongoc_client_pool_push(pool_, client_); }
  mongoc_client_t* get() const { return client_; }

 private:
  mongoc_client_pool_t* pool_;
  mongoc_client_t* client_;
};

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class MongoSession final : public BranchSession {
 public:
  MongoSession(mongoc_client_pool_t* pool, std::string database)
      : client_(pool), database_(std::move(database)) {}

  ~MongoSession() override {
    if (session_ != nullptr) {
      if (mongoc_client_session_in_transaction(session_)) {
        bson_error_t e;
        mongoc_client_session_abort_transaction(session_, &e);
      }
      mongoc_client_session_destroy(session_);
    }
  }

  absl::Status Open() {
    bson_error_t e;
    session_ = mongoc_client_start_session(client_.get(), nullptr, &e);
    if (session_ == nullptr) return FromMongo(e, "start session");
    mongoc_transaction_opt_t* opts = mongoc_transaction_opts_new();
    mongoc_write_concern_t* wc = mongoc_write_concern_new();
    mongoc_write_concern_set_wmajority(wc, 0);
    mongoc_transaction_opts_set_write_concern(opts, wc);
    bool ok = mongoc_client_session_start_transaction(session_, opts, &e);
    mongoc_write_concern_destroy(wc);
    mongoc_transaction_opts_destroy(opts);
    if (!ok) return FromMongo(e, "start transaction");
    return absl::OkStatus();
  }

  absl::StatusOr<v1::ExecuteResult> Execute(const v1::Operation& op) override {
    if (!op.has_mongo()) {
      return absl::InvalidArgumentError("a MongoDB participant takes mongo operations only");
    }
    TXN_ASSIGN_OR_RETURN(MongoOperation m, BuildMongoOperation(op.mongo()));
    std::unique_ptr<mongoc_collection_t, decltype(&mongoc_collection_destroy)> coll(
        mongoc_client_get_collection(client_.get(), database_.c_str(), m.collection.c_str()),
        &mongoc_collection_destroy);
    bson_error_t e;
    BsonPtr opts(bson_new());
    if (!mongoc_client_session_append(session_, opts.get(), &e)) return FromMongo(e, "session");
    bson_t reply;
    v1::ExecuteResult out;
    bool ok = false;
    switch (m.kind) {
      case v1::MongoOp::KIND_INSERT:
        ok = mongoc_collection_insert_one(coll.get(), m.document.get(), opts.get(), &reply, &e);
        if (ok) out.set_rows_affected(1);
        break;
      case v1::MongoOp::KIND_UPDATE:
        ok = mongoc_collection_update_many(coll.get(), m.filter.get(), m.update.get(), opts.get(),
                                           &reply, &e);
        if (ok) out.set_rows_affected(ReplyCount(&reply, "matchedCount"));
        break;
      case v1::MongoOp::KIND_DELETE:
        ok = mongoc_collection_delete_many(coll.get(), m.filter.get(), opts.get(), &reply, &e);
        if (ok) out.set_rows_affected(ReplyCount(&reply, "deletedCount"));
        break;
      case v1::MongoOp::KIND_FIND: {
        bson_init(&reply);
        std::unique_ptr<mongoc_cursor_t, decltype(&mongoc_cursor_destroy)> cursor(
            mongoc_collection_find_with_opts(coll.get(), m.filter.get(), opts.get(), nullptr),
            &mongoc_cursor_destroy);
        out.add_columns("document");
        const bson_t* doc = nullptr;
        while (mongoc_cursor_next(cursor.get(), &doc)) out.add_rows()->add_values(BsonToJson(doc));
        ok = !mongoc_cursor_error(cursor.get(), &e);
        out.set_rows_affected(out.rows_size());
        break;
      }
      default:
        bson_init(&reply);
        break;
    }
    bson_destroy(&reply);
    if (!ok) return FromMongo(e, "operation");
    return out;
  }

  absl::StatusOr<PrepareResult> Prepare(const std::string& gid) override {
    return absl::FailedPreconditionError("MongoDB cannot prepare a transaction");
  }

  absl::Status CommitLocal(const std::string& gid) override {
    if (!common::ParseBranchGid(gid)) return absl::InvalidArgumentError("invalid gid");
    bson_error_t e;
    {
      std::unique_ptr<mongoc_collection_t, decltype(&mongoc_collection_destroy)> markers(
          mongoc_client_get_collection(client_.get(), database_.c_str(), kMarkers),
          &mongoc_collection_destroy);
      BsonPtr opts(bson_new());
      if (!mongoc_client_session_append(session_, opts.get(), &e)) return FromMongo(e, "session");
      BsonPtr marker(BCON_NEW("_id", BCON_UTF8(gid.c_str()), "at", BCON_DATE_TIME(NowMs())));
      if (!mongoc_collection_insert_one(markers.get(), marker.get(), opts.get(), nullptr, &e)) {
        (void)RollbackLocal();
        return absl::AbortedError(absl::StrCat("commit marker: ", e.message));
      }
    }
    for (int attempt = 1;; ++attempt) {
      bson_t reply;
      bool ok = mongoc_client_session_commit_transaction(session_, &reply, &e);
      const bool unknown = !ok && mongoc_error_has_label(&reply, "UnknownTransactionCommitResult");
      const bool transient = !ok && mongoc_error_has_label(&reply, "TransientTransactionError");
      bson_destroy(&reply);
      if (ok) return absl::OkStatus();
      if (transient) return absl::AbortedError(absl::StrCat("MongoDB commit: ", e.message));
      if (!unknown) return FromMongo(e, "commit");
      if (attempt >= kCommitAttempts) {
        // Still unknown: say so (the registry reports UNKNOWN; the marker will tell later).
        return absl::UnavailableError(absl::StrCat("MongoDB commit result unknown after ", attempt,
                                                   " attempts: ", e.message));
      }
    }
  }

  absl::Status RollbackLocal() override {
    if (session_ == nullptr || !mongoc_client_session_in_transaction(session_)) {
      return absl::OkStatus();
    }
    bson_error_t e;
    if (!mongoc_client_session_abort_transaction(session_, &e)) return FromMongo(e, "abort");
    return absl::OkStatus();
  }

 private:
  static int64_t ReplyCount(const bson_t* reply, const char* field) {
    bson_iter_t it;
    if (bson_iter_init_find(&it, reply, field) && BSON_ITER_HOLDS_NUMBER(&it)) {
      return bson_iter_as_int64(&it);
    }
    return 0;
  }

  PooledClient client_;
  const std::string database_;
  mongoc_client_session_t* session_ = nullptr;
};

}  // namespace

absl::StatusOr<std::unique_ptr<MongoAdapter>> MongoAdapter::Create(const std::string& uri_text,
                                                                   const std::string& password,
                                                                   int marker_retention_hours) {
  static std::once_flag init;
  std::call_once(init, [] { mongoc_init(); });
  bson_error_t e;
  mongoc_uri_t* uri = mongoc_uri_new_with_error(uri_text.c_str(), &e);
  if (uri == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("--dsn is not a MongoDB URI: ", e.message));
  }
  const char* db = mongoc_uri_get_database(uri);
  if (db == nullptr || *db == '\0') {
    mongoc_uri_destroy(uri);
    return absl::InvalidArgumentError(
        "--dsn names no database (mongodb://host:port/DATABASE?replicaSet=...)");
  }
  if (!password.empty()) {
    const char* user = mongoc_uri_get_username(uri);
    if (user == nullptr || *user == '\0' || !mongoc_uri_set_password(uri, password.c_str())) {
      mongoc_uri_destroy(uri);
      return absl::InvalidArgumentError(
          "--dsn-password-file needs a user in the URI (mongodb://USER@host:port/DATABASE?...)");
    }
  }
  mongoc_client_pool_t* pool = mongoc_client_pool_new(uri);
  mongoc_client_pool_set_error_api(pool, MONGOC_ERROR_API_VERSION_2);
  return std::unique_ptr<MongoAdapter>(new MongoAdapter(uri, pool, db, marker_retention_hours));
}

MongoAdapter::MongoAdapter(mongoc_uri_t* uri, mongoc_client_pool_t* pool, std::string database,
                           int marker_retention_hours)
    : uri_(uri),
      pool_(pool),
      database_(std::move(database)),
      marker_retention_hours_(marker_retention_hours) {}

MongoAdapter::~MongoAdapter() {
  mongoc_client_pool_destroy(pool_);
  mongoc_uri_destroy(uri_);
}

absl::Status MongoAdapter::CheckReady() {
  PooledClient client(pool_);
  bson_error_t e;
  bson_t reply;
  BsonPtr hello(BCON_NEW("hello", BCON_INT32(1)));
  if (!mongoc_client_command_simple(client.get(), "admin", hello.get(), nullptr, &reply, &e)) {
    bson_destroy(&reply);
    return FromMongo(e, "hello");
  }
  bson_iter_t it;
  const bool replica_set = bson_iter_init_find(&it, &reply, "setName");
  const bool mongos = bson_iter_init_find(&it, &reply, "msg") && BSON_ITER_HOLDS_UTF8(&it) &&
                      std::string(bson_iter_utf8(&it, nullptr)) == "isdbgrid";
  bson_destroy(&reply);
  if (!replica_set && !mongos) {
    return absl::FailedPreconditionError(
        "this MongoDB is a standalone server, which has no transactions: run it as a replica set "
        "(even of one node: mongod --replSet rs0, then rs.initiate())");
  }
  BsonPtr param(
      BCON_NEW("getParameter", BCON_INT32(1), "transactionLifetimeLimitSeconds", BCON_INT32(1)));
  if (mongoc_client_command_simple(client.get(), "admin", param.get(), nullptr, &reply, &e) &&
      bson_iter_init_find(&it, &reply, "transactionLifetimeLimitSeconds") &&
      BSON_ITER_HOLDS_NUMBER(&it)) {
    // Leave five seconds (or a tenth) for the commit itself.
    const int64_t limit_ms = bson_iter_as_int64(&it) * 1000;
    max_txn_lifetime_ms_ = std::max<int64_t>(1000, std::min(limit_ms - 5000, limit_ms * 9 / 10));
  }
  bson_destroy(&reply);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<BranchSession>> MongoAdapter::Begin(const std::string& gid) {
  auto session = std::make_unique<MongoSession>(pool_, database_);
  TXN_RETURN_IF_ERROR(session->Open());
  return std::unique_ptr<BranchSession>(std::move(session));
}

absl::StatusOr<FinishResult> MongoAdapter::CommitPrepared(const std::string& gid,
                                                          const std::string& native_id) {
  return absl::FailedPreconditionError("MongoDB branches are never prepared");
}

absl::StatusOr<FinishResult> MongoAdapter::RollbackPrepared(const std::string& gid,
                                                            const std::string& native_id) {
  // Nothing is ever prepared here; a branch never committed is aborted — unless its marker says
  // it committed, which the caller must hear.
  TXN_ASSIGN_OR_RETURN(FinishedAs proven, ProveOnePhase(gid));
  return FinishResult{
      proven == FinishedAs::kCommitted ? FinishedAs::kCommitted : FinishedAs::kAborted, ""};
}

absl::StatusOr<FinishedAs> MongoAdapter::ProveOnePhase(const std::string& gid) {
  PooledClient client(pool_);
  std::unique_ptr<mongoc_collection_t, decltype(&mongoc_collection_destroy)> markers(
      mongoc_client_get_collection(client.get(), database_.c_str(), kMarkers),
      &mongoc_collection_destroy);
  BsonPtr filter(BCON_NEW("_id", BCON_UTF8(gid.c_str())));
  bson_error_t e;
  int64_t n =
      mongoc_collection_count_documents(markers.get(), filter.get(), nullptr, nullptr, nullptr, &e);
  if (n < 0) return FromMongo(e, "marker lookup");
  return n > 0 ? FinishedAs::kCommitted : FinishedAs::kAborted;
}

absl::Status MongoAdapter::CollectGarbage() {
  PooledClient client(pool_);
  std::unique_ptr<mongoc_collection_t, decltype(&mongoc_collection_destroy)> markers(
      mongoc_client_get_collection(client.get(), database_.c_str(), kMarkers),
      &mongoc_collection_destroy);
  const int64_t cutoff = NowMs() - int64_t{marker_retention_hours_} * 3600 * 1000;
  BsonPtr filter(BCON_NEW("at", "{", "$lt", BCON_DATE_TIME(cutoff), "}"));
  bson_error_t e;
  if (!mongoc_collection_delete_many(markers.get(), filter.get(), nullptr, nullptr, &e)) {
    return FromMongo(e, "marker cleanup");
  }
  return absl::OkStatus();
}

}  // namespace txn::agent
