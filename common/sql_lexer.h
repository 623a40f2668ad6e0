// SqlLexer: splits one SQL text into the tokens a database would see, for the statement policy
// (statement_guard.h). Not a parser: it knows only where comments, strings, quoted names and
// statements begin and end in each dialect, which is what a policy must get exactly right. A
// policy that reads `pg_read_file(` as part of a string when the server reads it as a call is
// no policy, so every place where the dialects (or a server setting) disagree is either lexed the
// server's way or reported as ambiguous:
//
// PostgreSQL: `--` and nested `/* /* */ */` comments; '...' strings ('' escapes), backslash
//   escapes only in E'...' unless `backslash_escapes` (standard_conforming_strings = off);
//   "..." names; $tag$...$tag$ strings, where a `$` inside an identifier (`a$$`) is not a
//   quote; $1 parameters. U&'...' / U&"..." (Unicode escapes) are reported, never decoded.
// MySQL/MariaDB: `#` and `-- ` (dash dash space: `--x` is two minuses) comments; `/* */` not
//   nested; `/*! ... */` and `/*M! ... */` are reported (the server runs their text);
//   '...' and "..." strings with backslash escapes unless `backslash_escapes` is false
//   (sql_mode NO_BACKSLASH_ESCAPES); `name` names; ? parameters; `:=`.
//
// Thread-safe (pure functions).
#pragma once

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace txn::common {

// kGeneric is for callers that do not know the database yet (the coordinator); the lexer then
// uses PostgreSQL's rules, and the policy checks only what holds in every dialect.
enum class SqlDialect { kGeneric, kPostgres, kMysql };

struct SqlToken {
  enum class Kind {
    kWord,        // keyword or bare identifier, upper-cased (ASCII)
    kQuotedName,  // "name" or `name`: the name, upper-cased (ASCII), quotes removed
    kString,      // any string literal (its text is not kept)
    kNumber,
    kParameter,   // $1 or ?
    kSymbol,      // one punctuation character, or `:=` / `::`
  };
  Kind kind;
  std::string text;
  // The token starts right after the previous one, with no space or comment between.
  bool adjacent = false;
};

struct SqlLex {
  std::vector<SqlToken> tokens;  // of the first statement
  bool more_after_semicolon = false;  // a second statement follows a `;`
  bool unterminated = false;          // a string, name or comment never ends
  bool executable_comment = false;    // MySQL /*! */ or /*M! */
  bool unicode_escapes = false;       // PostgreSQL U&'...' or U&"..."
  // PostgreSQL: a string continued after a line break ('a'<newline>'b'), which keeps the first
  // part's escape rules and so reads differently from two strings.
  bool string_continuation = false;
};

// `backslash_escapes`: in '...' strings; `double_quote_backslash_escapes` (MySQL only): in
// "..." (both true by default; ANSI_QUOTES makes "..." a name without escapes).
SqlLex LexSql(absl::string_view sql, SqlDialect dialect, bool backslash_escapes,
              bool double_quote_backslash_escapes);
inline SqlLex LexSql(absl::string_view sql, SqlDialect dialect, bool backslash_escapes) {
  return LexSql(sql, dialect, backslash_escapes, backslash_escapes);
}

}  // namespace txn::common
