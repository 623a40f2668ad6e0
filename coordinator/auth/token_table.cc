#include "coordinator/auth/token_table.h"

#include <openssl/sha.h>

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_text.h"

namespace txn::auth {
namespace {

constexpr size_t kMinTokenLength = 16;

std::string Digest(absl::string_view token) {
  unsigned char out[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), out);
  return std::string(reinterpret_cast<const char*>(out), sizeof out);
}

bool ParseScope(absl::string_view word, Scope* scope) {
  if (word == "client") *scope = Scope::kClient;
  else if (word == "admin") *scope = Scope::kAdmin;
  else if (word == "agent") *scope = Scope::kAgent;
  else return false;
  return true;
}

bool Printable(absl::string_view s) {
  for (char c : s) {
    if (!absl::ascii_isgraph(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<TokenTable> TokenTable::Parse(absl::string_view text) {
  TokenTable table;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat("token file line ", line_number, ": ", why));
    };
    if (fields.size() < 2 || fields.size() > 3) return bad("expected SCOPE TOKEN [NAME]");
    Principal p;
    if (!ParseScope(fields[0], &p.scope)) {
      return bad(absl::StrCat("unknown scope '", fields[0].substr(0, 20),
                              "' (client, admin or agent)"));
    }
    if (fields[1].size() < kMinTokenLength || !Printable(fields[1])) {
      return bad(absl::StrCat("a token must be at least ", kMinTokenLength,
                              " printable characters"));
    }
    std::string digest = Digest(fields[1]);
    p.name = fields.size() == 3
                 ? std::string(fields[2])
                 : absl::StrCat(fields[0], "-", absl::BytesToHexString(digest).substr(0, 12));
    if (!table.by_digest_.emplace(std::move(digest), std::move(p)).second) {
      return bad("this token is listed twice");
    }
  }
  if (table.by_digest_.empty()) return absl::InvalidArgumentError("token file has no tokens");
  return table;
}

absl::StatusOr<TokenTable> TokenTable::Load(const std::string& path) {
  std::optional<std::string> text = common::ReadFileText(path);
  if (!text) return absl::NotFoundError(absl::StrCat("cannot read token file ", path));
  absl::StatusOr<TokenTable> table = Parse(*text);
  if (!table.ok()) {
    return absl::Status(table.status().code(), absl::StrCat(path, ": ", table.status().message()));
  }
  return table;
}

std::optional<Principal> TokenTable::Find(absl::string_view token) const {
  auto it = by_digest_.find(Digest(token));
  if (it == by_digest_.end()) return std::nullopt;
  return it->second;
}

}  // namespace txn::auth
