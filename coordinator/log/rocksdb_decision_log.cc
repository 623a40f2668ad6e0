#include "coordinator/log/rocksdb_decision_log.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>
#include <sys/statvfs.h>

#include <filesystem>
#include <mutex>
#include <random>
#include <system_error>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/failpoint.h"
#include "common/ids.h"
#include "common/status_macros.h"

namespace txn::log {
namespace {

constexpr absl::string_view kRecordPrefix = "d/";
constexpr absl::string_view kEpochKey = "m/epoch";
constexpr absl::string_view kIncarnationKey = "m/incarnation";
constexpr absl::string_view kLegacyIdsKey = "m/legacy_ids";

absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  if (s.IsNotFound()) return absl::NotFoundError(absl::StrCat(what, ": ", s.ToString()));
  return absl::UnavailableError(absl::StrCat("decision log ", what, ": ", s.ToString()));
}

std::string RecordKey(absl::string_view txn_id) { return absl::StrCat(kRecordPrefix, txn_id); }

}  // namespace

RocksDbDecisionLog::RocksDbDecisionLog(std::unique_ptr<rocksdb::DB> db, std::string dir,
                                       uint64_t min_free_bytes)
    : db_(std::move(db)), dir_(std::move(dir)), min_free_bytes_(min_free_bytes) {}

absl::Status RocksDbDecisionLog::CheckHeadroom() const {
  if (min_free_bytes_ == 0) return absl::OkStatus();
  struct statvfs st;
  if (statvfs(dir_.c_str(), &st) != 0) return absl::OkStatus();  // cannot tell: let RocksDB try
  const uint64_t free_bytes = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
  if (free_bytes >= min_free_bytes_) return absl::OkStatus();
  return absl::ResourceExhaustedError(
      absl::StrCat("decision log: only ", free_bytes / 1024, " KiB free in ", dir_, " (at least ",
                   min_free_bytes_ / 1024, " KiB are kept free; see --log-min-free-mb)"));
}
RocksDbDecisionLog::~RocksDbDecisionLog() = default;

absl::StatusOr<std::unique_ptr<RocksDbDecisionLog>> RocksDbDecisionLog::Open(
    const std::string& dir, uint64_t min_free_bytes) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot create decision log folder ", dir, ": ", ec.message()));
  }
  rocksdb::Options options;
  options.create_if_missing = true;
  options.paranoid_checks = true;
  // Decisions are small; keep memtables small so a restart replays little WAL.
  options.write_buffer_size = 8 << 20;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, dir, &raw);
  if (!s.ok()) {
    return absl::UnavailableError(
        absl::StrCat("cannot open decision log in ", dir, ": ", s.ToString()));
  }
  std::unique_ptr<RocksDbDecisionLog> log(
      new RocksDbDecisionLog(std::unique_ptr<rocksdb::DB>(raw), dir, min_free_bytes));
  if (absl::Status s = log->LoadIncarnation(); !s.ok()) return s;
  return log;
}

absl::Status RocksDbDecisionLog::LoadIncarnation() {
  std::string value;
  rocksdb::Status legacy = db_->Get(rocksdb::ReadOptions(), std::string(kLegacyIdsKey), &value);
  if (!legacy.ok() && !legacy.IsNotFound()) return FromRocks(legacy, "read legacy marker");
  made_legacy_ids_ = legacy.ok();
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), std::string(kIncarnationKey), &value);
  if (s.ok()) {
    if (!common::IsValidIncarnation(value)) {
      return absl::DataLossError(
          absl::StrCat("decision log in ", dir_, ": corrupt incarnation id"));
    }
    incarnation_ = value;
    return absl::OkStatus();
  }
  if (!s.IsNotFound()) return FromRocks(s, "read incarnation");
  // 32 random bits: a replaced folder's ids collide with its predecessor's with odds 2^-32; the
  // predecessor's id is gone with its folder, so nothing better than chance can be had.
  std::random_device random;
  incarnation_ = absl::StrFormat("%08x", static_cast<uint32_t>(random()));
  // A folder with an epoch but no incarnation was written by a coordinator from before
  // incarnation ids: the ids without one are its own.
  std::string epoch;
  rocksdb::Status had_epoch = db_->Get(rocksdb::ReadOptions(), std::string(kEpochKey), &epoch);
  if (!had_epoch.ok() && !had_epoch.IsNotFound()) return FromRocks(had_epoch, "read epoch");
  rocksdb::WriteBatch batch;
  TXN_RETURN_IF_ERROR(FromRocks(batch.Put(std::string(kIncarnationKey), incarnation_), "batch"));
  if (had_epoch.ok()) {
    TXN_RETURN_IF_ERROR(FromRocks(batch.Put(std::string(kLegacyIdsKey), "1"), "batch"));
  }
  rocksdb::WriteOptions wo;
  wo.sync = true;
  TXN_RETURN_IF_ERROR(FromRocks(db_->Write(wo, &batch), "incarnation"));
  created_incarnation_ = true;
  made_legacy_ids_ = had_epoch.ok();
  return absl::OkStatus();
}

absl::Status RocksDbDecisionLog::Write(const std::vector<DecisionRecord>& records, bool sync) {
  rocksdb::WriteBatch batch;
  for (const auto& r : records) {
    rocksdb::Status s = batch.Put(RecordKey(r.txn_id()), r.SerializeAsString());
    if (!s.ok()) return FromRocks(s, "batch");
  }
  if (absl::Status room = CheckHeadroom(); !room.ok()) return room;
  // An injected RocksDB write error (tests/fault/test_disk_full.py): the caller sees exactly what a
  // failed WAL append would give it.
  if (absl::Status fp = common::Failpoint("log.write"); !fp.ok()) {
    return absl::UnavailableError(absl::StrCat("decision log write: IO error: ", fp.message()));
  }
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  return FromRocks(db_->Write(wo, &batch), "write");
}

absl::StatusOr<std::optional<DecisionRecord>> RocksDbDecisionLog::Get(absl::string_view txn_id) {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), RecordKey(txn_id), &value);
  if (s.IsNotFound()) return std::optional<DecisionRecord>();
  if (!s.ok()) return FromRocks(s, "read");
  DecisionRecord r;
  if (!r.ParseFromString(value)) {
    return absl::DataLossError(absl::StrCat("decision log: corrupt record for ", txn_id));
  }
  return std::optional<DecisionRecord>(std::move(r));
}

absl::Status RocksDbDecisionLog::Delete(absl::string_view txn_id) {
  return FromRocks(db_->Delete(rocksdb::WriteOptions(), RecordKey(txn_id)), "delete");
}

absl::Status RocksDbDecisionLog::ForEach(const std::function<bool(const DecisionRecord&)>& fn) {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(std::string(kRecordPrefix)); it->Valid(); it->Next()) {
    if (!it->key().starts_with(rocksdb::Slice(kRecordPrefix.data(), kRecordPrefix.size()))) break;
    DecisionRecord r;
    if (!r.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return absl::DataLossError(
          absl::StrCat("decision log: corrupt record at key ", it->key().ToString()));
    }
    if (!fn(r)) break;
  }
  return FromRocks(it->status(), "scan");
}

absl::StatusOr<uint64_t> RocksDbDecisionLog::NextEpoch() {
  static std::mutex mu;  // NextEpoch runs once per start; serialize read-modify-write anyway
  std::lock_guard<std::mutex> lock(mu);
  std::string value;
  uint64_t epoch = 0;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), std::string(kEpochKey), &value);
  if (s.ok()) {
    if (!absl::SimpleAtoi(value, &epoch)) {
      return absl::DataLossError("decision log: corrupt epoch counter");
    }
  } else if (!s.IsNotFound()) {
    return FromRocks(s, "read epoch");
  }
  ++epoch;
  if (absl::Status room = CheckHeadroom(); !room.ok()) return room;
  // After a failed write (a full disk, say) RocksDB refuses every write until told to resume;
  // this is the probe that tells it. No-op when there was no error.
  if (rocksdb::Status resumed = db_->Resume(); !resumed.ok()) return FromRocks(resumed, "resume");
  rocksdb::WriteOptions wo;
  wo.sync = true;
  absl::Status put = FromRocks(db_->Put(wo, std::string(kEpochKey), absl::StrCat(epoch)), "epoch");
  if (!put.ok()) return put;
  return epoch;
}

}  // namespace txn::log
