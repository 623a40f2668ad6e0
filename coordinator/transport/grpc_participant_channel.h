// ParticipantChannel over one gRPC channel per agent, one unary call per message, using the
// callback API (no thread blocks on a call).
#pragma once

#include <optional>

#include "common/tls.h"
#include "coordinator/transport/participant_channel.h"
#include "txn/v1/participant.grpc.pb.h"

namespace txn::transport {

class GrpcParticipantChannel final : public ParticipantChannel {
 public:
  // `tls`: mutual TLS expecting the agent's certificate to name `name` (common/tls.h).
  GrpcParticipantChannel(std::string name, std::string address,
                         const std::optional<common::TlsConfig>& tls = std::nullopt);
  // Over an existing gRPC channel to `address` (shared with a StreamingParticipantChannel).
  GrpcParticipantChannel(std::string name, std::string address,
                         std::shared_ptr<grpc::Channel> channel);
  // A gRPC channel to an agent, set to reconnect quickly after the agent restarts.
  static std::shared_ptr<grpc::Channel> Connect(const std::string& address,
                                                const std::optional<common::TlsConfig>& tls,
                                                const std::string& identity);

  const std::string& name() const override { return name_; }
  const std::string& address() const override { return address_; }
  void Describe(const v1::DescribeRequest& req, int64_t timeout_ms,
                Reply<v1::DescribeResponse> done) override;
  void Execute(const v1::ExecuteBranchRequest& req, int64_t timeout_ms,
               Reply<v1::ExecuteBranchResponse> done) override;
  void Prepare(const v1::PrepareBranchRequest& req, int64_t timeout_ms,
               Reply<v1::PrepareBranchResponse> done) override;
  void Commit(const v1::CommitBranchRequest& req, int64_t timeout_ms,
              Reply<v1::CommitBranchResponse> done) override;
  void Rollback(const v1::RollbackBranchRequest& req, int64_t timeout_ms,
                Reply<v1::RollbackBranchResponse> done) override;
  void CommitOnePhase(const v1::CommitOnePhaseRequest& req, int64_t timeout_ms,
                      Reply<v1::CommitOnePhaseResponse> done) override;
  void ExecuteLocal(const v1::ExecuteLocalRequest& req, int64_t timeout_ms,
                    Reply<v1::ExecuteLocalResponse> done) override;
  void Compensate(const v1::CompensateRequest& req, int64_t timeout_ms,
                  Reply<v1::CompensateResponse> done) override;
  void PreDecide(const v1::PreDecideRequest& req, int64_t timeout_ms,
                 Reply<v1::TerminationReply> done) override;
  void Elect(const v1::ElectRequest& req, int64_t timeout_ms,
             Reply<v1::TerminationReply> done) override;

 private:
  const std::string name_;
  const std::string address_;
  std::unique_ptr<v1::Participant::Stub> stub_;
};

}  // namespace txn::transport
