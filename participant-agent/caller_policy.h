// CallerPolicy: who may call an agent's txn.v1.Participant RPCs, by the identity in the caller's
// TLS certificate (common/tls.h). The coordinator (`--coordinator-identity`) may call every RPC;
// a configured 3PC peer (`--peer NAME=...`, identity NAME) only what termination rounds use:
// Elect, PreDecide, Commit, Rollback. Anyone else, e.g. a client certificate from the same CA,
// is PERMISSION_DENIED, so no client can COMMIT PREPARED a branch the coordinator decided to
// abort. Without TLS there is no identity to check and every caller is allowed (run agents
// without TLS on a network only their coordinator reaches). Immutable: thread-safe.
#pragma once

#include <set>
#include <string>

#include "absl/status/status.h"
#include "grpcpp/server_context.h"

namespace txn::agent {

class CallerPolicy {
 public:
  // Allows every caller.
  CallerPolicy() = default;
  CallerPolicy(std::string coordinator_identity, std::set<std::string> peer_identities)
      : enforced_(true),
        coordinator_(std::move(coordinator_identity)),
        peers_(std::move(peer_identities)) {}

  // OK, or PERMISSION_DENIED naming `rpc` and who may call it. `peers_too`: a 3PC peer may.
  absl::Status Admit(const grpc::ServerContextBase& ctx, const char* rpc, bool peers_too) const;
  // Whether the caller is admitted only as a 3PC peer (not the coordinator): it may then finish
  // three-phase branches only, which the caller of Admit checks.
  bool IsPeerOnly(const grpc::ServerContextBase& ctx) const;

 private:
  bool enforced_ = false;
  std::string coordinator_;
  std::set<std::string> peers_;
};

}  // namespace txn::agent
