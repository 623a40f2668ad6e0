// CallAuthorizer: who may call which txcoord RPC, from the bearer token a call carries
// (`authorization: Bearer TOKEN`, TokenTable). Without a token file every call is allowed and
// its principal is "" with admin scope (anonymous: transactions then have no owner).
//
// With one: no or an unknown token is UNAUTHENTICATED; a token whose scope does not cover the RPC
// is PERMISSION_DENIED. client covers the Coordinator API's client calls, admin those and the
// Admin API, agent the calls txagent makes (GetDecision, ReportDecision, ReportWaits,
// ReportForeignBranches). Refusals
// are logged with the principal (never the token). Reload() swaps the table (SIGHUP).
// Thread-safe.
#pragma once

#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "coordinator/auth/token_table.h"
#include "grpcpp/server_context.h"

namespace txn::auth {

// What an RPC needs.
enum class Needs { kClient, kAdmin, kAgent };

class CallAuthorizer {
 public:
  // Open: every call allowed, as "".
  CallAuthorizer() = default;
  // Checks `token_file` now; Reload() re-reads it.
  static absl::StatusOr<std::unique_ptr<CallAuthorizer>> FromFile(const std::string& token_file);

  // With TLS: the agents' calls (GetDecision, ReportDecision, ReportWaits,
  // ReportForeignBranches) are taken only from a peer whose certificate names one of `names`
  // (the configured participants), whatever its token. Call before serving.
  void RequireAgentIdentities(std::set<std::string> names) { agent_identities_ = std::move(names); }

  // Re-reads the token file; on failure keeps the tokens it had and returns the error.
  absl::Status Reload();
  bool enabled() const { return !path_.empty(); }

  // The calling principal, or the refusal. `rpc` names the call in the refusal's log line.
  absl::StatusOr<Principal> Authorize(const grpc::ServerContextBase& ctx, Needs needs,
                                      const char* rpc) const;

 private:
  std::string path_;
  std::set<std::string> agent_identities_;
  mutable std::mutex mu_;
  std::shared_ptr<const TokenTable> table_;  // guarded by mu_
};

// The token of an `authorization: Bearer TOKEN` header, or "" if there is none.
std::string BearerToken(const grpc::ServerContextBase& ctx);

}  // namespace txn::auth
