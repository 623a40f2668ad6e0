// SagaSteps: the agent's side of a saga (DESIGN.md section 2). Each step and each compensation is
// one local transaction on the database that also writes a row of the barrier table
// (txcoord_saga_barrier: primary key (gid, op), plus the origin that wrote it), so that:
//
//   - a retried step runs once: its ("action") row exists, the retry answers DONE, already_done;
//   - a compensation whose step never ran does nothing (null compensation): it inserts the
//     step's ("action") row itself, with origin "compensation", which finds no row;
//   - a step that arrives after its compensation is refused (no hanging): its ("action") row
//     exists with origin "compensation";
//   - a retried compensation runs once: its ("compensation") row exists.
//
// The unique key serializes a step and its compensation racing each other: the second insert
// waits for the first transaction to end. This is the barrier of DTM (github.com/dtm-labs/dtm),
// written against our ResourceAdapter.
//
// Errors: UNAVAILABLE when the database could not be reached or the commit's answer was lost
// (the coordinator retries; the barrier answers for what happened); a failed statement or an
// unmet expectation is LOCAL_RESULT_FAILED with the reason; a malformed ref is INVALID_ARGUMENT.
// Thread-safe.
#pragma once

#include <atomic>
#include <mutex>

#include "absl/status/statusor.h"
#include "participant-agent/resource_adapter.h"
#include "participant-agent/statement_allow_list.h"
#include "txn/v1/participant.pb.h"

namespace txn::agent {

class SagaSteps {
 public:
  // `statements`: the agent's allow-list, or nullptr (statement_allow_list.h).
  explicit SagaSteps(ResourceAdapter* adapter, const StatementAllowList* statements = nullptr)
      : adapter_(adapter), statements_(statements) {}

  absl::StatusOr<v1::ExecuteLocalResponse> ExecuteLocal(const v1::ExecuteLocalRequest& req);
  absl::StatusOr<v1::CompensateResponse> Compensate(const v1::CompensateRequest& req);

 private:
  // Creates the barrier table on first use.
  absl::Status EnsureBarrier();
  // Runs `ops` in `session`. "" when all ran; otherwise the failure (the caller rolls back).
  // UNAVAILABLE when the database went away.
  absl::StatusOr<std::string> Run(BranchSession& session,
                                  const google::protobuf::RepeatedPtrField<v1::Operation>& ops);

  ResourceAdapter* const adapter_;
  const StatementAllowList* const statements_;
  std::mutex barrier_mu_;
  bool barrier_ready_ = false;  // guarded by barrier_mu_
};

}  // namespace txn::agent
