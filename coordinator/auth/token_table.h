// TokenTable: the bearer tokens txcoord accepts, read from `--token-file`.
//
// One token per line: `SCOPE TOKEN [NAME]`. SCOPE is `client` (the Coordinator API), `admin`
// (the Admin API, and the Coordinator API as well) or `agent` (what txagent calls on the
// coordinator: GetDecision, ReportDecision, ReportWaits, ReportForeignBranches). TOKEN is at least 16 printable
// characters without spaces. NAME names the principal in logs and as the owner of its
// transactions; without it the principal is SCOPE-<first 12 hex digits of SHA-256(TOKEN)>, which
// is stable and says nothing about the token. Blank lines and lines starting with `#` are
// skipped.
//
// Tokens are kept only as SHA-256 digests and looked up by digest, so neither the table nor a
// lookup's timing gives away a token. Immutable once built: thread-safe.
#pragma once

#include <optional>
#include <string>
#include <unordered_map>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace txn::auth {

enum class Scope { kClient, kAdmin, kAgent };

struct Principal {
  std::string name;
  Scope scope = Scope::kClient;
};

class TokenTable {
 public:
  // INVALID_ARGUMENT naming the line (never quoting a token) when a line is malformed, a token
  // is too short or listed twice, or there is no token at all.
  static absl::StatusOr<TokenTable> Parse(absl::string_view text);
  // Parse() of the file at `path`; NOT_FOUND when it cannot be read.
  static absl::StatusOr<TokenTable> Load(const std::string& path);

  // The principal `token` belongs to, or nullopt.
  std::optional<Principal> Find(absl::string_view token) const;
  size_t size() const { return by_digest_.size(); }

 private:
  std::unordered_map<std::string, Principal> by_digest_;
};

}  // namespace txn::auth
