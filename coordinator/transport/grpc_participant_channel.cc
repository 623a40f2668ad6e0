#include "coordinator/transport/grpc_participant_channel.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"

namespace txn::transport {
namespace {

// Starts one unary call. `start` invokes the async stub method; call state lives until the
// callback has run. With `wait_for_ready` a call made while the agent is unreachable waits (until
// its deadline) for the connection instead of failing at once: after an agent restart the
// channel may still be in reconnect backoff, and protocol messages should ride that out.
template <typename Req, typename Resp, typename Start>
void Call(const std::string& participant, const Req& req, int64_t timeout_ms, bool wait_for_ready,
          Reply<Resp> done, Start start) {
  struct State {
    grpc::ClientContext ctx;
    Req req;
    Resp resp;
    Reply<Resp> done;
  };
  auto state = std::make_shared<State>();
  state->req = req;
  state->done = std::move(done);
  state->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  state->ctx.set_wait_for_ready(wait_for_ready);
  start(&state->ctx, &state->req, &state->resp, [state, participant](grpc::Status s) {
    if (s.ok()) {
      state->done(std::move(state->resp));
      return;
    }
    absl::Status st = common::ToAbslStatus(s);
    state->done(
        absl::Status(st.code(), absl::StrCat("participant ", participant, ": ", st.message())));
  });
}

}  // namespace

std::shared_ptr<grpc::Channel> GrpcParticipantChannel::Connect(
    const std::string& address, const std::optional<common::TlsConfig>& tls,
    const std::string& identity) {
  grpc::ChannelArguments args;
  // Reconnect quickly after an agent restart.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  return common::MakeChannel(address, tls, identity, args);
}

GrpcParticipantChannel::GrpcParticipantChannel(std::string name, std::string address,
                                               const std::optional<common::TlsConfig>& tls)
    : GrpcParticipantChannel(name, address, Connect(address, tls, name)) {}

GrpcParticipantChannel::GrpcParticipantChannel(std::string name, std::string address,
                                               std::shared_ptr<grpc::Channel> channel)
    : name_(std::move(name)),
      address_(std::move(address)),
      stub_(v1::Participant::NewStub(std::move(channel))) {}

#define TXN_DEFINE_CALL(Method, Req, Resp, WaitForReady)                                    \
  void GrpcParticipantChannel::Method(const v1::Req& req, int64_t timeout_ms,               \
                                      Reply<v1::Resp> done) {                               \
    Call<v1::Req, v1::Resp>(name_, req, timeout_ms, WaitForReady, std::move(done),          \
                            [this](grpc::ClientContext* c, const v1::Req* rq, v1::Resp* rs, \
                                   std::function<void(grpc::Status)> cb) {                  \
                              stub_->async()->Method(c, rq, rs, std::move(cb));             \
                            });                                                             \
  }

// Describe is a probe: it fails fast.
TXN_DEFINE_CALL(Describe, DescribeRequest, DescribeResponse, false)
TXN_DEFINE_CALL(Execute, ExecuteBranchRequest, ExecuteBranchResponse, true)
TXN_DEFINE_CALL(Prepare, PrepareBranchRequest, PrepareBranchResponse, true)
TXN_DEFINE_CALL(Commit, CommitBranchRequest, CommitBranchResponse, true)
TXN_DEFINE_CALL(Rollback, RollbackBranchRequest, RollbackBranchResponse, true)
TXN_DEFINE_CALL(CommitOnePhase, CommitOnePhaseRequest, CommitOnePhaseResponse, true)
TXN_DEFINE_CALL(ExecuteLocal, ExecuteLocalRequest, ExecuteLocalResponse, true)
TXN_DEFINE_CALL(Compensate, CompensateRequest, CompensateResponse, true)
TXN_DEFINE_CALL(PreDecide, PreDecideRequest, TerminationReply, true)
TXN_DEFINE_CALL(Elect, ElectRequest, TerminationReply, true)
#undef TXN_DEFINE_CALL

}  // namespace txn::transport
