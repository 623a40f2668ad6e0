#include "coordinator/auth/call_authorizer.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/tls.h"

namespace txn::auth {
namespace {

bool Covers(Scope scope, Needs needs) {
  switch (needs) {
    case Needs::kClient:
      return scope == Scope::kClient || scope == Scope::kAdmin;
    case Needs::kAdmin:
      return scope == Scope::kAdmin;
    case Needs::kAgent:
      return scope == Scope::kAgent || scope == Scope::kAdmin;
  }
  return false;
}

const char* NeedsName(Needs needs) {
  switch (needs) {
    case Needs::kClient:
      return "client";
    case Needs::kAdmin:
      return "admin";
    case Needs::kAgent:
      return "agent";
  }
  return "?";
}

void CountRefusal(const char* why) {
  common::DefaultMetrics()
      .GetCounter("txcoord_auth_refusals_total", "Calls refused for their credentials, by reason.",
                  {{"reason", why}})
      ->Inc();
}

}  // namespace

std::string BearerToken(const grpc::ServerContextBase& ctx) {
  const auto& md = ctx.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return "";
  absl::string_view value(it->second.data(), it->second.size());
  if (!absl::StartsWithIgnoreCase(value, "bearer ")) return "";
  return std::string(absl::StripLeadingAsciiWhitespace(value.substr(7)));
}

absl::StatusOr<std::unique_ptr<CallAuthorizer>> CallAuthorizer::FromFile(
    const std::string& token_file) {
  absl::StatusOr<TokenTable> table = TokenTable::Load(token_file);
  if (!table.ok()) return table.status();
  auto out = std::make_unique<CallAuthorizer>();
  out->path_ = token_file;
  out->table_ = std::make_shared<const TokenTable>(std::move(*table));
  return out;
}

absl::Status CallAuthorizer::Reload() {
  if (path_.empty()) return absl::OkStatus();
  absl::StatusOr<TokenTable> table = TokenTable::Load(path_);
  if (!table.ok()) return table.status();
  std::lock_guard<std::mutex> lock(mu_);
  table_ = std::make_shared<const TokenTable>(std::move(*table));
  return absl::OkStatus();
}

absl::StatusOr<Principal> CallAuthorizer::Authorize(const grpc::ServerContextBase& ctx,
                                                    Needs needs, const char* rpc) const {
  if (needs == Needs::kAgent && !agent_identities_.empty()) {
    bool agent = false;
    for (const std::string& id : common::PeerIdentities(ctx)) {
      agent = agent || agent_identities_.count(id) != 0;
    }
    if (!agent) {
      CountRefusal("not_an_agent");
      common::LogWarning(absl::StrCat("refused ", rpc, " from ", ctx.peer(),
                                      ": its certificate names no configured participant"));
      return absl::PermissionDeniedError(absl::StrCat(
          rpc, " is for the agents: the caller's certificate must name a configured participant"));
    }
  }
  if (path_.empty()) return Principal{"", Scope::kAdmin};
  std::shared_ptr<const TokenTable> table;
  {
    std::lock_guard<std::mutex> lock(mu_);
    table = table_;
  }
  const std::string token = BearerToken(ctx);
  if (token.empty()) {
    CountRefusal("no_token");
    return absl::UnauthenticatedError(
        "this coordinator requires a bearer token (metadata 'authorization: Bearer TOKEN')");
  }
  std::optional<Principal> who = table->Find(token);
  if (!who) {
    CountRefusal("unknown_token");
    common::LogWarning(absl::StrCat("refused ", rpc, " from ", ctx.peer(), ": unknown token"));
    return absl::UnauthenticatedError("unknown bearer token");
  }
  if (!Covers(who->scope, needs)) {
    CountRefusal("scope");
    common::LogWarning(absl::StrCat("principal=", who->name, " refused ", rpc, ": it needs ",
                                    NeedsName(needs), " scope"));
    return absl::PermissionDeniedError(
        absl::StrCat(rpc, " needs a token with ", NeedsName(needs), " scope; principal ",
                     who->name, " does not have it"));
  }
  return *who;
}

}  // namespace txn::auth
