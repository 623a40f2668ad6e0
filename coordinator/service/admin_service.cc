#include "coordinator/service/admin_service.h"

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "coordinator/service/authorize_call.h"

namespace txn::service {
namespace {

v1::ParticipantHealth ToProto(transport::ParticipantHealth h) {
  switch (h) {
    case transport::ParticipantHealth::kServing:
      return v1::PARTICIPANT_HEALTH_SERVING;
    case transport::ParticipantHealth::kNotServing:
      return v1::PARTICIPANT_HEALTH_NOT_SERVING;
    case transport::ParticipantHealth::kUnknown:
      break;
  }
  return v1::PARTICIPANT_HEALTH_UNKNOWN;
}

v1::CircuitState ToProto(transport::CircuitState s) {
  switch (s) {
    case transport::CircuitState::kOpen:
      return v1::CIRCUIT_STATE_OPEN;
    case transport::CircuitState::kHalfOpen:
      return v1::CIRCUIT_STATE_HALF_OPEN;
    case transport::CircuitState::kClosed:
      break;
  }
  return v1::CIRCUIT_STATE_CLOSED;
}

template <typename T>
void Finish(grpc::ServerUnaryReactor* reactor, absl::StatusOr<T> result, T* resp) {
  if (result.ok()) *resp = std::move(*result);
  reactor->Finish(common::ToGrpcStatus(result.status()));
}

}  // namespace

grpc::ServerUnaryReactor* AdminService::ListTransactions(grpc::CallbackServerContext* ctx,
                                                         const v1::ListTransactionsRequest* req,
                                                         v1::ListTransactionsResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  std::optional<auth::Principal> caller =
      AuthorizeCall(*authorizer_, ctx, reactor, auth::Needs::kAdmin, "ListTransactions");
  if (!caller) return reactor;
  Finish(reactor, driver_->ListTransactions(*req), resp);
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::ResolveTransaction(grpc::CallbackServerContext* ctx,
                                                           const v1::ResolveTransactionRequest* req,
                                                           v1::Outcome* resp) {
  auto* reactor = ctx->DefaultReactor();
  std::optional<auth::Principal> caller =
      AuthorizeCall(*authorizer_, ctx, reactor, auth::Needs::kAdmin, "ResolveTransaction");
  if (!caller) return reactor;
  common::LogWarning(absl::StrCat("txn=", req->txn_id().substr(0, 100), " principal=",
                                  caller->name.empty() ? "(none)" : caller->name, " asks to resolve it: ",
                                  v1::Decision_Name(req->decision())));
  driver_->ResolveTransaction(*req, [reactor, resp](absl::StatusOr<v1::Outcome> r) {
    Finish(reactor, std::move(r), resp);
  });
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::ListParticipants(grpc::CallbackServerContext* ctx,
                                                         const v1::ListParticipantsRequest* req,
                                                         v1::ListParticipantsResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  std::optional<auth::Principal> caller =
      AuthorizeCall(*authorizer_, ctx, reactor, auth::Needs::kAdmin, "ListParticipants");
  if (!caller) return reactor;
  for (const transport::ParticipantStatus& s : participants_->Statuses()) {
    v1::ParticipantInfo* p = resp->add_participants();
    p->set_name(s.name);
    p->set_address(s.address);
    p->set_health(ToProto(s.health));
    p->set_circuit(ToProto(s.circuit));
    p->set_backend(s.backend);
    p->set_supports_prepare(s.supports_prepare);
    p->set_consecutive_failures(static_cast<uint32_t>(s.consecutive_failures));
    p->set_last_error(s.last_error);
    p->set_retry_at_unix_ms(s.retry_at_unix_ms);
    p->set_calls(s.calls);
    p->set_failed_calls(s.failed_calls);
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::GetStats(grpc::CallbackServerContext* ctx,
                                                 const v1::GetStatsRequest* req, v1::Stats* resp) {
  auto* reactor = ctx->DefaultReactor();
  std::optional<auth::Principal> caller =
      AuthorizeCall(*authorizer_, ctx, reactor, auth::Needs::kAdmin, "GetStats");
  if (!caller) return reactor;
  Finish(reactor, driver_->GetStats(), resp);
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::ListWaits(grpc::CallbackServerContext* ctx,
                                                  const v1::ListWaitsRequest* req,
                                                  v1::ListWaitsResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  std::optional<auth::Principal> caller =
      AuthorizeCall(*authorizer_, ctx, reactor, auth::Needs::kAdmin, "ListWaits");
  if (!caller) return reactor;
  *resp = deadlocks_->ListWaits();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::ListForeignBranches(
    grpc::CallbackServerContext* ctx, const v1::ListForeignBranchesRequest* req,
    v1::ListForeignBranchesResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  std::optional<auth::Principal> caller =
      AuthorizeCall(*authorizer_, ctx, reactor, auth::Needs::kAdmin, "ListForeignBranches");
  if (!caller) return reactor;
  *resp = foreign_->List();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace txn::service
