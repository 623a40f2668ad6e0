#include "participant-agent/caller_policy.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "common/tls.h"

namespace txn::agent {

bool CallerPolicy::IsPeerOnly(const grpc::ServerContextBase& ctx) const {
  if (!enforced_) return false;
  bool coordinator = false;
  for (const std::string& id : common::PeerIdentities(ctx)) coordinator = coordinator || id == coordinator_;
  return !coordinator;
}

absl::Status CallerPolicy::Admit(const grpc::ServerContextBase& ctx, const char* rpc,
                                 bool peers_too) const {
  if (!enforced_) return absl::OkStatus();
  const std::vector<std::string> ids = common::PeerIdentities(ctx);
  for (const std::string& id : ids) {
    if (id == coordinator_ || (peers_too && peers_.count(id) != 0)) return absl::OkStatus();
  }
  const std::string who = ids.empty() ? "a peer without a certificate identity"
                                      : absl::StrCat("'", absl::StrJoin(ids, "', '"), "'");
  common::LogWarning(absl::StrCat("refused ", rpc, " from ", who, " at ", ctx.peer()));
  return absl::PermissionDeniedError(absl::StrCat(
      rpc, " is for the coordinator ('", coordinator_, "')",
      peers_too ? " and this agent's 3PC peers" : "", "; the caller's certificate names ", who));
}

}  // namespace txn::agent
