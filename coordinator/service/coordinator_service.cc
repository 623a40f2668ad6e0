#include "coordinator/service/coordinator_service.h"

#include <algorithm>
#include <optional>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/tls.h"
#include "coordinator/service/authorize_call.h"

namespace txn::service {
namespace {

// A callback that finishes `reactor` with `result`, copying the value into `resp`.
template <typename T>
std::function<void(absl::StatusOr<T>)> Finisher(grpc::ServerUnaryReactor* reactor, T* resp) {
  return [reactor, resp](absl::StatusOr<T> result) {
    if (result.ok()) *resp = std::move(*result);
    reactor->Finish(common::ToGrpcStatus(result.status()));
  };
}

// `reply`, after logging a statement the policy refused with the principal that sent it.
template <typename T>
std::function<void(absl::StatusOr<T>)> Audited(std::function<void(absl::StatusOr<T>)> reply,
                                              std::string principal, const char* rpc) {
  return [reply = std::move(reply), principal = std::move(principal), rpc](absl::StatusOr<T> r) {
    if (!r.ok() && r.status().code() == absl::StatusCode::kInvalidArgument &&
        absl::StrContains(r.status().message(), "statement refused")) {
      common::LogWarning(absl::StrCat("principal=", principal.empty() ? "-" : principal, " ", rpc,
                                      " refused: ", r.status().message()));
    }
    reply(std::move(r));
  };
}

// With TLS an agent reports for itself only: the participant it names must be its identity.
absl::Status ReportsForItself(const grpc::CallbackServerContext& ctx,
                              const std::string& participant, const char* rpc) {
  const std::vector<std::string> ids = common::PeerIdentities(ctx);
  if (ids.empty() || std::find(ids.begin(), ids.end(), participant) != ids.end()) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat(rpc, " for participant '",
                                                  participant.substr(0, 60),
                                                  "' from a certificate that does not name it"));
}

}  // namespace

grpc::ServerUnaryReactor* CoordinatorService::Run(grpc::CallbackServerContext* ctx,
                                                  const v1::RunRequest* req, v1::Outcome* resp) {
  auto* reactor = ctx->DefaultReactor();
  std::optional<auth::Principal> caller =
      AuthorizeCall(*authorizer_, ctx, reactor, auth::Needs::kClient, "Run");
  if (!caller) return reactor;
  driver_->Run(*req, Audited(Finisher(reactor, resp), caller->name, "Run"), caller->name);
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::Begin(grpc::CallbackServerContext* ctx,
                                                    const v1::BeginRequest* req,
                                                    v1::BeginResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  std::optional<auth::Principal> caller =
      AuthorizeCall(*authorizer_, ctx, reactor, auth::Needs::kClient, "Begin");
  if (!caller) return reactor;
  Finisher(reactor, resp)(driver_->Begin(*req, caller->name));
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::Execute(grpc::CallbackServerContext* ctx,
                                                      const v1::ExecuteRequest* req,
                                                      v1::ExecuteResult* resp) {
  auto* reactor = ctx->DefaultReactor();
  std::optional<auth::Principal> caller =
      AuthorizeCall(*authorizer_, ctx, reactor, auth::Needs::kClient, "Execute");
  if (!caller) return reactor;
  driver_->Execute(*req, Audited(Finisher(reactor, resp), caller->name, "Execute"), caller->name);
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::Commit(grpc::CallbackServerContext* ctx,
                                                     const v1::CommitRequest* req,
                                                     v1::Outcome* resp) {
  auto* reactor = ctx->DefaultReactor();
  std::optional<auth::Principal> caller =
      AuthorizeCall(*authorizer_, ctx, reactor, auth::Needs::kClient, "Commit");
  if (!caller) return reactor;
  driver_->Commit(*req, Finisher(reactor, resp), caller->name);
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::Rollback(grpc::CallbackServerContext* ctx,
                                                       const v1::RollbackRequest* req,
                                                       v1::Outcome* resp) {
  auto* reactor = ctx->DefaultReactor();
  std::optional<auth::Principal> caller =
      AuthorizeCall(*authorizer_, ctx, reactor, auth::Needs::kClient, "Rollback");
  if (!caller) return reactor;
  driver_->Rollback(*req, Finisher(reactor, resp), caller->name);
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::GetTransaction(grpc::CallbackServerContext* ctx,
                                                             const v1::GetTransactionRequest* req,
                                                             v1::Transaction* resp) {
  auto* reactor = ctx->DefaultReactor();
  std::optional<auth::Principal> caller =
      AuthorizeCall(*authorizer_, ctx, reactor, auth::Needs::kClient, "GetTransaction");
  if (!caller) return reactor;
  Finisher(reactor, resp)(driver_->GetTransaction(
      req->txn_id(), caller->scope == auth::Scope::kAdmin ? std::string() : caller->name));
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::GetDecision(grpc::CallbackServerContext* ctx,
                                                          const v1::GetDecisionRequest* req,
                                                          v1::GetDecisionResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  std::optional<auth::Principal> caller =
      AuthorizeCall(*authorizer_, ctx, reactor, auth::Needs::kAgent, "GetDecision");
  if (!caller) return reactor;
  absl::StatusOr<v1::Decision> d = driver_->GetDecision(req->txn_id());
  if (d.ok()) resp->set_decision(*d);
  reactor->Finish(common::ToGrpcStatus(d.status()));
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::ReportDecision(grpc::CallbackServerContext* ctx,
                                                             const v1::ReportDecisionRequest* req,
                                                             v1::ReportDecisionResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  std::optional<auth::Principal> caller =
      AuthorizeCall(*authorizer_, ctx, reactor, auth::Needs::kAgent, "ReportDecision");
  if (!caller) return reactor;
  if (absl::Status s = ReportsForItself(*ctx, req->participant(), "ReportDecision"); !s.ok()) {
    reactor->Finish(common::ToGrpcStatus(s));
    return reactor;
  }
  reactor->Finish(common::ToGrpcStatus(driver_->ReportDecision(*req)));
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::ReportForeignBranches(
    grpc::CallbackServerContext* ctx, const v1::ReportForeignBranchesRequest* req,
    v1::ReportForeignBranchesResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  std::optional<auth::Principal> caller =
      AuthorizeCall(*authorizer_, ctx, reactor, auth::Needs::kAgent, "ReportForeignBranches");
  if (!caller) return reactor;
  absl::Status s = ReportsForItself(*ctx, req->participant(), "ReportForeignBranches");
  if (s.ok() && !driver_->IsParticipant(req->participant())) {
    s = absl::NotFoundError(absl::StrCat("participant '", req->participant().substr(0, 60),
                                         "' is not a configured participant"));
  }
  if (s.ok()) s = foreign_->Report(*req);
  reactor->Finish(common::ToGrpcStatus(s));
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::ReportWaits(grpc::CallbackServerContext* ctx,
                                                          const v1::ReportWaitsRequest* req,
                                                          v1::ReportWaitsResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  std::optional<auth::Principal> caller =
      AuthorizeCall(*authorizer_, ctx, reactor, auth::Needs::kAgent, "ReportWaits");
  if (!caller) return reactor;
  reactor->Finish(common::ToGrpcStatus(deadlocks_->Report(*req)));
  return reactor;
}

}  // namespace txn::service
