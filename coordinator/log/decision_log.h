// DecisionLog: the coordinator's durable memory of decisions. A transaction appears here only
// when it is decided COMMIT (2PC, presumed abort) or when its protocol needs a record; absence
// means "never decided" = abort. Implementations must be thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "txn/v1/log.pb.h"

namespace txn::log {

using DecisionRecord = ::txn::v1::log::DecisionRecord;

class DecisionLog {
 public:
  virtual ~DecisionLog() = default;

  // Writes every record (replacing any with the same txn_id) in one atomic batch. With `sync`
  // it returns only after the batch is on stable storage. Returns the storage's error, in which
  // case the batch may or may not be durable (only a reopen can tell).
  [[nodiscard]] virtual absl::Status Write(const std::vector<DecisionRecord>& records,
                                           bool sync) = 0;
  // The record for `txn_id`, nullopt if there is none.
  [[nodiscard]] virtual absl::StatusOr<std::optional<DecisionRecord>> Get(
      absl::string_view txn_id) = 0;
  [[nodiscard]] virtual absl::Status Delete(absl::string_view txn_id) = 0;
  // Calls `fn` for each record in txn-id order until it returns false.
  [[nodiscard]] virtual absl::Status ForEach(
      const std::function<bool(const DecisionRecord&)>& fn) = 0;
  // Durably increments and returns the start counter (1 on a new log): a fresh epoch per start
  // makes transaction ids unique across restarts.
  [[nodiscard]] virtual absl::StatusOr<uint64_t> NextEpoch() = 0;
  // The id this log was given when it was created (common::IsValidIncarnation), the same at
  // every open. Transaction ids carry it, so ids of a log that was lost are told from this one's.
  virtual const std::string& incarnation() const = 0;
  // True if this log was in use before incarnation ids existed: ids without one
  // (`NODE-EPOCH-SEQ`) were made by it, so presumed abort holds for them.
  virtual bool made_legacy_ids() const { return false; }
};

}  // namespace txn::log
