// The RocksDB DecisionLog: the coordinator's --data-dir.
//
// Key layout (one column family, bytewise order):
//   d/<txn id>   -> DecisionRecord (serialized protobuf)
//   m/epoch      -> start counter, decimal text
// Writes are one WriteBatch each; `sync` sets WriteOptions::sync, so the WAL is fsynced before
// Write returns. RocksDB's write thread already makes concurrent synced writers share one fsync;
// GroupCommitLog additionally batches callers that must not block. Thread-safe.
#pragma once

#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "coordinator/log/decision_log.h"

namespace rocksdb {
class DB;
}

namespace txn::log {

class RocksDbDecisionLog final : public DecisionLog {
 public:
  // Opens (creating if missing) the database in `dir`. Returns the storage's error naming `dir`.
  static absl::StatusOr<std::unique_ptr<RocksDbDecisionLog>> Open(const std::string& dir);
  ~RocksDbDecisionLog() override;

  absl::Status Write(const std::vector<DecisionRecord>& records, bool sync) override;
  absl::StatusOr<std::optional<DecisionRecord>> Get(absl::string_view txn_id) override;
  absl::Status Delete(absl::string_view txn_id) override;
  absl::Status ForEach(const std::function<bool(const DecisionRecord&)>& fn) override;
  absl::StatusOr<uint64_t> NextEpoch() override;

 private:
  explicit RocksDbDecisionLog(std::unique_ptr<rocksdb::DB> db);
  std::unique_ptr<rocksdb::DB> db_;
};

}  // namespace txn::log
