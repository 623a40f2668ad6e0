// The first step of every txcoord RPC handler: who is calling, or the call's refusal.
#pragma once

#include <optional>
#include <string>

#include "common/grpc_status.h"
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
  if (principal.ok()) return *principal;
  reactor->Finish(common::ToGrpcStatus(principal.status()));
  return std::nullopt;
}

}  // namespace txn::service
