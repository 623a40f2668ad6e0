// What the files of TransactionDriver share and nothing else includes: the context of one 2PC
// transaction (a TransactionDriver::TxnContext) and small helpers. The driver is split by
// concern: transaction_driver.cc (contexts, dispatch, recovery, deadlock hooks),
// two_phase_effects.cc (the core's effects carried out), transaction_front_end.cc (Run / Begin /
// Execute / Commit / Rollback: routing, admission, idempotency, interactive sessions) and
// transaction_catalog.cc (lookups, GetDecision, the admin list / resolve / stats / GC, metrics).
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

struct TransactionDriver::TxnContext {
  std::mutex mu;
  core::TwoPhaseTxn txn ABSL_GUARDED_BY(mu);
  v1::Protocol protocol = v1::PROTOCOL_TWO_PHASE;
  bool interactive = false;
  // Run only: each branch's operations, sent with its Prepare / CommitOnePhase.
  std::vector<v1::Branch> run_branches ABSL_GUARDED_BY(mu);
  // Interactive only: branch index of each participant touched so far.
  std::unordered_map<std::string, uint32_t> branch_of ABSL_GUARDED_BY(mu);
  std::vector<OutcomeReply> waiters ABSL_GUARDED_BY(mu);
  bool commit_requested ABSL_GUARDED_BY(mu) = false;
  int executes_in_flight ABSL_GUARDED_BY(mu) = 0;
  // Execute / Prepare / CommitOnePhase calls in flight (the deadlock detector takes a reported
  // wait only while its call is here).
  CallsInFlight calls ABSL_GUARDED_BY(mu);
  int64_t prepare_timeout_ms = 0;
  TxnTimes times ABSL_GUARDED_BY(mu);
  RequestIdentity identity;
  // The sequence part of its id: larger = younger (deadlock victims are the youngest).
  uint64_t start_order = 0;
  // Begin's timeout_ms as the client asked (0: the default).
  int64_t requested_timeout_ms = 0;
  // Interactive: when its deadline passes (clock ms); an Execute call gets no more time than
  // is left, and the agent bounds the statement by it (statement_timeout / max_statement_time).
  int64_t deadline_unix_ms = 0;
  // For the phase latency metrics: since the commit was asked for, since the decision.
  std::optional<common::Stopwatch> since_commit_requested ABSL_GUARDED_BY(mu);
  std::optional<common::Stopwatch> since_decided ABSL_GUARDED_BY(mu);
};

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
