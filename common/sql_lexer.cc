#include "common/sql_lexer.h"

#include <cctype>

#include "absl/strings/ascii.h"

namespace txn::common {
namespace {

bool IsSpace(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }
bool IsDigit(char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }
// Letters, digits, `_` and any non-ASCII byte (both servers take UTF-8 letters in names).
bool IsNameStart(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}
bool IsNamePart(char c) { return IsNameStart(c) || IsDigit(c) || c == '$'; }

class Lexer {
 public:
  Lexer(absl::string_view s, SqlDialect dialect, bool backslash_escapes,
        bool double_quote_backslash)
      : s_(s),
        mysql_(dialect == SqlDialect::kMysql),
        backslash_(backslash_escapes),
        double_quote_backslash_(double_quote_backslash) {}

  SqlLex Run() {
    while (i_ < s_.size() && !Done()) Step();
    return std::move(out_);
  }

 private:
  bool Done() const {
    return out_.more_after_semicolon || out_.unterminated || out_.executable_comment ||
           out_.string_continuation;
  }

  void Step() {
    const char c = s_[i_];
    const char next = i_ + 1 < s_.size() ? s_[i_ + 1] : '\0';
    if (IsSpace(c)) {
      if (c == '\n' || c == '\r') newline_in_gap_ = true;
      ++i_;
      gap_ = true;
    } else if (c == '-' && next == '-' && (!mysql_ || i_ + 2 >= s_.size() ||
                                           IsSpace(s_[i_ + 2]) ||
                                           std::iscntrl(static_cast<unsigned char>(s_[i_ + 2])))) {
      SkipLine();
    } else if (mysql_ && c == '#') {
      SkipLine();
    } else if (c == '/' && next == '*') {
      SkipBlockComment();
    } else if (c == ';') {
      ++i_;
      after_semicolon_ = true;
    } else if (after_semicolon_) {
      out_.more_after_semicolon = true;
    } else if (c == '\'') {
      if (!mysql_ && newline_in_gap_ && !out_.tokens.empty() &&
          out_.tokens.back().kind == SqlToken::Kind::kString) {
        out_.string_continuation = true;
        return;
      }
      String('\'', backslash_ || EscapeStringPrefix());
    } else if (c == '"') {
      if (mysql_) {
        // A string, or a name under sql_mode ANSI_QUOTES: the policy sees it as a name too.
        QuotedName('"', double_quote_backslash_);
      } else {
        QuotedName('"', false);
      }
    } else if (mysql_ && c == '`') {
      QuotedName('`', false);
    } else if (!mysql_ && c == '$' && IsDigit(next)) {
      size_t j = i_ + 1;
      while (j < s_.size() && IsDigit(s_[j])) ++j;
      Push(SqlToken::Kind::kParameter, s_.substr(i_, j - i_));
      i_ = j;
    } else if (!mysql_ && c == '$' && (next == '$' || IsNameStart(next))) {
      DollarString();
    } else if (mysql_ && c == '?') {
      Push(SqlToken::Kind::kParameter, "?");
      ++i_;
    } else if (IsDigit(c)) {
      const size_t j = NumberEnd(i_);
      Push(SqlToken::Kind::kNumber, s_.substr(i_, j - i_));
      i_ = j;
    } else if (IsNameStart(c)) {
      size_t j = i_;
      while (j < s_.size() && IsNamePart(s_[j])) ++j;
      Push(SqlToken::Kind::kWord, absl::AsciiStrToUpper(s_.substr(i_, j - i_)));
      i_ = j;
    } else if (c == ':' && (next == '=' || (next == ':' && !mysql_))) {
      Push(SqlToken::Kind::kSymbol, s_.substr(i_, 2));
      i_ += 2;
    } else {
      Push(SqlToken::Kind::kSymbol, s_.substr(i_, 1));
      ++i_;
    }
  }

  void Push(SqlToken::Kind kind, absl::string_view text) {
    out_.tokens.push_back(SqlToken{kind, std::string(text), !gap_ && !out_.tokens.empty()});
    gap_ = false;
    newline_in_gap_ = false;
  }

  // Where a number starting at `i` ends, as both servers read it: 0x.. / 0b.. digits, or digits,
  // a fraction and an exponent. A letter right after it starts the next token (`1e1INTO` is
  // 1e1 then INTO), so a keyword cannot hide inside a "number".
  size_t NumberEnd(size_t i) const {
    auto digits = [&](size_t j, auto is_digit) {
      while (j < s_.size() && is_digit(s_[j])) ++j;
      return j;
    };
    if (s_[i] == '0' && i + 1 < s_.size() && (s_[i + 1] == 'x' || s_[i + 1] == 'X')) {
      return digits(i + 2, [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
    }
    if (s_[i] == '0' && i + 1 < s_.size() && (s_[i + 1] == 'b' || s_[i + 1] == 'B')) {
      return digits(i + 2, [](char c) { return c == '0' || c == '1'; });
    }
    size_t j = digits(i, IsDigit);
    if (j < s_.size() && s_[j] == '.') j = digits(j + 1, IsDigit);
    if (j < s_.size() && (s_[j] == 'e' || s_[j] == 'E')) {
      size_t k = j + 1;
      if (k < s_.size() && (s_[k] == '+' || s_[k] == '-')) ++k;
      if (k < s_.size() && IsDigit(s_[k])) j = digits(k, IsDigit);
    }
    return j;
  }

  // A line comment ends at a line break: \n, or \r, where PostgreSQL ends it too (stopping
  // early only ever shows the policy more text, never less).
  void SkipLine() {
    while (i_ < s_.size() && s_[i_] != '\n' && s_[i_] != '\r') ++i_;
    gap_ = true;
    newline_in_gap_ = true;
  }

  void SkipBlockComment() {
    const size_t start = i_;
    if (mysql_) {
      absl::string_view rest = s_.substr(i_ + 2);
      if (!rest.empty() && (rest[0] == '!' || (rest.size() > 1 && (rest[0] == 'M' ||
                                                                   rest[0] == 'm') &&
                                                rest[1] == '!'))) {
        out_.executable_comment = true;
        return;
      }
      size_t end = s_.find("*/", i_ + 2);
      if (end == absl::string_view::npos) {
        out_.unterminated = true;
        return;
      }
      i_ = end + 2;
    } else {
      // PostgreSQL comments nest.
      int depth = 0;
      while (i_ + 1 < s_.size()) {
        if (s_[i_] == '/' && s_[i_ + 1] == '*') {
          ++depth;
          i_ += 2;
        } else if (s_[i_] == '*' && s_[i_ + 1] == '/') {
          i_ += 2;
          if (--depth == 0) break;
        } else {
          ++i_;
        }
      }
      if (depth != 0) {
        i_ = start;
        out_.unterminated = true;
        return;
      }
    }
    gap_ = true;
  }

  // PostgreSQL: E'...' (the E right before the quote) takes backslash escapes; U&'...' is
  // reported.
  bool EscapeStringPrefix() {
    if (mysql_ || out_.tokens.empty() || gap_) return false;
    const SqlToken& prev = out_.tokens.back();
    if (prev.kind == SqlToken::Kind::kWord && prev.text == "E") return true;
    if (prev.kind == SqlToken::Kind::kSymbol && prev.text == "&") NoteUnicodePrefix();
    return false;
  }

  void NoteUnicodePrefix() {
    const size_t n = out_.tokens.size();
    if (n >= 2 && out_.tokens[n - 1].adjacent && out_.tokens[n - 2].kind == SqlToken::Kind::kWord &&
        out_.tokens[n - 2].text == "U") {
      out_.unicode_escapes = true;
    }
  }

  // Returns the index after the closing quote, or npos; `body` gets the text between.
  size_t Quoted(char quote, bool backslash_escapes, std::string* body) {
    for (size_t j = i_ + 1; j < s_.size(); ++j) {
      if (backslash_escapes && s_[j] == '\\') {
        if (j + 1 < s_.size()) body->push_back(s_[j + 1]);
        ++j;
        continue;
      }
      if (s_[j] == quote) {
        if (j + 1 < s_.size() && s_[j + 1] == quote) {
          body->push_back(quote);
          ++j;
          continue;
        }
        return j + 1;
      }
      body->push_back(s_[j]);
    }
    return absl::string_view::npos;
  }

  void String(char quote, bool backslash_escapes) {
    std::string body;
    size_t end = Quoted(quote, backslash_escapes, &body);
    if (end == absl::string_view::npos) {
      out_.unterminated = true;
      return;
    }
    Push(SqlToken::Kind::kString, "");
    i_ = end;
  }

  void QuotedName(char quote, bool backslash_escapes) {
    if (!mysql_ && !out_.tokens.empty() && !gap_ && out_.tokens.back().text == "&") {
      NoteUnicodePrefix();
    }
    std::string body;
    size_t end = Quoted(quote, backslash_escapes, &body);
    if (end == absl::string_view::npos) {
      out_.unterminated = true;
      return;
    }
    Push(SqlToken::Kind::kQuotedName, absl::AsciiStrToUpper(body));
    i_ = end;
  }

  void DollarString() {
    size_t j = i_ + 1;
    while (j < s_.size() && IsNamePart(s_[j]) && s_[j] != '$') ++j;
    if (j >= s_.size() || s_[j] != '$') {
      Push(SqlToken::Kind::kSymbol, "$");  // not a tag; the server will refuse it
      ++i_;
      return;
    }
    absl::string_view tag = s_.substr(i_, j - i_ + 1);
    size_t close = s_.find(tag, j + 1);
    if (close == absl::string_view::npos) {
      out_.unterminated = true;
      return;
    }
    Push(SqlToken::Kind::kString, "");
    i_ = close + tag.size();
  }

  const absl::string_view s_;
  const bool mysql_;
  const bool backslash_;
  const bool double_quote_backslash_;
  size_t i_ = 0;
  bool gap_ = false;             // whitespace or a comment since the last token
  bool newline_in_gap_ = false;  // ... with a line break in it
  bool after_semicolon_ = false;
  SqlLex out_;
};

}  // namespace

SqlLex LexSql(absl::string_view sql, SqlDialect dialect, bool backslash_escapes,
              bool double_quote_backslash_escapes) {
  return Lexer(sql, dialect, backslash_escapes, double_quote_backslash_escapes).Run();
}

}  // namespace txn::common
