// StatementGuard: the statement policy. It refuses, before a client's statement reaches a
// database, what would break the atomic-commit protocol or let one client reach past its own
// transaction, and it holds even when the agent's database user is a superuser:
//
//  - more than one statement in a text; an unterminated string, name or comment; MySQL
//    executable comments (/*! */); PostgreSQL Unicode-escape strings (U&'...'); a text over
//    kMaxStatementBytes;
//  - transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, PREPARE, XA, SET TRANSACTION,
//    SET autocommit, ...) and what makes a prepare impossible or commits implicitly
//    (PostgreSQL temporary tables and LISTEN/NOTIFY, MySQL DDL and LOCK TABLES);
//  - running a program or touching server files (COPY, DO, LOAD, pg_read_file, lo_export,
//    LOAD_FILE, INTO OUTFILE, ...), defining code the server would run later (CREATE FUNCTION,
//    TRIGGER, RULE, EXTENSION, LANGUAGE, ...), running SQL text hidden in a string
//    (query_to_xml, ts_stat, ...);
//  - session state that outlives the transaction: SET other than PostgreSQL's SET LOCAL of a
//    listed planner or formatting setting, set_config, RESET, DISCARD, PREPARE/EXECUTE,
//    cursors, session advisory locks, MySQL user-variable assignment, GET_LOCK, HANDLER, USE;
//  - reaching another database or the server itself: dblink, foreign servers, MySQL's system
//    schemas, roles and grants, pg_terminate_backend, KILL, ...;
//  - the agent's own tables (txcoord_*: commit markers, saga barriers, 3PC records), whose rows
//    prove transactions' outcomes.
//
// The lexer (sql_lexer.h) reads the text the way the server does; where a server setting
// changes that (backslash escapes), the text is checked both ways and must pass both. A deny
// list cannot know every function a superuser may call: the agent's --run-as-role (PostgreSQL)
// and a database user without FILE/SUPER (MySQL) are the boundary this policy backs up, and the
// agent warns when its user is a superuser. Session state the policy does not know of is cleared
// by resetting each pooled session before reuse (DISCARD ALL, mysql_reset_connection).
//
// Thread-safe (pure functions).
#pragma once

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/sql_lexer.h"

namespace txn::common {

inline constexpr size_t kMaxStatementBytes = 1 << 20;
// Both wire protocols count parameters in 16 bits.
inline constexpr size_t kMaxStatementParameters = 65535;

// OK, or INVALID_ARGUMENT "statement refused: <why>". kGeneric (the coordinator, before it
// knows the database) refuses only what every dialect refuses: one statement, no transaction
// control; the agent then applies its database's full policy.
absl::Status CheckStatement(absl::string_view sql, SqlDialect dialect);

// OK, or INVALID_ARGUMENT naming the limit when `count` is over kMaxStatementParameters.
absl::Status CheckParameterCount(size_t count);

}  // namespace txn::common
