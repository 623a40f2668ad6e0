// SimNetwork: the simulated links between the coordinator and each agent. A message is delayed
// by a random time (so messages overtake each other), dropped or duplicated with the run's
// chances, and lost while its link is cut (a partition); a crashed receiver gets nothing.
// SimChannel is the coordinator's ParticipantChannel over it: each call is answered once, by
// the agent's reply or, when that never comes, by DEADLINE_EXCEEDED at the call's timeout; a
// call to an agent that is down is refused (UNAVAILABLE) like a closed port.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "coordinator/transport/participant_channel.h"
#include "tests/sim/sim_scheduler.h"

namespace txn::sim {

struct NetworkFaults {
  double drop = 0;
  double duplicate = 0;
  int64_t min_delay_ms = 1;
  int64_t max_delay_ms = 1;
};

class SimNetwork {
 public:
  explicit SimNetwork(SimScheduler* scheduler) : scheduler_(scheduler) {}
  void set_faults(const NetworkFaults& faults) { faults_ = faults; }
  const NetworkFaults& faults() const { return faults_; }
  void Cut(const std::string& agent, bool cut) { cut_[agent] = cut; }
  bool IsCut(const std::string& agent) const {
    auto it = cut_.find(agent);
    return it != cut_.end() && it->second;
  }
  void HealAll() { cut_.clear(); }

  // Carries `deliver` over the link to or from `agent`: later, maybe never, maybe twice. A cut
  // link loses what is sent over it and what is on it when it is cut.
  void Send(const std::string& agent, const std::function<void()>& deliver);

 private:
  SimScheduler* const scheduler_;
  NetworkFaults faults_;
  std::map<std::string, bool> cut_;
};

class SimAgent;

class SimChannel final : public transport::ParticipantChannel {
 public:
  // `coordinator`: the coordinator's life (answers to a crashed coordinator are dropped).
  SimChannel(SimScheduler* scheduler, SimNetwork* network, SimAgent* agent,
             const NodeLife* coordinator);

  const std::string& name() const override;
  const std::string& address() const override;
  // What its Describe answers (the simulation's directory knows it without asking).
  bool supports_prepare() const;
  void Describe(const v1::DescribeRequest& req, int64_t timeout_ms,
                transport::Reply<v1::DescribeResponse> done) override;
  void Execute(const v1::ExecuteBranchRequest& req, int64_t timeout_ms,
               transport::Reply<v1::ExecuteBranchResponse> done) override;
  void Prepare(const v1::PrepareBranchRequest& req, int64_t timeout_ms,
               transport::Reply<v1::PrepareBranchResponse> done) override;
  void Commit(const v1::CommitBranchRequest& req, int64_t timeout_ms,
              transport::Reply<v1::CommitBranchResponse> done) override;
  void Rollback(const v1::RollbackBranchRequest& req, int64_t timeout_ms,
                transport::Reply<v1::RollbackBranchResponse> done) override;
  void CommitOnePhase(const v1::CommitOnePhaseRequest& req, int64_t timeout_ms,
                      transport::Reply<v1::CommitOnePhaseResponse> done) override;
  void ExecuteLocal(const v1::ExecuteLocalRequest& req, int64_t timeout_ms,
                    transport::Reply<v1::ExecuteLocalResponse> done) override;
  void Compensate(const v1::CompensateRequest& req, int64_t timeout_ms,
                  transport::Reply<v1::CompensateResponse> done) override;
  void PreDecide(const v1::PreDecideRequest& req, int64_t timeout_ms,
                 transport::Reply<v1::TerminationReply> done) override;
  void Elect(const v1::ElectRequest& req, int64_t timeout_ms,
             transport::Reply<v1::TerminationReply> done) override;

 private:
  // Sends `req` to the agent, runs `serve` there, and carries its answer back.
  template <typename Resp, typename Serve>
  void Call(int64_t timeout_ms, transport::Reply<Resp> done, Serve serve);

  SimScheduler* const scheduler_;
  SimNetwork* const network_;
  SimAgent* const agent_;
  const NodeLife* const coordinator_;
};

// The configured agents; every one is admitted and can prepare.
class SimDirectory final : public transport::ParticipantDirectory {
 public:
  void Add(std::unique_ptr<SimChannel> channel);
  transport::ParticipantChannel* Find(const std::string& name) const override;
  std::vector<std::string> Names() const override;
  std::optional<transport::ParticipantCapabilities> CapabilitiesOf(
      const std::string& name) const override;
  absl::Status Admit(const std::string& name) override { return absl::OkStatus(); }
  std::vector<transport::ParticipantStatus> Statuses() const override { return {}; }

 private:
  std::map<std::string, std::unique_ptr<SimChannel>> channels_;
};

}  // namespace txn::sim
