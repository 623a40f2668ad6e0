#include "common/statement_guard.h"

#include <cctype>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace txn::common {
namespace {

struct Scan {
  std::vector<std::string> words;  // first keywords of the statement, upper-cased
  bool more_after_semicolon = false;
  bool unterminated = false;
};

bool IsWordChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Skips a quoted run starting at s[i] == quote; returns the index after it, or npos.
size_t SkipQuoted(absl::string_view s, size_t i, char quote, bool backslash_escapes) {
  for (size_t j = i + 1; j < s.size(); ++j) {
    if (backslash_escapes && s[j] == '\\') {
      ++j;
      continue;
    }
    if (s[j] == quote) {
      if (j + 1 < s.size() && s[j + 1] == quote) {
        ++j;
        continue;
      }
      return j + 1;
    }
  }
  return absl::string_view::npos;
}

Scan Lex(absl::string_view s, SqlDialect dialect) {
  Scan out;
  bool after_semicolon = false;
  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (c == '-' && i + 1 < s.size() && s[i + 1] == '-') {
      while (i < s.size() && s[i] != '\n') ++i;
    } else if (dialect == SqlDialect::kMysql && c == '#') {
      while (i < s.size() && s[i] != '\n') ++i;
    } else if (c == '/' && i + 1 < s.size() && s[i + 1] == '*') {
      size_t end = s.find("*/", i + 2);
      if (end == absl::string_view::npos) {
        out.unterminated = true;
        return out;
      }
      i = end + 2;
    } else if (c == ';') {
      after_semicolon = true;
      ++i;
    } else {
      if (after_semicolon) {
        out.more_after_semicolon = true;
        return out;
      }
      if (c == '\'' || c == '"' || (dialect != SqlDialect::kPostgres && c == '`')) {
        size_t next = SkipQuoted(s, i, c, dialect == SqlDialect::kMysql && c != '`');
        if (next == absl::string_view::npos) {
          out.unterminated = true;
          return out;
        }
        out.words.push_back("<quoted>");
        i = next;
      } else if (dialect == SqlDialect::kPostgres && c == '$' && i + 1 < s.size() &&
                 !std::isdigit(static_cast<unsigned char>(s[i + 1]))) {
        size_t tag_end = s.find('$', i + 1);
        if (tag_end == absl::string_view::npos) {
          out.unterminated = true;
          return out;
        }
        absl::string_view tag = s.substr(i, tag_end - i + 1);
        size_t close = s.find(tag, tag_end + 1);
        if (close == absl::string_view::npos) {
          out.unterminated = true;
          return out;
        }
        out.words.push_back("<quoted>");
        i = close + tag.size();
      } else if (IsWordChar(c)) {
        size_t j = i;
        while (j < s.size() && IsWordChar(s[j])) ++j;
        out.words.push_back(absl::AsciiStrToUpper(s.substr(i, j - i)));
        i = j;
      } else {
        out.words.push_back(std::string(1, c));
        ++i;
      }
    }
  }
  return out;
}

absl::Status Refuse(absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("statement refused: ", why));
}

}  // namespace

absl::Status CheckStatement(absl::string_view sql, SqlDialect dialect) {
  Scan scan = Lex(sql, dialect);
  if (scan.unterminated) return Refuse("unterminated quote or comment");
  if (scan.more_after_semicolon) return Refuse("more than one statement in one text");
  if (scan.words.empty()) return Refuse("empty statement");
  const std::string& w0 = scan.words[0];
  auto word = [&](size_t k) -> std::string {
    return k < scan.words.size() ? scan.words[k] : std::string();
  };
  for (const char* tc :
       {"BEGIN", "START", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "END", "ABORT", "XA"}) {
    if (w0 == tc)
      return Refuse(absl::StrCat("transaction control (", w0, ") is the coordinator's"));
  }
  if (w0 == "PREPARE" && (word(1) == "TRANSACTION" || dialect == SqlDialect::kMysql)) {
    return Refuse("transaction control (PREPARE) is the coordinator's");
  }
  if (w0 == "SET") {
    std::string w1 = word(1);
    if (w1 == "SESSION" || w1 == "GLOBAL" || w1 == "LOCAL") w1 = word(2);
    if (w1 == "@") w1 = word(3);  // SET @@autocommit
    if (w1 == "AUTOCOMMIT" || w1 == "TRANSACTION" || w1 == "CHARACTERISTICS" ||
        w1 == "COMPLETION_TYPE") {
      return Refuse(absl::StrCat("SET ", w1, " changes transaction control"));
    }
  }
  if (w0 == "LISTEN" || w0 == "NOTIFY" || w0 == "UNLISTEN") {
    return Refuse(absl::StrCat(w0, " cannot be used in a prepared transaction"));
  }
  if (dialect == SqlDialect::kPostgres && w0 == "CREATE") {
    for (size_t k = 1; k <= 2; ++k) {
      if (word(k) == "TEMP" || word(k) == "TEMPORARY") {
        return Refuse("temporary tables cannot be used in a prepared transaction");
      }
    }
  }
  if (dialect == SqlDialect::kMysql) {
    for (const char* ddl : {"CREATE", "ALTER", "DROP", "RENAME", "TRUNCATE", "LOCK", "UNLOCK",
                            "GRANT", "REVOKE", "ANALYZE", "OPTIMIZE", "REPAIR", "LOAD", "FLUSH",
                            "INSTALL", "UNINSTALL", "EXECUTE", "DEALLOCATE", "CALL"}) {
      if (w0 == ddl) return Refuse(absl::StrCat(w0, " commits implicitly in MySQL"));
    }
  }
  return absl::OkStatus();
}

}  // namespace txn::common
