// Propagation macros shaped like newer Abseil's (ours, 20220623, lacks them).
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define TXN_CONCAT_INNER_(a, b) a##b
#define TXN_CONCAT_(a, b) TXN_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function if `expr` is not OK.
#define TXN_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::absl::Status txn_status_ = (expr);       \
    if (!txn_status_.ok()) return txn_status_; \
  } while (0)

// `TXN_ASSIGN_OR_RETURN(auto x, F());` binds the value of a StatusOr or returns its error.
#define TXN_ASSIGN_OR_RETURN(lhs, expr) \
  TXN_ASSIGN_OR_RETURN_IMPL_(TXN_CONCAT_(txn_statusor_, __LINE__), lhs, expr)
#define TXN_ASSIGN_OR_RETURN_IMPL_(var, lhs, expr) \
  auto var = (expr);                               \
  if (!var.ok()) return std::move(var).status();   \
  lhs = std::move(var).value()
