// BranchRegistry: running a call's operations on a branch's open transaction, and the checks on
// each result (the caller's expectations, the agent's result limits).
#include "participant-agent/branch_registry.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace txn::agent {

std::string ExpectationFailure(const v1::Operation& op, const v1::ExecuteResult& result) {
  if (op.has_sql() && op.sql().has_expect_rows_affected() &&
      op.sql().expect_rows_affected() != result.rows_affected()) {
    return absl::StrCat("expected ", op.sql().expect_rows_affected(), " rows affected, got ",
                        result.rows_affected());
  }
  if (op.has_mongo() && op.mongo().has_expect_matched() &&
      op.mongo().expect_matched() != result.rows_affected()) {
    return absl::StrCat("expected ", op.mongo().expect_matched(), " documents matched, got ",
                        result.rows_affected());
  }
  return "";
}

std::string BranchRegistry::OverResultLimits(const v1::ExecuteResult& r) const {
  if (r.rows_size() > options_.max_result_rows) {
    return absl::StrCat("its result has ", r.rows_size(), " rows, over the limit of ",
                        options_.max_result_rows, " (--max-result-rows)");
  }
  if (const size_t bytes = r.ByteSizeLong(); bytes > static_cast<size_t>(options_.max_result_bytes)) {
    return absl::StrCat("its result has ", bytes, " bytes, over the limit of ",
                        options_.max_result_bytes, " (--max-result-bytes)");
  }
  return "";
}

absl::Status BranchRegistry::RunOperations(
    Entry& e, const google::protobuf::RepeatedPtrField<v1::Operation>& ops,
    v1::ExecuteBranchResponse* results, std::string* failure) {
  for (int i = 0; i < ops.size(); ++i) {
    absl::StatusOr<v1::Operation> op = ResolveOperation(options_.statements, ops[i]);
    if (!op.ok()) {
      common::LogWarning(absl::StrCat("branch=", e.gid, " operations[", i, "]: ",
                                      op.status().message()));
      return absl::Status(op.status().code(),
                          absl::StrCat("operations[", i, "]: ", op.status().message()));
    }
    common::Stopwatch watch;
    absl::StatusOr<v1::ExecuteResult> r = e.session->Execute(*op);
    steps_.statement->Observe(watch.Seconds());
    if (!r.ok()) {
      if (r.status().code() == absl::StatusCode::kInvalidArgument) {
        if (absl::StartsWith(r.status().message(), "statement refused")) {
          // The policy's refusals are an audit trail: which branch, which rule.
          common::LogWarning(absl::StrCat("branch=", e.gid, " operations[", i, "]: ",
                                          r.status().message()));
        }
        return absl::InvalidArgumentError(
            absl::StrCat("operations[", i, "]: ", r.status().message()));
      }
      *failure = absl::StrCat("operations[", i, "]: ", r.status().message());
      AbortActive(e, *failure);
      if (r.status().code() == absl::StatusCode::kResourceExhausted) {
        // A limit the adapter enforces while it runs the statement (result size, statement
        // timeout): answered like the result limits below.
        return absl::ResourceExhaustedError(
            absl::StrCat(*failure, "; the transaction will abort"));
      }
      return absl::OkStatus();
    }
    if (std::string why = ExpectationFailure(ops[i], *r); !why.empty()) {
      *failure = absl::StrCat("operations[", i, "]: ", why);
      AbortActive(e, *failure);
      return absl::OkStatus();
    }
    if (std::string over = OverResultLimits(*r); !over.empty()) {
      *failure = absl::StrCat("operations[", i, "]: ", over);
      AbortActive(e, *failure);
      return absl::ResourceExhaustedError(absl::StrCat(*failure, "; the transaction will abort"));
    }
    if (results != nullptr) *results->add_results() = std::move(*r);
  }
  return absl::OkStatus();
}

}  // namespace txn::agent
