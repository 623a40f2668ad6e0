// The RocksDB DecisionLog: the coordinator's --data-dir.
//
// Key layout (one column family, bytewise order):
//   d/<txn id>   -> DecisionRecord (serialized protobuf)
//   m/epoch      -> start counter, decimal text
//   m/incarnation -> 8 random lowercase hex digits, written when the folder is first opened
//   m/legacy_ids  -> present if the folder had an epoch before it had an incarnation
// Writes are one WriteBatch each; `sync` sets WriteOptions::sync, so the WAL is fsynced before
// Write returns. RocksDB's write thread already makes concurrent synced writers share one fsync;
// GroupCommitLog additionally batches callers that must not block. Thread-safe.
//
// Disk headroom: before each write the free space of `dir` is checked, and below
// `min_free_bytes` the write is refused (RESOURCE_EXHAUSTED) without reaching RocksDB, so the
// coordinator fails closed cleanly and resumes once space is freed. Why not let RocksDB hit
// ENOSPC: Debian's librocksdb 7.8 is built with assertions, and a second write after a failed WAL
// append aborts the process (WritableFileWriter::AssertFalseAndGetStatusForPrevError). That
// crash is safe (nothing was acknowledged; recovery reads what is durable) but it is a restart,
// not a clean refusal; the headroom check makes the common case clean.
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
  static absl::StatusOr<std::unique_ptr<RocksDbDecisionLog>> Open(const std::string& dir,
                                                                  uint64_t min_free_bytes = 0);
  ~RocksDbDecisionLog() override;

  absl::Status Write(const std::vector<DecisionRecord>& records, bool sync) override;
  absl::StatusOr<std::optional<DecisionRecord>> Get(absl::string_view txn_id) override;
  absl::Status Delete(absl::string_view txn_id) override;
  absl::Status ForEach(const std::function<bool(const DecisionRecord&)>& fn) override;
  absl::StatusOr<uint64_t> NextEpoch() override;
  const std::string& incarnation() const override { return incarnation_; }
  // True if this open created the incarnation id: a new (or replaced) data folder.
  bool created_incarnation() const { return created_incarnation_; }
  bool made_legacy_ids() const override { return made_legacy_ids_; }

 private:
  RocksDbDecisionLog(std::unique_ptr<rocksdb::DB> db, std::string dir, uint64_t min_free_bytes);
  // RESOURCE_EXHAUSTED when `dir_` has less than min_free_bytes_ free.
  absl::Status CheckHeadroom() const;
  // Reads m/incarnation, or makes and durably writes it on a folder that has none.
  absl::Status LoadIncarnation();
  std::unique_ptr<rocksdb::DB> db_;
  const std::string dir_;
  const uint64_t min_free_bytes_;
  std::string incarnation_;  // set once in Open
  bool created_incarnation_ = false;
  bool made_legacy_ids_ = false;
};

}  // namespace txn::log
