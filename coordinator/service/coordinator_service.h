// The gRPC edge of txcoord: txn.v1.Coordinator as a callback service that authorizes each call
// (CallAuthorizer: client calls need a client or admin token, the agents' calls an agent or admin
// token) and translates to TransactionDriver calls, passing the caller's principal, and status
// codes, nothing more. Thread-safe.
#pragma once

#include "coordinator/auth/call_authorizer.h"
#include "coordinator/driver/foreign_branches.h"
#include "coordinator/driver/transaction_driver.h"
#include "txn/v1/coordinator.grpc.pb.h"

namespace txn::service {

class CoordinatorService final : public v1::Coordinator::CallbackService {
 public:
  CoordinatorService(driver::TransactionDriver* driver, driver::DeadlockDetector* deadlocks,
                     driver::ForeignBranchBook* foreign, const auth::CallAuthorizer* authorizer)
      : driver_(driver), deadlocks_(deadlocks), foreign_(foreign), authorizer_(authorizer) {}

  grpc::ServerUnaryReactor* Run(grpc::CallbackServerContext* ctx, const v1::RunRequest* req,
                                v1::Outcome* resp) override;
  grpc::ServerUnaryReactor* Begin(grpc::CallbackServerContext* ctx, const v1::BeginRequest* req,
                                  v1::BeginResponse* resp) override;
  grpc::ServerUnaryReactor* Execute(grpc::CallbackServerContext* ctx, const v1::ExecuteRequest* req,
                                    v1::ExecuteResult* resp) override;
  grpc::ServerUnaryReactor* Commit(grpc::CallbackServerContext* ctx, const v1::CommitRequest* req,
                                   v1::Outcome* resp) override;
  grpc::ServerUnaryReactor* Rollback(grpc::CallbackServerContext* ctx,
                                     const v1::RollbackRequest* req, v1::Outcome* resp) override;
  grpc::ServerUnaryReactor* GetTransaction(grpc::CallbackServerContext* ctx,
                                           const v1::GetTransactionRequest* req,
                                           v1::Transaction* resp) override;
  grpc::ServerUnaryReactor* GetDecision(grpc::CallbackServerContext* ctx,
                                        const v1::GetDecisionRequest* req,
                                        v1::GetDecisionResponse* resp) override;
  grpc::ServerUnaryReactor* ReportDecision(grpc::CallbackServerContext* ctx,
                                           const v1::ReportDecisionRequest* req,
                                           v1::ReportDecisionResponse* resp) override;
  grpc::ServerUnaryReactor* ReportWaits(grpc::CallbackServerContext* ctx,
                                        const v1::ReportWaitsRequest* req,
                                        v1::ReportWaitsResponse* resp) override;
  grpc::ServerUnaryReactor* ReportForeignBranches(
      grpc::CallbackServerContext* ctx, const v1::ReportForeignBranchesRequest* req,
      v1::ReportForeignBranchesResponse* resp) override;

 private:
  driver::TransactionDriver* const driver_;
  driver::DeadlockDetector* const deadlocks_;
  driver::ForeignBranchBook* const foreign_;
  const auth::CallAuthorizer* const authorizer_;
};

}  // namespace txn::service
