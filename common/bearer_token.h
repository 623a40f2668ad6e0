// The client side of txcoord's bearer tokens (coordinator/auth): read the token a tool or agent
// sends, and attach it to a call. Thread-safe (pure functions).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/client_context.h"

namespace txn::common {

// The token in `path`: its first line that is neither blank nor a `#` comment, either the token
// alone or a token file line `SCOPE TOKEN [NAME]` (then its second field). NOT_FOUND when the
// file cannot be read, INVALID_ARGUMENT when it holds no token. Errors never quote the file.
absl::StatusOr<std::string> ReadBearerToken(const std::string& path);

// Adds `authorization: Bearer TOKEN` to `ctx`; nothing when `token` is empty.
inline void AddBearerToken(grpc::ClientContext* ctx, const std::string& token) {
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
}

}  // namespace txn::common
