#include "tests/sim/sim_network.h"

#include <utility>

#include "tests/sim/sim_agent.h"

namespace txn::sim {

void SimNetwork::Send(const std::string& agent, const std::function<void()>& deliver) {
  if (IsCut(agent) || scheduler_->Chance(faults_.drop)) return;
  const int copies = scheduler_->Chance(faults_.duplicate) ? 2 : 1;
  for (int i = 0; i < copies; ++i) {
    scheduler_->After(scheduler_->Between(faults_.min_delay_ms, faults_.max_delay_ms),
                      [this, agent, deliver] {
                        if (!IsCut(agent)) deliver();
                      });
  }
}

SimChannel::SimChannel(SimScheduler* scheduler, SimNetwork* network, SimAgent* agent,
                       const NodeLife* coordinator)
    : scheduler_(scheduler), network_(network), agent_(agent), coordinator_(coordinator) {}

const std::string& SimChannel::name() const { return agent_->name(); }
const std::string& SimChannel::address() const { return agent_->name(); }

template <typename Resp, typename Serve>
void SimChannel::Call(int64_t timeout_ms, transport::Reply<Resp> done, Serve serve) {
  // One answer per call, whichever comes first: the agent's (perhaps twice, if the network
  // duplicated the request or the answer) or the timeout.
  auto answer = std::make_shared<transport::Reply<Resp>>(std::move(done));
  auto finish = [answer](absl::StatusOr<Resp> result) {
    if (*answer == nullptr) return;
    auto reply = std::move(*answer);
    *answer = nullptr;
    reply(std::move(result));
  };
  scheduler_->After(timeout_ms, coordinator_->Bind([finish] {
    finish(absl::DeadlineExceededError("the simulated call timed out"));
  }));
  const std::string agent = agent_->name();
  network_->Send(agent, [this, agent, finish, serve] {
    if (!agent_->life().up()) {
      network_->Send(agent, coordinator_->Bind([finish] {
        finish(absl::UnavailableError("the simulated agent is down"));
      }));
      return;
    }
    absl::StatusOr<Resp> result = serve(agent_->registry());
    network_->Send(agent, coordinator_->Bind([finish, result] { finish(result); }));
  });
}

bool SimChannel::supports_prepare() const { return agent_->database().supports_prepare(); }

void SimChannel::Describe(const v1::DescribeRequest& req, int64_t timeout_ms,
                          transport::Reply<v1::DescribeResponse> done) {
  Call<v1::DescribeResponse>(timeout_ms, std::move(done), [this](agent::BranchRegistry&) {
    v1::DescribeResponse resp;
    resp.set_name(agent_->name());
    resp.set_backend("sim");
    resp.set_supports_prepare(supports_prepare());
    return absl::StatusOr<v1::DescribeResponse>(resp);
  });
}

void SimChannel::Execute(const v1::ExecuteBranchRequest& req, int64_t timeout_ms,
                         transport::Reply<v1::ExecuteBranchResponse> done) {
  Call<v1::ExecuteBranchResponse>(timeout_ms, std::move(done),
                                  [req](agent::BranchRegistry& r) { return r.Execute(req); });
}

void SimChannel::Prepare(const v1::PrepareBranchRequest& req, int64_t timeout_ms,
                         transport::Reply<v1::PrepareBranchResponse> done) {
  Call<v1::PrepareBranchResponse>(timeout_ms, std::move(done),
                                  [req](agent::BranchRegistry& r) { return r.Prepare(req); });
}

void SimChannel::Commit(const v1::CommitBranchRequest& req, int64_t timeout_ms,
                        transport::Reply<v1::CommitBranchResponse> done) {
  Call<v1::CommitBranchResponse>(timeout_ms, std::move(done),
                                 [req](agent::BranchRegistry& r) { return r.Commit(req); });
}

void SimChannel::Rollback(const v1::RollbackBranchRequest& req, int64_t timeout_ms,
                          transport::Reply<v1::RollbackBranchResponse> done) {
  Call<v1::RollbackBranchResponse>(timeout_ms, std::move(done),
                                   [req](agent::BranchRegistry& r) { return r.Rollback(req); });
}

void SimChannel::CommitOnePhase(const v1::CommitOnePhaseRequest& req, int64_t timeout_ms,
                                transport::Reply<v1::CommitOnePhaseResponse> done) {
  Call<v1::CommitOnePhaseResponse>(
      timeout_ms, std::move(done), [req](agent::BranchRegistry& r) { return r.CommitOnePhase(req); });
}

void SimChannel::ExecuteLocal(const v1::ExecuteLocalRequest& req, int64_t timeout_ms,
                              transport::Reply<v1::ExecuteLocalResponse> done) {
  Call<v1::ExecuteLocalResponse>(timeout_ms, std::move(done), [this, req](agent::BranchRegistry&) {
    return agent_->saga_steps().ExecuteLocal(req);
  });
}

void SimChannel::Compensate(const v1::CompensateRequest& req, int64_t timeout_ms,
                            transport::Reply<v1::CompensateResponse> done) {
  Call<v1::CompensateResponse>(timeout_ms, std::move(done), [this, req](agent::BranchRegistry&) {
    return agent_->saga_steps().Compensate(req);
  });
}

void SimChannel::PreDecide(const v1::PreDecideRequest& req, int64_t timeout_ms,
                           transport::Reply<v1::TerminationReply> done) {
  Call<v1::TerminationReply>(timeout_ms, std::move(done), [this, req](agent::BranchRegistry&) {
    return agent_->three_phase().PreDecide(req);
  });
}

void SimChannel::Elect(const v1::ElectRequest& req, int64_t timeout_ms,
                       transport::Reply<v1::TerminationReply> done) {
  Call<v1::TerminationReply>(timeout_ms, std::move(done), [this, req](agent::BranchRegistry&) {
    return agent_->three_phase().Elect(req);
  });
}

void SimDirectory::Add(std::unique_ptr<SimChannel> channel) {
  const std::string name = channel->name();
  channels_[name] = std::move(channel);
}

transport::ParticipantChannel* SimDirectory::Find(const std::string& name) const {
  auto it = channels_.find(name);
  return it == channels_.end() ? nullptr : it->second.get();
}

std::vector<std::string> SimDirectory::Names() const {
  std::vector<std::string> names;
  for (const auto& [name, c] : channels_) names.push_back(name);
  return names;
}

std::optional<transport::ParticipantCapabilities> SimDirectory::CapabilitiesOf(
    const std::string& name) const {
  auto it = channels_.find(name);
  if (it == channels_.end()) return std::nullopt;
  return transport::ParticipantCapabilities{.supports_prepare = it->second->supports_prepare()};
}

}  // namespace txn::sim
