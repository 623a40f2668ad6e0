#include "participant-agent/participant_service.h"

#include <chrono>
#include <memory>
#include <optional>

#include "common/grpc_status.h"
#include "absl/strings/str_cat.h"
#include "common/metrics.h"
#include "participant-agent/call_cancellation.h"

namespace txn::agent {
namespace {

void Record(const char* method, const common::Stopwatch& watch, const absl::Status& status) {
  auto& metrics = common::DefaultMetrics();
  metrics
      .GetHistogram("txagent_rpc_seconds", "Participant calls served, by method.",
                    {{"method", method}})
      ->Observe(watch.Seconds());
  metrics
      .GetCounter("txagent_rpcs_total", "Participant calls served, by method and gRPC code.",
                  {{"method", method}, {"code", absl::StatusCodeToString(status.code())}})
      ->Inc();
}

// A unary reactor whose cancellation (the client cancelled, or its deadline passed) reaches the
// call's CallCancellation, and through it the statement the call is running.
class LaneReactor final : public grpc::ServerUnaryReactor {
 public:
  LaneReactor() : cancellation_(std::make_shared<CallCancellation>()) {}
  void OnCancel() override { cancellation_->Cancel(); }
  void OnDone() override { delete this; }
  const std::shared_ptr<CallCancellation>& cancellation() const { return cancellation_; }

 private:
  const std::shared_ptr<CallCancellation> cancellation_;
};

enum class Cancellable { kNo, kYes };

// Queues `work` (returning absl::StatusOr<Resp>) on `lane` and finishes the call from the
// lane's worker. A cancellable call that was cancelled or is past its deadline before a worker
// takes it is answered without running; while it runs, its cancellation interrupts its
// statements. A full lane answers RESOURCE_EXHAUSTED at once.
template <typename Resp, typename Work>
grpc::ServerUnaryReactor* Serve(grpc::CallbackServerContext* ctx, WorkLane* lane,
                                const char* method, Cancellable cancellable, Resp* resp,
                                Work work) {
  auto* reactor = new LaneReactor();
  std::shared_ptr<CallCancellation> cancellation = reactor->cancellation();
  const auto deadline = ctx->deadline();
  common::Stopwatch watch;
  absl::Status queued = lane->Submit([=]() mutable {
    absl::StatusOr<Resp> result = absl::UnknownError("not run");
    if (cancellable == Cancellable::kYes && cancellation->cancelled()) {
      result = absl::CancelledError(absl::StrCat(method, " was cancelled before it started"));
    } else if (cancellable == Cancellable::kYes && deadline < std::chrono::system_clock::now()) {
      result = absl::DeadlineExceededError(
          absl::StrCat(method, " waited in the agent's queue past its deadline"));
    } else {
      std::optional<CallCancellation::Scope> scope;
      if (cancellable == Cancellable::kYes) scope.emplace(cancellation.get());
      result = work();
    }
    Record(method, watch, result.status());
    if (result.ok()) *resp = std::move(*result);
    reactor->Finish(common::ToGrpcStatus(result.status()));
  });
  if (!queued.ok()) {
    Record(method, watch, queued);
    reactor->Finish(common::ToGrpcStatus(queued));
  }
  return reactor;
}

// Begin answers no message of its own.
absl::StatusOr<v1::BeginBranchResponse> Empty(absl::Status s) {
  if (!s.ok()) return s;
  return v1::BeginBranchResponse();
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
  return Serve(ctx, lanes_.work, "Begin", Cancellable::kYes, resp,
               [this, req] { return Empty(registry_->Begin(req->ref())); });
}

grpc::ServerUnaryReactor* ParticipantService::Execute(grpc::CallbackServerContext* ctx,
                                                      const v1::ExecuteBranchRequest* req,
                                                      v1::ExecuteBranchResponse* resp) {
  return Serve(ctx, lanes_.work, "Execute", Cancellable::kYes, resp,
               [this, req] { return registry_->Execute(*req); });
}

grpc::ServerUnaryReactor* ParticipantService::Prepare(grpc::CallbackServerContext* ctx,
                                                      const v1::PrepareBranchRequest* req,
                                                      v1::PrepareBranchResponse* resp) {
  return Serve(ctx, lanes_.work, "Prepare", Cancellable::kYes, resp,
               [this, req] { return registry_->Prepare(*req); });
}

grpc::ServerUnaryReactor* ParticipantService::Commit(grpc::CallbackServerContext* ctx,
                                                     const v1::CommitBranchRequest* req,
                                                     v1::CommitBranchResponse* resp) {
  return Serve(ctx, lanes_.finish, "Commit", Cancellable::kNo, resp,
               [this, req] { return registry_->Commit(*req); });
}

grpc::ServerUnaryReactor* ParticipantService::Rollback(grpc::CallbackServerContext* ctx,
                                                       const v1::RollbackBranchRequest* req,
                                                       v1::RollbackBranchResponse* resp) {
  return Serve(ctx, lanes_.finish, "Rollback", Cancellable::kNo, resp,
               [this, req] { return registry_->Rollback(*req); });
}

grpc::ServerUnaryReactor* ParticipantService::CommitOnePhase(grpc::CallbackServerContext* ctx,
                                                             const v1::CommitOnePhaseRequest* req,
                                                             v1::CommitOnePhaseResponse* resp) {
  return Serve(ctx, lanes_.work, "CommitOnePhase", Cancellable::kYes, resp,
               [this, req] { return registry_->CommitOnePhase(*req); });
}

grpc::ServerUnaryReactor* ParticipantService::ListInDoubt(grpc::CallbackServerContext* ctx,
                                                          const v1::ListInDoubtRequest* req,
                                                          v1::ListInDoubtResponse* resp) {
  return Serve(ctx, lanes_.control, "ListInDoubt", Cancellable::kNo, resp,
               [this] { return registry_->ListInDoubt(); });
}

grpc::ServerUnaryReactor* ParticipantService::ExecuteLocal(grpc::CallbackServerContext* ctx,
                                                           const v1::ExecuteLocalRequest* req,
                                                           v1::ExecuteLocalResponse* resp) {
  return Serve(ctx, lanes_.work, "ExecuteLocal", Cancellable::kYes, resp,
               [this, req] { return saga_steps_->ExecuteLocal(*req); });
}

grpc::ServerUnaryReactor* ParticipantService::Compensate(grpc::CallbackServerContext* ctx,
                                                         const v1::CompensateRequest* req,
                                                         v1::CompensateResponse* resp) {
  // A compensation is a new local transaction that takes row locks, so it is work (on the
  // finish lane it could wait for a lock whose release needs a finish worker); it runs to its
  // end even when the coordinator stopped waiting, which retries it anyway.
  return Serve(ctx, lanes_.work, "Compensate", Cancellable::kNo, resp,
               [this, req] { return saga_steps_->Compensate(*req); });
}

grpc::ServerUnaryReactor* ParticipantService::Elect(grpc::CallbackServerContext* ctx,
                                                    const v1::ElectRequest* req,
                                                    v1::TerminationReply* resp) {
  return Serve(ctx, lanes_.control, "Elect", Cancellable::kNo, resp,
               [this, req] { return three_phase_->Elect(*req); });
}

grpc::ServerUnaryReactor* ParticipantService::PreDecide(grpc::CallbackServerContext* ctx,
                                                        const v1::PreDecideRequest* req,
                                                        v1::TerminationReply* resp) {
  return Serve(ctx, lanes_.control, "PreDecide", Cancellable::kNo, resp,
               [this, req] { return three_phase_->PreDecide(*req); });
}

}  // namespace txn::agent
