// ParticipantChannel over one gRPC channel per agent, one unary call per message, using the
// callback API (no thread blocks on a call).
#pragma once

#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "coordinator/transport/participant_channel.h"
#include "txn/v1/participant.grpc.pb.h"

namespace txn::transport {

class GrpcParticipantChannel final : public ParticipantChannel {
 public:
  GrpcParticipantChannel(std::string name, std::string address);

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

 private:
  const std::string name_;
  const std::string address_;
  std::unique_ptr<v1::Participant::Stub> stub_;
};

// Participants from `NAME=HOST:PORT` specs. INVALID_ARGUMENT naming a malformed or repeated one.
// A background thread asks each agent to Describe itself: every `probe_interval_ms` until it
// answers, then every 40 intervals (an agent may be replaced by one of another kind).
class StaticParticipantDirectory final : public ParticipantDirectory {
 public:
  static absl::StatusOr<std::unique_ptr<StaticParticipantDirectory>> FromSpecs(
      const std::vector<std::string>& specs, int64_t probe_interval_ms = 250);
  StaticParticipantDirectory(std::map<std::string, std::unique_ptr<ParticipantChannel>> channels,
                             int64_t probe_interval_ms);
  ~StaticParticipantDirectory() override;

  ParticipantChannel* Find(const std::string& name) const override;
  std::vector<std::string> Names() const override;
  std::optional<ParticipantCapabilities> CapabilitiesOf(const std::string& name) const override;

 private:
  void ProbeLoop();

  const std::map<std::string, std::unique_ptr<ParticipantChannel>> channels_;
  const int64_t probe_interval_ms_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, ParticipantCapabilities> capabilities_;  // guarded by mu_
  bool stopping_ = false;                                        // guarded by mu_
  std::thread prober_;
};

}  // namespace txn::transport
