// The gRPC edge of txagent: txn.v1.Participant, translating to BranchRegistry (2PC branches),
// SagaSteps (saga steps and compensations), ThreePhaseRecords (3PC ELECT / PRE_x) and status
// codes.
//
// Callback service. No handler touches the database on gRPC's threads: each call is queued on a
// lane (WorkLane) and finished from the lane's worker.
//   work     Begin, Execute, Prepare, CommitOnePhase, ExecuteLocal, Compensate: new work, which
//            takes connections and may wait for row locks. Sized by --max-connections; a call
//            past its queue is RESOURCE_EXHAUSTED. Cancellable: a call the coordinator cancels
//            (or whose deadline passes) is not started, or its running statement is
//            interrupted (CallCancellation), so it frees its worker.
//   finish   Commit and Rollback: they release locks, so they never wait behind new work.
//   control  ListInDoubt, Elect, PreDecide: recovery and 3PC termination, apart from both.
// Describe answers at once (no I/O). The coordinator sends Prepare, Commit, Rollback and
// CommitOnePhase of many transactions on one Exchange stream; each runs on the same lane as
// its unary method. Thread-safe.
#pragma once

#include <mutex>
#include <set>

#include "participant-agent/branch_registry.h"
#include "participant-agent/call_exchange.h"
#include "participant-agent/caller_policy.h"
#include "participant-agent/work_lane.h"
#include "participant-agent/saga_steps.h"
#include "participant-agent/three_phase_records.h"
#include "txn/v1/participant.grpc.pb.h"

namespace txn::agent {

struct ServiceLanes {
  WorkLane* work = nullptr;
  WorkLane* finish = nullptr;
  WorkLane* control = nullptr;
};

class ParticipantService final : public v1::Participant::CallbackService {
 public:
  // `adapter` answers Describe's capability fields (they may change once the database is
  // reached); `name` and `backend` come from the agent's flags.
  ParticipantService(BranchRegistry* registry, SagaSteps* saga_steps,
                     ThreePhaseRecords* three_phase, const ResourceAdapter* adapter,
                     ServiceLanes lanes, std::string name, std::string backend,
                     CallerPolicy callers = {})
      : lanes_(lanes),
        callers_(std::move(callers)),
        registry_(registry),
        saga_steps_(saga_steps),
        three_phase_(three_phase),
        adapter_(adapter),
        name_(std::move(name)),
        backend_(std::move(backend)) {}

  grpc::ServerUnaryReactor* Describe(grpc::CallbackServerContext* ctx,
                                     const v1::DescribeRequest* req,
                                     v1::DescribeResponse* resp) override;
  grpc::ServerUnaryReactor* Begin(grpc::CallbackServerContext* ctx,
                                  const v1::BeginBranchRequest* req,
                                  v1::BeginBranchResponse* resp) override;
  grpc::ServerUnaryReactor* Execute(grpc::CallbackServerContext* ctx,
                                    const v1::ExecuteBranchRequest* req,
                                    v1::ExecuteBranchResponse* resp) override;
  grpc::ServerUnaryReactor* Prepare(grpc::CallbackServerContext* ctx,
                                    const v1::PrepareBranchRequest* req,
                                    v1::PrepareBranchResponse* resp) override;
  grpc::ServerUnaryReactor* Commit(grpc::CallbackServerContext* ctx,
                                   const v1::CommitBranchRequest* req,
                                   v1::CommitBranchResponse* resp) override;
  grpc::ServerUnaryReactor* Rollback(grpc::CallbackServerContext* ctx,
                                     const v1::RollbackBranchRequest* req,
                                     v1::RollbackBranchResponse* resp) override;
  grpc::ServerUnaryReactor* CommitOnePhase(grpc::CallbackServerContext* ctx,
                                           const v1::CommitOnePhaseRequest* req,
                                           v1::CommitOnePhaseResponse* resp) override;
  grpc::ServerUnaryReactor* ListInDoubt(grpc::CallbackServerContext* ctx,
                                        const v1::ListInDoubtRequest* req,
                                        v1::ListInDoubtResponse* resp) override;
  grpc::ServerUnaryReactor* ExecuteLocal(grpc::CallbackServerContext* ctx,
                                         const v1::ExecuteLocalRequest* req,
                                         v1::ExecuteLocalResponse* resp) override;
  grpc::ServerUnaryReactor* Compensate(grpc::CallbackServerContext* ctx,
                                       const v1::CompensateRequest* req,
                                       v1::CompensateResponse* resp) override;
  grpc::ServerUnaryReactor* Elect(grpc::CallbackServerContext* ctx, const v1::ElectRequest* req,
                                  v1::TerminationReply* resp) override;
  grpc::ServerUnaryReactor* PreDecide(grpc::CallbackServerContext* ctx,
                                      const v1::PreDecideRequest* req,
                                      v1::TerminationReply* resp) override;
  // Prepare / Commit / Rollback / CommitOnePhase of many transactions on one stream: each call
  // runs on the lane its unary method uses (CallExchange).
  grpc::ServerBidiReactor<v1::CallBatch, v1::AnswerBatch>* Exchange(
      grpc::CallbackServerContext* ctx) override;

  // Ends every Exchange stream once its running calls are answered, and any opened later: call
  // before Server::Shutdown, which would otherwise wait out its deadline for them.
  void CloseStreams();

 private:
  // For a caller admitted only as a 3PC peer: OK when `ref` is a three-phase branch with a
  // record here, else PERMISSION_DENIED. Reads the database: call on a lane.
  absl::Status PeerMayFinish(const v1::BranchRef& ref, bool three_phase);
  void DispatchStreamed(std::shared_ptr<const v1::StreamedCall> call,
                        std::shared_ptr<CallCancellation> cancellation,
                        CallExchange::AnswerFn answer);

  const ServiceLanes lanes_;
  const CallerPolicy callers_;
  std::mutex streams_mu_;
  // Guarded by streams_mu_.
  std::set<CallExchange*> streams_ ABSL_GUARDED_BY(streams_mu_);
  bool closing_ ABSL_GUARDED_BY(streams_mu_) = false;
  BranchRegistry* const registry_;
  SagaSteps* const saga_steps_;
  ThreePhaseRecords* const three_phase_;
  const ResourceAdapter* const adapter_;
  const std::string name_;
  const std::string backend_;
};

}  // namespace txn::agent
