#include "participant-agent/participant_service.h"

#include <chrono>
#include <memory>
#include <optional>

#include "common/grpc_status.h"
#include "absl/strings/str_cat.h"
#include "common/metrics.h"
#include "common/status_macros.h"
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

// Runs `work` (returning absl::StatusOr<Resp>) on `lane`, then `finish` with its result, both
// on the lane's worker. A cancellable call that was cancelled or is past `deadline` before a
// worker takes it is answered without running; while it runs, `cancellation` interrupts its
// statements. A full lane calls `finish` at once with RESOURCE_EXHAUSTED.
template <typename Resp, typename Work, typename FinishFn>
void RunOnLane(WorkLane* lane, const char* method, Cancellable cancellable,
               std::chrono::system_clock::time_point deadline,
               std::shared_ptr<CallCancellation> cancellation, Work work, FinishFn finish) {
  common::Stopwatch watch;
  absl::Status queued = lane->Submit([=]() mutable {
    lane->RecordWait(watch.Seconds());
    absl::StatusOr<Resp> result = absl::UnknownError("not run");
    if (cancellable == Cancellable::kYes && cancellation->cancelled()) {
      result = absl::CancelledError(absl::StrCat(method, " was cancelled before it started"));
    } else if (cancellable == Cancellable::kYes && deadline < std::chrono::system_clock::now()) {
      result = absl::DeadlineExceededError(
          absl::StrCat(method, " waited in the agent's queue past its deadline"));
    } else {
      std::optional<CallCancellation::Scope> scope;
      if (cancellable == Cancellable::kYes) {
        cancellation->set_deadline(deadline);
        scope.emplace(cancellation.get());
      }
      result = work();
    }
    Record(method, watch, result.status());
    finish(std::move(result));
  });
  if (!queued.ok()) {
    Record(method, watch, queued);
    finish(absl::StatusOr<Resp>(queued));
  }
}

// A unary call: queued on `lane` and finished from the lane's worker.
// `admitted`: the caller's admission (CallerPolicy); a refused call is finished at once.
template <typename Resp, typename Work>
grpc::ServerUnaryReactor* Serve(grpc::CallbackServerContext* ctx, WorkLane* lane,
                                const char* method, Cancellable cancellable, Resp* resp,
                                absl::Status admitted, Work work) {
  if (!admitted.ok()) {
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(common::ToGrpcStatus(admitted));
    return reactor;
  }
  auto* reactor = new LaneReactor();
  RunOnLane<Resp>(lane, method, cancellable, ctx->deadline(), reactor->cancellation(),
                  std::move(work), [reactor, resp](absl::StatusOr<Resp> result) {
                    if (result.ok()) *resp = std::move(*result);
                    reactor->Finish(common::ToGrpcStatus(result.status()));
                  });
  return reactor;
}

// A call of an Exchange stream: the same, answered as a StreamedAnswer.
template <typename Resp, typename Work, typename SetAnswer>
void ServeStreamed(WorkLane* lane, const char* method, Cancellable cancellable,
                   const v1::StreamedCall& call, std::shared_ptr<CallCancellation> cancellation,
                   Work work, SetAnswer set_answer, CallExchange::AnswerFn answer) {
  const auto deadline =
      call.timeout_ms() > 0
          ? std::chrono::system_clock::now() + std::chrono::milliseconds(call.timeout_ms())
          : std::chrono::system_clock::time_point::max();
  RunOnLane<Resp>(lane, method, cancellable, deadline, std::move(cancellation), std::move(work),
                  [set_answer, answer = std::move(answer)](absl::StatusOr<Resp> result) {
                    v1::StreamedAnswer a;
                    a.set_code(static_cast<int>(result.status().code()));
                    a.set_message(std::string(result.status().message()));
                    if (result.ok()) set_answer(a, std::move(*result));
                    answer(std::move(a));
                  });
}

// Begin answers no message of its own.
absl::StatusOr<v1::BeginBranchResponse> Empty(absl::Status s) {
  if (!s.ok()) return s;
  return v1::BeginBranchResponse();
}

}  // namespace

absl::Status ParticipantService::PeerMayFinish(const v1::BranchRef& ref, bool three_phase) {
  // On a lane worker: reading the 3PC record is database work.
  if (three_phase && three_phase_ != nullptr) {
    TXN_ASSIGN_OR_RETURN(std::string gid, GidOf(ref));
    TXN_ASSIGN_OR_RETURN(std::optional<protocol::TpcRecord> rec, three_phase_->Load(gid));
    if (rec) return absl::OkStatus();
  }
  return absl::PermissionDeniedError(
      "a 3PC peer may finish only three-phase branches recorded here; this one is the "
      "coordinator's to finish");
}

grpc::ServerUnaryReactor* ParticipantService::Describe(grpc::CallbackServerContext* ctx,
                                                       const v1::DescribeRequest* req,
                                                       v1::DescribeResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  if (absl::Status s = callers_.Admit(*ctx, "Describe", /*peers_too=*/false); !s.ok()) {
    reactor->Finish(common::ToGrpcStatus(s));
    return reactor;
  }
  resp->set_name(name_);
  resp->set_backend(backend_);
  resp->set_supports_prepare(adapter_->supports_prepare());
  resp->set_max_txn_lifetime_ms(adapter_->max_txn_lifetime_ms());
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* ParticipantService::Begin(grpc::CallbackServerContext* ctx,
                                                    const v1::BeginBranchRequest* req,
                                                    v1::BeginBranchResponse* resp) {
  return Serve(ctx, lanes_.work, "Begin", Cancellable::kYes, resp,
               callers_.Admit(*ctx, "Begin", /*peers_too=*/false),
               [this, req] { return Empty(registry_->Begin(req->ref())); });
}

grpc::ServerUnaryReactor* ParticipantService::Execute(grpc::CallbackServerContext* ctx,
                                                      const v1::ExecuteBranchRequest* req,
                                                      v1::ExecuteBranchResponse* resp) {
  return Serve(ctx, lanes_.work, "Execute", Cancellable::kYes, resp,
               callers_.Admit(*ctx, "Execute", /*peers_too=*/false),
               [this, req] { return registry_->Execute(*req); });
}

grpc::ServerUnaryReactor* ParticipantService::Prepare(grpc::CallbackServerContext* ctx,
                                                      const v1::PrepareBranchRequest* req,
                                                      v1::PrepareBranchResponse* resp) {
  return Serve(ctx, lanes_.work, "Prepare", Cancellable::kYes, resp,
               callers_.Admit(*ctx, "Prepare", /*peers_too=*/false),
               [this, req] { return registry_->Prepare(*req); });
}

grpc::ServerUnaryReactor* ParticipantService::Commit(grpc::CallbackServerContext* ctx,
                                                     const v1::CommitBranchRequest* req,
                                                     v1::CommitBranchResponse* resp) {
  const bool peer = callers_.IsPeerOnly(*ctx);
  return Serve(ctx, lanes_.finish, "Commit", Cancellable::kNo, resp,
               callers_.Admit(*ctx, "Commit", /*peers_too=*/true),
               [this, req, peer]() -> absl::StatusOr<v1::CommitBranchResponse> {
                 if (peer) TXN_RETURN_IF_ERROR(PeerMayFinish(req->ref(), req->three_phase()));
                 return registry_->Commit(*req);
               });
}

grpc::ServerUnaryReactor* ParticipantService::Rollback(grpc::CallbackServerContext* ctx,
                                                       const v1::RollbackBranchRequest* req,
                                                       v1::RollbackBranchResponse* resp) {
  const bool peer = callers_.IsPeerOnly(*ctx);
  return Serve(ctx, lanes_.finish, "Rollback", Cancellable::kNo, resp,
               callers_.Admit(*ctx, "Rollback", /*peers_too=*/true),
               [this, req, peer]() -> absl::StatusOr<v1::RollbackBranchResponse> {
                 if (peer) TXN_RETURN_IF_ERROR(PeerMayFinish(req->ref(), req->three_phase()));
                 return registry_->Rollback(*req);
               });
}

grpc::ServerUnaryReactor* ParticipantService::CommitOnePhase(grpc::CallbackServerContext* ctx,
                                                             const v1::CommitOnePhaseRequest* req,
                                                             v1::CommitOnePhaseResponse* resp) {
  return Serve(ctx, lanes_.work, "CommitOnePhase", Cancellable::kYes, resp,
               callers_.Admit(*ctx, "CommitOnePhase", /*peers_too=*/false),
               [this, req] { return registry_->CommitOnePhase(*req); });
}

grpc::ServerUnaryReactor* ParticipantService::ListInDoubt(grpc::CallbackServerContext* ctx,
                                                          const v1::ListInDoubtRequest* req,
                                                          v1::ListInDoubtResponse* resp) {
  return Serve(ctx, lanes_.control, "ListInDoubt", Cancellable::kNo, resp,
               callers_.Admit(*ctx, "ListInDoubt", /*peers_too=*/false),
               [this] { return registry_->ListInDoubt(); });
}

grpc::ServerUnaryReactor* ParticipantService::ExecuteLocal(grpc::CallbackServerContext* ctx,
                                                           const v1::ExecuteLocalRequest* req,
                                                           v1::ExecuteLocalResponse* resp) {
  return Serve(ctx, lanes_.work, "ExecuteLocal", Cancellable::kYes, resp,
               callers_.Admit(*ctx, "ExecuteLocal", /*peers_too=*/false),
               [this, req] { return saga_steps_->ExecuteLocal(*req); });
}

grpc::ServerUnaryReactor* ParticipantService::Compensate(grpc::CallbackServerContext* ctx,
                                                         const v1::CompensateRequest* req,
                                                         v1::CompensateResponse* resp) {
  // A compensation is a new local transaction that takes row locks, so it is work (on the
  // finish lane it could wait for a lock whose release needs a finish worker); it runs to its
  // end even when the coordinator stopped waiting, which retries it anyway.
  return Serve(ctx, lanes_.work, "Compensate", Cancellable::kNo, resp,
               callers_.Admit(*ctx, "Compensate", /*peers_too=*/false),
               [this, req] { return saga_steps_->Compensate(*req); });
}

namespace {

// An Exchange stream refused before it starts.
class RefusedExchange final : public grpc::ServerBidiReactor<v1::CallBatch, v1::AnswerBatch> {
 public:
  explicit RefusedExchange(const absl::Status& why) { Finish(common::ToGrpcStatus(why)); }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerBidiReactor<v1::CallBatch, v1::AnswerBatch>* ParticipantService::Exchange(
    grpc::CallbackServerContext* ctx) {
  if (absl::Status s = callers_.Admit(*ctx, "Exchange", /*peers_too=*/false); !s.ok()) {
    return new RefusedExchange(s);
  }
  auto* exchange = new CallExchange(
      [this](std::shared_ptr<const v1::StreamedCall> call,
             std::shared_ptr<CallCancellation> cancellation, CallExchange::AnswerFn answer) {
        DispatchStreamed(std::move(call), std::move(cancellation), std::move(answer));
      },
      [this](CallExchange* done) {
        std::lock_guard<std::mutex> lock(streams_mu_);
        streams_.erase(done);
      });
  bool closing;
  {
    std::lock_guard<std::mutex> lock(streams_mu_);
    streams_.insert(exchange);
    closing = closing_;
  }
  if (closing) exchange->Close();
  return exchange;
}

void ParticipantService::CloseStreams() {
  std::lock_guard<std::mutex> lock(streams_mu_);
  closing_ = true;
  for (CallExchange* s : streams_) s->Close();
}

void ParticipantService::DispatchStreamed(std::shared_ptr<const v1::StreamedCall> call,
                                          std::shared_ptr<CallCancellation> cancellation,
                                          CallExchange::AnswerFn answer) {
  const v1::StreamedCall& c = *call;
  switch (c.call_case()) {
    case v1::StreamedCall::kPrepare:
      return ServeStreamed<v1::PrepareBranchResponse>(
          lanes_.work, "Prepare", Cancellable::kYes, c, std::move(cancellation),
          [this, call] { return registry_->Prepare(call->prepare()); },
          [](v1::StreamedAnswer& a, v1::PrepareBranchResponse r) {
            *a.mutable_prepare() = std::move(r);
          },
          std::move(answer));
    case v1::StreamedCall::kCommitOnePhase:
      return ServeStreamed<v1::CommitOnePhaseResponse>(
          lanes_.work, "CommitOnePhase", Cancellable::kYes, c, std::move(cancellation),
          [this, call] { return registry_->CommitOnePhase(call->commit_one_phase()); },
          [](v1::StreamedAnswer& a, v1::CommitOnePhaseResponse r) {
            *a.mutable_commit_one_phase() = std::move(r);
          },
          std::move(answer));
    case v1::StreamedCall::kCommit:
      return ServeStreamed<v1::CommitBranchResponse>(
          lanes_.finish, "Commit", Cancellable::kNo, c, std::move(cancellation),
          [this, call] { return registry_->Commit(call->commit()); },
          [](v1::StreamedAnswer& a, v1::CommitBranchResponse r) {
            *a.mutable_commit() = std::move(r);
          },
          std::move(answer));
    case v1::StreamedCall::kRollback:
      return ServeStreamed<v1::RollbackBranchResponse>(
          lanes_.finish, "Rollback", Cancellable::kNo, c, std::move(cancellation),
          [this, call] { return registry_->Rollback(call->rollback()); },
          [](v1::StreamedAnswer& a, v1::RollbackBranchResponse r) {
            *a.mutable_rollback() = std::move(r);
          },
          std::move(answer));
    case v1::StreamedCall::CALL_NOT_SET:
      break;
  }
  v1::StreamedAnswer a;
  a.set_code(static_cast<int>(absl::StatusCode::kInvalidArgument));
  a.set_message("StreamedCall names no call");
  answer(std::move(a));
}

grpc::ServerUnaryReactor* ParticipantService::Elect(grpc::CallbackServerContext* ctx,
                                                    const v1::ElectRequest* req,
                                                    v1::TerminationReply* resp) {
  return Serve(ctx, lanes_.control, "Elect", Cancellable::kNo, resp,
               callers_.Admit(*ctx, "Elect", /*peers_too=*/true),
               [this, req] { return three_phase_->Elect(*req); });
}

grpc::ServerUnaryReactor* ParticipantService::PreDecide(grpc::CallbackServerContext* ctx,
                                                        const v1::PreDecideRequest* req,
                                                        v1::TerminationReply* resp) {
  return Serve(ctx, lanes_.control, "PreDecide", Cancellable::kNo, resp,
               callers_.Admit(*ctx, "PreDecide", /*peers_too=*/true),
               [this, req] { return three_phase_->PreDecide(*req); });
}

}  // namespace txn::agent
