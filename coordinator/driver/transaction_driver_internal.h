// What the files of TransactionDriver share and nothing else includes: small helpers. The
// driver is split by concern: transaction_driver.cc (the protocol drivers, recovery, finished
// transactions, deadlock hooks), transaction_front_end.cc (Run / Begin / Execute / Commit /
// Rollback: routing, admission, idempotency, interactive sessions) and transaction_catalog.cc
// (lookups, GetDecision, the admin list / resolve / stats / GC, metrics). The 2PC driver itself
// is two_phase_driver.h.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/metrics.h"
#include "coordinator/driver/proto_mapping.h"
#include "coordinator/driver/transaction_driver.h"

namespace txn::driver {

namespace driver_internal {

inline std::string Message(const absl::Status& s) { return std::string(s.message()); }

inline void ObservePhase(const char* phase, double seconds) {
  common::DefaultMetrics()
      .GetHistogram("txcoord_phase_seconds",
                    "Phases of committed transactions: prepare (commit asked -> every vote in), "
                    "decision_log (the synced COMMIT write), commit (decision -> every ack).",
                    {{"phase", phase}})
      ->Observe(seconds);
}

inline std::string ProtocolLabel(v1::Protocol p) {
  std::string name = v1::Protocol_Name(p);
  return absl::AsciiStrToLower(absl::StripPrefix(name, "PROTOCOL_"));
}

inline std::string StateLabel(v1::TxnState s) {
  std::string name = v1::TxnState_Name(s);
  return absl::AsciiStrToLower(absl::StripPrefix(name, "TXN_STATE_"));
}

// Whether `principal` may see a transaction of `owner` ("" sees every one: no tokens).
inline bool OwnedBy(const std::string& owner, const std::string& principal) {
  return principal.empty() || owner == principal;
}

inline absl::Status NotKnown(const std::string& txn_id) {
  return absl::NotFoundError(absl::StrCat("transaction ", txn_id, " is not known"));
}

}  // namespace driver_internal
}  // namespace txn::driver
