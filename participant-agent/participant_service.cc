#include "participant-agent/participant_service.h"

#include "common/grpc_status.h"
#include "common/metrics.h"

namespace txn::agent {
namespace {

// Answers the call and records its latency and gRPC code.
template <typename Resp>
grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* ctx, const char* method,
                                 const common::Stopwatch& watch, absl::StatusOr<Resp> result,
                                 Resp* resp) {
  auto& metrics = common::DefaultMetrics();
  metrics
      .GetHistogram("txagent_rpc_seconds", "Participant calls served, by method.",
                    {{"method", method}})
      ->Observe(watch.Seconds());
  metrics
      .GetCounter("txagent_rpcs_total", "Participant calls served, by method and gRPC code.",
                  {{"method", method}, {"code", absl::StatusCodeToString(result.status().code())}})
      ->Inc();
  auto* reactor = ctx->DefaultReactor();
  if (result.ok()) *resp = std::move(*result);
  reactor->Finish(common::ToGrpcStatus(result.status()));
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* ParticipantService::Describe(grpc::CallbackServerContext* ctx,
                                                       const v1::DescribeRequest* req,
                                                       v1::DescribeResponse* resp) {
  resp->set_name(name_);
  resp->set_backend(backend_);
  resp->set_supports_prepare(adapter_->supports_prepare());
  resp->set_max_txn_lifetime_ms(adapter_->max_txn_lifetime_ms());
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* ParticipantService::Begin(grpc::CallbackServerContext* ctx,
                                                    const v1::BeginBranchRequest* req,
                                                    v1::BeginBranchResponse* resp) {
  absl::Status s = registry_->Begin(req->ref());
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(common::ToGrpcStatus(s));
  return reactor;
}

grpc::ServerUnaryReactor* ParticipantService::Execute(grpc::CallbackServerContext* ctx,
                                                      const v1::ExecuteBranchRequest* req,
                                                      v1::ExecuteBranchResponse* resp) {
  common::Stopwatch watch;
  return Finish(ctx, "Execute", watch, registry_->Execute(*req), resp);
}

grpc::ServerUnaryReactor* ParticipantService::Prepare(grpc::CallbackServerContext* ctx,
                                                      const v1::PrepareBranchRequest* req,
                                                      v1::PrepareBranchResponse* resp) {
  common::Stopwatch watch;
  return Finish(ctx, "Prepare", watch, registry_->Prepare(*req), resp);
}

grpc::ServerUnaryReactor* ParticipantService::Commit(grpc::CallbackServerContext* ctx,
                                                     const v1::CommitBranchRequest* req,
                                                     v1::CommitBranchResponse* resp) {
  common::Stopwatch watch;
  return Finish(ctx, "Commit", watch, registry_->Commit(*req), resp);
}

grpc::ServerUnaryReactor* ParticipantService::Rollback(grpc::CallbackServerContext* ctx,
                                                       const v1::RollbackBranchRequest* req,
                                                       v1::RollbackBranchResponse* resp) {
  common::Stopwatch watch;
  return Finish(ctx, "Rollback", watch, registry_->Rollback(*req), resp);
}

grpc::ServerUnaryReactor* ParticipantService::CommitOnePhase(grpc::CallbackServerContext* ctx,
                                                             const v1::CommitOnePhaseRequest* req,
                                                             v1::CommitOnePhaseResponse* resp) {
  common::Stopwatch watch;
  return Finish(ctx, "CommitOnePhase", watch, registry_->CommitOnePhase(*req), resp);
}

grpc::ServerUnaryReactor* ParticipantService::ListInDoubt(grpc::CallbackServerContext* ctx,
                                                          const v1::ListInDoubtRequest* req,
                                                          v1::ListInDoubtResponse* resp) {
  common::Stopwatch watch;
  return Finish(ctx, "ListInDoubt", watch, registry_->ListInDoubt(), resp);
}

grpc::ServerUnaryReactor* ParticipantService::ExecuteLocal(grpc::CallbackServerContext* ctx,
                                                           const v1::ExecuteLocalRequest* req,
                                                           v1::ExecuteLocalResponse* resp) {
  common::Stopwatch watch;
  return Finish(ctx, "ExecuteLocal", watch, saga_steps_->ExecuteLocal(*req), resp);
}

grpc::ServerUnaryReactor* ParticipantService::Compensate(grpc::CallbackServerContext* ctx,
                                                         const v1::CompensateRequest* req,
                                                         v1::CompensateResponse* resp) {
  common::Stopwatch watch;
  return Finish(ctx, "Compensate", watch, saga_steps_->Compensate(*req), resp);
}

grpc::ServerUnaryReactor* ParticipantService::Elect(grpc::CallbackServerContext* ctx,
                                                    const v1::ElectRequest* req,
                                                    v1::TerminationReply* resp) {
  common::Stopwatch watch;
  return Finish(ctx, "Elect", watch, three_phase_->Elect(*req), resp);
}

grpc::ServerUnaryReactor* ParticipantService::PreDecide(grpc::CallbackServerContext* ctx,
                                                        const v1::PreDecideRequest* req,
                                                        v1::TerminationReply* resp) {
  common::Stopwatch watch;
  return Finish(ctx, "PreDecide", watch, three_phase_->PreDecide(*req), resp);
}

}  // namespace txn::agent
