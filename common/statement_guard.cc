#include "common/statement_guard.h"

#include <initializer_list>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace txn::common {
namespace {

using Kind = SqlToken::Kind;

absl::Status Refuse(absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("statement refused: ", why));
}

bool OneOf(const std::string& w, std::initializer_list<absl::string_view> set) {
  for (absl::string_view s : set) {
    if (w == s) return true;
  }
  return false;
}

bool StartsWithOneOf(const std::string& w, std::initializer_list<absl::string_view> set) {
  for (absl::string_view s : set) {
    if (absl::StartsWith(w, s)) return true;
  }
  return false;
}

// The tokens of one statement, with the questions the rules ask of them.
class Statement {
 public:
  explicit Statement(const std::vector<SqlToken>& tokens) : t_(tokens) {}

  size_t size() const { return t_.size(); }
  // The k-th token if it is a bare word (a keyword), else "".
  std::string Word(size_t k) const {
    return k < t_.size() && t_[k].kind == Kind::kWord ? t_[k].text : std::string();
  }
  // The k-th token if it is a word or a quoted name, else "".
  std::string Name(size_t k) const {
    return k < t_.size() && (t_[k].kind == Kind::kWord || t_[k].kind == Kind::kQuotedName)
               ? t_[k].text
               : std::string();
  }
  bool Symbol(size_t k, absl::string_view s) const {
    return k < t_.size() && t_[k].kind == Kind::kSymbol && t_[k].text == s;
  }
  // Names called as functions: a word or quoted name right before `(` (comments and spaces
  // between do not count; schema qualification does not hide the name).
  std::vector<std::string> CalledNames() const {
    std::vector<std::string> out;
    for (size_t k = 0; k + 1 < t_.size(); ++k) {
      if (Symbol(k + 1, "(") && !Name(k).empty()) out.push_back(t_[k].text);
    }
    return out;
  }
  // First index >= from where a bare word equals `w`, or size().
  size_t FindWord(absl::string_view w, size_t from = 0) const {
    for (size_t k = from; k < t_.size(); ++k) {
      if (t_[k].kind == Kind::kWord && t_[k].text == w) return k;
    }
    return t_.size();
  }

 private:
  const std::vector<SqlToken>& t_;
};

// What every dialect refuses: the shape of the text and transaction control.
absl::Status CheckCommon(const SqlLex& lex) {
  if (lex.executable_comment) {
    return Refuse("MySQL executable comments (/*! ... */) are refused: the server runs their text");
  }
  if (lex.unicode_escapes) return Refuse("Unicode-escape strings and names (U&'...') are refused");
  if (lex.string_continuation) {
    return Refuse("a string constant continued after a line break is refused (write it as one)");
  }
  if (lex.unterminated) return Refuse("unterminated quote or comment");
  if (lex.more_after_semicolon) return Refuse("more than one statement in one text");
  Statement st(lex.tokens);
  if (st.size() == 0) return Refuse("empty statement");
  for (size_t k = 0; k < st.size(); ++k) {
    // Commit markers, saga barriers and 3PC records: a client that could write them could
    // forge the proof of another transaction's outcome.
    if (absl::StartsWith(st.Name(k), "TXCOORD_")) {
      return Refuse("the agent's own tables (txcoord_*) are not for client statements");
    }
  }
  const std::string w0 = st.Word(0);
  if (OneOf(w0, {"BEGIN", "START", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "END", "ABORT",
                 "XA"})) {
    return Refuse(absl::StrCat("transaction control (", w0, ") is the coordinator's"));
  }
  if (w0 == "PREPARE" && st.Word(1) == "TRANSACTION") {
    return Refuse("transaction control (PREPARE TRANSACTION) is the coordinator's");
  }
  if (w0 == "SET") {
    std::string w1 = st.Word(1);
    size_t k = 1;
    if (OneOf(w1, {"SESSION", "GLOBAL", "LOCAL", "PERSIST"})) w1 = st.Word(++k);
    while (st.Symbol(k, "@")) w1 = st.Word(++k);  // SET @@autocommit, SET @@session.x
    if (st.Symbol(k + 1, ".")) w1 = st.Word(k + 2);
    if (OneOf(w1, {"AUTOCOMMIT", "TRANSACTION", "CHARACTERISTICS", "COMPLETION_TYPE"})) {
      return Refuse(absl::StrCat("SET ", w1, " changes transaction control"));
    }
  }
  return absl::OkStatus();
}

// PostgreSQL settings a client may change with SET LOCAL (gone when its transaction ends):
// planner and output formatting only. Everything else, e.g. role, search_path (the agent's own
// statements run in the same transaction), statement_timeout and lock_timeout (the agent's
// limits), standard_conforming_strings (how the policy reads later text), is refused.
bool IsSettablePostgresVariable(const std::string& v) {
  return OneOf(v, {"WORK_MEM", "TIMEZONE", "DATESTYLE", "INTERVALSTYLE", "EXTRA_FLOAT_DIGITS",
                   "BYTEA_OUTPUT", "RANDOM_PAGE_COST", "SEQ_PAGE_COST", "CPU_TUPLE_COST",
                   "CPU_INDEX_TUPLE_COST", "CPU_OPERATOR_COST", "EFFECTIVE_CACHE_SIZE", "JIT",
                   "PLAN_CACHE_MODE", "CONSTRAINT_EXCLUSION", "FROM_COLLAPSE_LIMIT",
                   "JOIN_COLLAPSE_LIMIT", "GEQO", "MAX_PARALLEL_WORKERS_PER_GATHER",
                   "PARALLEL_SETUP_COST", "PARALLEL_TUPLE_COST", "CURSOR_TUPLE_FRACTION",
                   "DEFAULT_STATISTICS_TARGET"}) ||
         absl::StartsWith(v, "ENABLE_");
}

// Object kinds whose CREATE / ALTER / DROP defines code the server runs later, changes who may
// do what, or reaches outside this database.
bool IsDangerousPostgresObject(const std::string& w) {
  return OneOf(w, {"FUNCTION", "PROCEDURE", "ROUTINE", "LANGUAGE", "EXTENSION", "TRIGGER",
                   "EVENT", "RULE", "SERVER", "FOREIGN", "USER", "ROLE", "GROUP", "DATABASE",
                   "TABLESPACE", "SUBSCRIPTION", "PUBLICATION", "CAST", "OPERATOR", "AGGREGATE",
                   "CONVERSION", "TRANSFORM", "ACCESS", "SYSTEM", "DEFAULT", "LARGE", "TEXT",
                   "POLICY", "SCHEMA", "OWNED"});
}

absl::Status CheckPostgresFunction(const std::string& f) {
  if (f == "SET_CONFIG") {
    return Refuse("set_config() changes session settings (even is_local=true can change role)");
  }
  if (OneOf(f, {"PG_READ_FILE", "PG_READ_BINARY_FILE", "PG_STAT_FILE", "PG_FILE_WRITE",
                "PG_FILE_RENAME", "PG_FILE_UNLINK", "PG_FILE_SYNC", "PG_LOGDIR_LS", "LO_IMPORT",
                "LO_EXPORT"}) ||
      absl::StartsWith(f, "PG_LS_")) {
    return Refuse(absl::StrCat(f, "() reads or writes server files"));
  }
  if (absl::StartsWith(f, "DBLINK")) return Refuse(absl::StrCat(f, "() reaches another database"));
  if (StartsWithOneOf(f, {"PG_ADVISORY_LOCK", "PG_TRY_ADVISORY_LOCK", "PG_ADVISORY_UNLOCK"})) {
    return Refuse(absl::StrCat(f, "() takes a session lock that outlives the transaction "
                                  "(use pg_advisory_xact_lock)"));
  }
  if (OneOf(f, {"QUERY_TO_XML", "QUERY_TO_XMLSCHEMA", "QUERY_TO_XML_AND_XMLSCHEMA",
                "CURSOR_TO_XML", "CURSOR_TO_XMLSCHEMA", "DATABASE_TO_XML",
                "DATABASE_TO_XMLSCHEMA", "DATABASE_TO_XML_AND_XMLSCHEMA", "SCHEMA_TO_XML",
                "SCHEMA_TO_XMLSCHEMA", "SCHEMA_TO_XML_AND_XMLSCHEMA", "TS_STAT", "TS_REWRITE"})) {
    return Refuse(absl::StrCat(f, "() runs SQL text given in a string"));
  }
  if (OneOf(f, {"PG_TERMINATE_BACKEND", "PG_CANCEL_BACKEND", "PG_RELOAD_CONF",
                "PG_ROTATE_LOGFILE", "PG_PROMOTE", "PG_SWITCH_WAL", "PG_CREATE_RESTORE_POINT",
                "PG_BACKUP_START", "PG_BACKUP_STOP", "PG_START_BACKUP", "PG_STOP_BACKUP",
                "PG_NOTIFY", "PG_IMPORT_SYSTEM_COLLATIONS", "PG_LOGICAL_EMIT_MESSAGE",
                "PG_WAL_REPLAY_PAUSE", "PG_WAL_REPLAY_RESUME", "PG_DROP_REPLICATION_SLOT",
                "PG_COPY_PHYSICAL_REPLICATION_SLOT", "PG_COPY_LOGICAL_REPLICATION_SLOT"}) ||
      StartsWithOneOf(f, {"PG_CREATE_", "PG_REPLICATION_ORIGIN", "PG_LOGICAL_SLOT_",
                          "PG_STAT_RESET"})) {
    return Refuse(absl::StrCat(f, "() acts on the server, not on this transaction's data"));
  }
  return absl::OkStatus();
}

absl::Status CheckPostgres(const Statement& st) {
  const std::string w0 = st.Word(0);
  if (w0 == "COPY") return Refuse("COPY reads and writes server files and runs programs");
  if (w0 == "DO") return Refuse("DO runs an anonymous code block");
  if (w0 == "LOAD") return Refuse("LOAD loads a shared library into the server");
  if (OneOf(w0, {"LISTEN", "NOTIFY", "UNLISTEN"})) {
    return Refuse(absl::StrCat(w0, " cannot be used in a prepared transaction"));
  }
  if (OneOf(w0, {"PREPARE", "EXECUTE", "DEALLOCATE", "DECLARE", "RESET", "DISCARD"})) {
    return Refuse(absl::StrCat(w0, " makes or changes session state that outlives the "
                                   "transaction"));
  }
  if (OneOf(w0, {"VACUUM", "CLUSTER", "CHECKPOINT", "REINDEX", "SECURITY", "REASSIGN", "GRANT",
                 "REVOKE", "IMPORT"})) {
    return Refuse(absl::StrCat(w0, " is an administrator's statement"));
  }
  if (w0 == "LOCK") {
    return Refuse("LOCK TABLE would hold a table lock through the prepared state; lock rows "
                  "(SELECT ... FOR UPDATE) instead");
  }
  if (w0 == "SET") {
    std::string scope = st.Word(1);
    if (scope == "CONSTRAINTS") return absl::OkStatus();  // ends with the transaction
    if (scope != "LOCAL") {
      return Refuse("SET outlives the transaction (the agent's pooled session would keep it); "
                    "use SET LOCAL");
    }
    std::string var = st.Name(2);
    if (var == "TIME" && st.Word(3) == "ZONE") var = "TIMEZONE";
    if (st.Symbol(3, ".") || !IsSettablePostgresVariable(var)) {
      return Refuse(absl::StrCat("SET LOCAL ", var.empty() ? "of this" : var,
                                 " is not allowed (only planner and formatting settings)"));
    }
  }
  if (OneOf(w0, {"CREATE", "ALTER", "DROP"})) {
    // The object kind follows the verb and its modifiers: CREATE OR REPLACE FUNCTION,
    // CREATE GLOBAL TEMP TABLE, ALTER DEFAULT PRIVILEGES, DROP EVENT TRIGGER.
    size_t k = 1;
    for (; k < st.size(); ++k) {
      const std::string w = st.Word(k);
      if (w == "TEMP" || w == "TEMPORARY") {
        return Refuse("temporary tables cannot be used in a prepared transaction");
      }
      if (!OneOf(w, {"OR", "REPLACE", "GLOBAL", "LOCAL", "UNLOGGED", "CONSTRAINT", "TRUSTED",
                     "PROCEDURAL", "UNIQUE", "MATERIALIZED", "RECURSIVE"})) {
        break;
      }
    }
    if (IsDangerousPostgresObject(st.Word(k))) {
      return Refuse(absl::StrCat(w0, " ", st.Word(k), " is an administrator's statement"));
    }
  }
  // SELECT ... INTO TEMP makes a temporary table (INSERT INTO temp names a table called temp).
  if (st.FindWord("INSERT") == st.size() && st.FindWord("MERGE") == st.size()) {
    for (size_t k = st.FindWord("INTO"); k < st.size(); k = st.FindWord("INTO", k + 1)) {
      if (OneOf(st.Word(k + 1), {"TEMP", "TEMPORARY"}) ||
          (OneOf(st.Word(k + 1), {"LOCAL", "GLOBAL"}) &&
           OneOf(st.Word(k + 2), {"TEMP", "TEMPORARY"}))) {
        return Refuse("temporary tables cannot be used in a prepared transaction");
      }
    }
  }
  // A write to the system catalogs changes the server, not this transaction's data; pg_settings
  // is writable by every role and its rule calls set_config(..., false).
  const bool writes = OneOf(w0, {"INSERT", "UPDATE", "DELETE", "MERGE", "TRUNCATE"}) ||
                      st.FindWord("INSERT") < st.size() || st.FindWord("UPDATE") < st.size() ||
                      st.FindWord("DELETE") < st.size() || st.FindWord("MERGE") < st.size();
  for (size_t k = 0; k < st.size(); ++k) {
    const std::string name = st.Name(k);
    if (OneOf(name, {"PG_AUTHID", "PG_SHADOW", "PG_USER_MAPPING", "PG_USER_MAPPINGS"})) {
      return Refuse(absl::StrCat(name, " holds credentials"));
    }
    if (name == "PG_SETTINGS") return Refuse("pg_settings changes session settings");
    if (writes && (absl::StartsWith(name, "PG_") || name == "INFORMATION_SCHEMA")) {
      return Refuse(absl::StrCat("writing to the system catalog (", name, ") is refused"));
    }
  }
  for (const std::string& f : st.CalledNames()) {
    if (absl::Status s = CheckPostgresFunction(f); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status CheckMysql(const Statement& st) {
  const std::string w0 = st.Word(0);
  if (w0 == "PREPARE") return Refuse("PREPARE ... FROM runs SQL text given in a string");
  if (OneOf(w0, {"CREATE", "ALTER", "DROP", "RENAME", "TRUNCATE", "LOCK", "UNLOCK", "GRANT",
                 "REVOKE", "ANALYZE", "OPTIMIZE", "REPAIR", "FLUSH", "INSTALL", "UNINSTALL"})) {
    return Refuse(absl::StrCat(w0, " commits implicitly in MySQL"));
  }
  if (w0 == "CALL") return Refuse("CALL runs a stored procedure, which may end the transaction");
  if (w0 == "LOAD") return Refuse("LOAD DATA / LOAD XML read files");
  if (w0 == "SET") {
    return Refuse("SET changes session state that outlives the transaction (the agent's pooled "
                  "session would keep it)");
  }
  if (OneOf(w0, {"USE", "HANDLER", "EXECUTE", "DEALLOCATE"})) {
    return Refuse(absl::StrCat(w0, " makes or changes session state that outlives the "
                                   "transaction"));
  }
  if (OneOf(w0, {"KILL", "SHUTDOWN", "BINLOG", "CHANGE", "STOP", "RESET", "PURGE", "CACHE",
                 "BACKUP", "RESTART"})) {
    return Refuse(absl::StrCat(w0, " is an administrator's statement"));
  }
  for (size_t k = 0; k < st.size(); ++k) {
    if (st.Symbol(k, ":=")) {
      return Refuse("assigning a user variable (:=) keeps it past the transaction");
    }
    if (OneOf(st.Word(k), {"OUTFILE", "DUMPFILE"})) {
      return Refuse(absl::StrCat("INTO ", st.Word(k), " writes a server file"));
    }
    if (st.Word(k) == "INTO") {
      if (st.Symbol(k + 1, "@")) {
        return Refuse("SELECT ... INTO @variable keeps it past the transaction");
      }
    }
    if (OneOf(st.Name(k), {"MYSQL", "PERFORMANCE_SCHEMA", "SYS"}) && st.Symbol(k + 1, ".")) {
      return Refuse(absl::StrCat("the server's system schema ", st.Name(k), " is refused"));
    }
  }
  for (const std::string& f : st.CalledNames()) {
    if (f == "LOAD_FILE") return Refuse("LOAD_FILE() reads a server file");
    if (OneOf(f, {"GET_LOCK", "RELEASE_LOCK", "RELEASE_ALL_LOCKS"})) {
      return Refuse(absl::StrCat(f, "() is a session lock that outlives the transaction"));
    }
    if (OneOf(f, {"MASTER_POS_WAIT", "MASTER_GTID_WAIT", "SOURCE_POS_WAIT"}) ||
        absl::StartsWith(f, "SYS_")) {
      return Refuse(absl::StrCat(f, "() acts on the server, not on this transaction's data"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckLexed(absl::string_view sql, SqlDialect dialect, bool backslash_escapes,
                        bool double_quote_backslash_escapes) {
  SqlLex lex = LexSql(sql, dialect, backslash_escapes, double_quote_backslash_escapes);
  if (absl::Status s = CheckCommon(lex); !s.ok()) return s;
  Statement st(lex.tokens);
  if (dialect == SqlDialect::kPostgres) return CheckPostgres(st);
  if (dialect == SqlDialect::kMysql) return CheckMysql(st);
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckStatement(absl::string_view sql, SqlDialect dialect) {
  if (sql.size() > kMaxStatementBytes) {
    return absl::InvalidArgumentError(absl::StrCat("statement refused: ", sql.size(),
                                                   " bytes is over the limit of ",
                                                   kMaxStatementBytes, " bytes per statement"));
  }
  if (dialect == SqlDialect::kGeneric) {
    // Refused only if refused under both dialects' rules of reading.
    absl::Status pg = CheckLexed(sql, SqlDialect::kGeneric, false, false);
    if (pg.ok()) return pg;
    SqlLex mysql = LexSql(sql, SqlDialect::kMysql, true);
    mysql.executable_comment = false;  // PostgreSQL reads those as comments
    if (CheckCommon(mysql).ok()) return absl::OkStatus();
    return pg;
  }
  // The server's reading of backslashes depends on a setting (standard_conforming_strings,
  // sql_mode NO_BACKSLASH_ESCAPES) the client cannot change but the operator can: the text
  // must pass under both.
  const bool usual = dialect == SqlDialect::kMysql;
  if (absl::Status s = CheckLexed(sql, dialect, usual, usual); !s.ok()) return s;
  if (absl::Status s = CheckLexed(sql, dialect, !usual, !usual); !s.ok()) return s;
  // MySQL with sql_mode ANSI_QUOTES: '...' keeps its escapes, "..." is a name without them.
  if (dialect == SqlDialect::kMysql) return CheckLexed(sql, dialect, true, false);
  return absl::OkStatus();
}

absl::Status CheckParameterCount(size_t count) {
  if (count <= kMaxStatementParameters) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("statement refused: ", count,
                                                 " parameters is over the limit of ",
                                                 kMaxStatementParameters, " per statement"));
}

}  // namespace txn::common
