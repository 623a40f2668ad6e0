// The first step of every txcoord RPC handler: who is calling, or the call's refusal.
#pragma once

#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "coordinator/auth/call_authorizer.h"
#include "grpcpp/support/server_callback.h"

namespace txn::service {

// The caller's principal; or nullopt after finishing `reactor` with the refusal
// (UNAUTHENTICATED / PERMISSION_DENIED).
inline std::optional<auth::Principal> AuthorizeCall(const auth::CallAuthorizer& authorizer,
                                                grpc::CallbackServerContext* ctx,
                                                grpc::ServerUnaryReactor* reactor,
                                                auth::Needs needs, const char* rpc) {
  absl::StatusOr<auth::Principal> principal = authorizer.Authorize(*ctx, needs, rpc);
  if (principal.ok()) {
    // The audit trail of the operators' API: who called what.
    if (needs == auth::Needs::kAdmin) {
      common::LogInfo(absl::StrCat("principal=", principal->name.empty() ? "-" : principal->name,
                                   " admin ", rpc));
    }
    return *principal;
  }
  reactor->Finish(common::ToGrpcStatus(principal.status()));
  return std::nullopt;
}

}  // namespace txn::service
