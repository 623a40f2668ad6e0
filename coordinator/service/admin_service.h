// The gRPC edge of the operators' API, txn.v1.Admin (used by txctl): transactions from the
// driver, participants from the directory. Every call needs an admin token when txcoord has a
// token file (CallAuthorizer); a resolution is logged with the principal that asked for it.
// Thread-safe.
#pragma once

#include "coordinator/auth/call_authorizer.h"
#include "coordinator/driver/foreign_branches.h"
#include "coordinator/driver/transaction_driver.h"
#include "coordinator/transport/participant_channel.h"
#include "txn/v1/coordinator.grpc.pb.h"

namespace txn::service {

class AdminService final : public v1::Admin::CallbackService {
 public:
  AdminService(driver::TransactionDriver* driver, transport::ParticipantDirectory* participants,
               driver::DeadlockDetector* deadlocks, const driver::ForeignBranchBook* foreign,
               const auth::CallAuthorizer* authorizer)
      : driver_(driver),
        participants_(participants),
        deadlocks_(deadlocks),
        foreign_(foreign),
        authorizer_(authorizer) {}

  grpc::ServerUnaryReactor* ListTransactions(grpc::CallbackServerContext* ctx,
                                             const v1::ListTransactionsRequest* req,
                                             v1::ListTransactionsResponse* resp) override;
  grpc::ServerUnaryReactor* ResolveTransaction(grpc::CallbackServerContext* ctx,
                                               const v1::ResolveTransactionRequest* req,
                                               v1::Outcome* resp) override;
  grpc::ServerUnaryReactor* ListParticipants(grpc::CallbackServerContext* ctx,
                                             const v1::ListParticipantsRequest* req,
                                             v1::ListParticipantsResponse* resp) override;
  grpc::ServerUnaryReactor* GetStats(grpc::CallbackServerContext* ctx,
                                     const v1::GetStatsRequest* req, v1::Stats* resp) override;
  grpc::ServerUnaryReactor* ListWaits(grpc::CallbackServerContext* ctx,
                                      const v1::ListWaitsRequest* req,
                                      v1::ListWaitsResponse* resp) override;
  grpc::ServerUnaryReactor* ListForeignBranches(grpc::CallbackServerContext* ctx,
                                                const v1::ListForeignBranchesRequest* req,
                                                v1::ListForeignBranchesResponse* resp) override;

 private:
  driver::TransactionDriver* const driver_;
  transport::ParticipantDirectory* const participants_;
  driver::DeadlockDetector* const deadlocks_;
  const driver::ForeignBranchBook* const foreign_;
  const auth::CallAuthorizer* const authorizer_;
};

}  // namespace txn::service
