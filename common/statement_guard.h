// StatementGuard: refuses, before a statement reaches a database, SQL that would break the
// atomic-commit protocol: more than one statement in a text; transaction control (BEGIN, COMMIT,
// ROLLBACK, SAVEPOINT, PREPARE TRANSACTION, COMMIT PREPARED, XA ..., SET autocommit / SET
// TRANSACTION); statements that make a prepare impossible (PostgreSQL temporary tables,
// LISTEN/NOTIFY) or commit implicitly (MySQL DDL, LOCK TABLES, ...).
//
// It is a lexer, not a parser: it skips comments, quoted strings, quoted identifiers and
// PostgreSQL dollar-quoted strings, then looks at the leading keywords and at any `;` followed by
// more text. Thread-safe (pure functions).
#pragma once

#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace txn::common {

// kGeneric checks only what holds in every dialect (one statement, no transaction control); the
// coordinator uses it before it knows which database a branch goes to.
enum class SqlDialect { kGeneric, kPostgres, kMysql };

// OK, or INVALID_ARGUMENT with a one-line reason.
absl::Status CheckStatement(absl::string_view sql, SqlDialect dialect);

}  // namespace txn::common
