// StatementAllowList: `txagent --statements FILE`, the only statements an agent runs when it is
// given. The file is YAML, one entry per statement:
//
//   debit:
//     sql: UPDATE acct SET bal = bal - $1 WHERE id = $2 AND bal >= $1
//     params: 2
//
// An operation then names a statement (`Sql.name`, with `text` empty) and brings its parameters;
// raw SQL is PERMISSION_DENIED. Every listed statement must pass the database's statement policy
// (common/statement_guard.h) when the file is loaded, so an operator's typo cannot open what the
// policy closes. Without a list, named operations are FAILED_PRECONDITION and raw SQL runs under
// the policy. Immutable once loaded: thread-safe.
#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/sql_lexer.h"
#include "txn/v1/common.pb.h"

namespace txn::agent {

class StatementAllowList {
 public:
  // INVALID_ARGUMENT naming the entry that is malformed or refused by the policy, or when there
  // is none; NOT_FOUND when `path` cannot be read.
  static absl::StatusOr<StatementAllowList> Load(const std::string& path,
                                                 common::SqlDialect dialect);
  static absl::StatusOr<StatementAllowList> Parse(absl::string_view yaml,
                                                  common::SqlDialect dialect);

  // `op` with its named statement's text filled in. PERMISSION_DENIED for raw SQL, NOT_FOUND for
  // an unknown name, INVALID_ARGUMENT when the parameter count differs. A MongoDB operation is
  // returned as it is.
  absl::StatusOr<v1::Operation> Resolve(const v1::Operation& op) const;
  size_t size() const { return statements_.size(); }

 private:
  struct Statement {
    std::string sql;
    int params = 0;
  };
  std::map<std::string, Statement> statements_;
};

// What a branch runs for `op`: Resolve() with a list; without one, `op` itself, or
// FAILED_PRECONDITION when it names a statement.
absl::StatusOr<v1::Operation> ResolveOperation(const StatementAllowList* list,
                                               const v1::Operation& op);

}  // namespace txn::agent
