// StreamingParticipantChannel: a ParticipantChannel that carries Prepare, Commit, Rollback and
// CommitOnePhase of many transactions on one long-lived Participant.Exchange stream per agent,
// in batches, instead of one unary RPC each. On a 2-core machine the per-RPC cost of gRPC, not
// the disk, limits how many protocol messages a second the coordinator and agents can move; a
// stream message costs a fraction of a unary call, and calls that pile up while a write is in
// flight leave together in the next one.
//
// Calls are matched to answers by id. Each call has its own deadline, enforced here (a sweeper
// thread expires it with DEADLINE_EXCEEDED, as a unary call's deadline would); the agent is told
// the time left so that it does not start a call nobody waits for. When the stream ends (agent
// restart, connection lost) every call in flight fails with UNAVAILABLE, as unary calls would,
// and the next call opens a new stream, which waits for the agent to be reachable
// (wait_for_ready). A stream on which calls expire while nothing at all was answered is
// presumed dead (a silent network) and cancelled. An agent without Exchange (UNIMPLEMENTED)
// makes the channel fall back to unary calls for good. Other methods, and calls too large for a
// batch, are unary (GrpcParticipantChannel over the same gRPC channel).
//
// Thread-safe; replies run on gRPC or sweeper threads and must not block.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "coordinator/transport/grpc_participant_channel.h"
#include "txn/v1/participant.grpc.pb.h"

namespace txn::transport {

class StreamingParticipantChannel final : public ParticipantChannel {
 public:
  StreamingParticipantChannel(std::string name, std::string address,
                              const std::optional<common::TlsConfig>& tls = std::nullopt);
  ~StreamingParticipantChannel() override;

  const std::string& name() const override { return unary_.name(); }
  const std::string& address() const override { return unary_.address(); }
  void Describe(const v1::DescribeRequest& req, int64_t timeout_ms,
                Reply<v1::DescribeResponse> done) override {
    unary_.Describe(req, timeout_ms, std::move(done));
  }
  void Execute(const v1::ExecuteBranchRequest& req, int64_t timeout_ms,
               Reply<v1::ExecuteBranchResponse> done) override {
    unary_.Execute(req, timeout_ms, std::move(done));
  }
  void Prepare(const v1::PrepareBranchRequest& req, int64_t timeout_ms,
               Reply<v1::PrepareBranchResponse> done) override;
  void Commit(const v1::CommitBranchRequest& req, int64_t timeout_ms,
              Reply<v1::CommitBranchResponse> done) override;
  void Rollback(const v1::RollbackBranchRequest& req, int64_t timeout_ms,
                Reply<v1::RollbackBranchResponse> done) override;
  void CommitOnePhase(const v1::CommitOnePhaseRequest& req, int64_t timeout_ms,
                      Reply<v1::CommitOnePhaseResponse> done) override;
  void ExecuteLocal(const v1::ExecuteLocalRequest& req, int64_t timeout_ms,
                    Reply<v1::ExecuteLocalResponse> done) override {
    unary_.ExecuteLocal(req, timeout_ms, std::move(done));
  }
  void Compensate(const v1::CompensateRequest& req, int64_t timeout_ms,
                  Reply<v1::CompensateResponse> done) override {
    unary_.Compensate(req, timeout_ms, std::move(done));
  }
  void PreDecide(const v1::PreDecideRequest& req, int64_t timeout_ms,
                 Reply<v1::TerminationReply> done) override {
    unary_.PreDecide(req, timeout_ms, std::move(done));
  }
  void Elect(const v1::ElectRequest& req, int64_t timeout_ms,
             Reply<v1::TerminationReply> done) override {
    unary_.Elect(req, timeout_ms, std::move(done));
  }

  class Stream;  // one Exchange call (streaming_participant_channel.cc)
  using AnswerReply = std::function<void(absl::StatusOr<v1::StreamedAnswer>)>;

 private:
  // Sends `call` (id unset) on the current stream, opening one if needed. `done` gets the
  // agent's answer, or UNAVAILABLE / DEADLINE_EXCEEDED.
  void Send(v1::StreamedCall call, int64_t timeout_ms, AnswerReply done);
  // Whether `call` goes on the stream (small enough for a batch, and the agent has Exchange).
  bool Streamable(const google::protobuf::Message& req) const;
  void SweepLoop();

  std::shared_ptr<grpc::Channel> channel_;
  GrpcParticipantChannel unary_;
  std::unique_ptr<v1::Participant::Stub> stub_;
  std::atomic<bool> unsupported_{false};  // the agent answered UNIMPLEMENTED to Exchange

  std::mutex mu_;
  std::condition_variable cv_;
  // Guarded by mu_.
  std::shared_ptr<Stream> stream_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread sweeper_;
};

}  // namespace txn::transport
