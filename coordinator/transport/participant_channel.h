// ParticipantChannel: how the coordinator reaches one agent. Calls are asynchronous: the
// callback runs once, on a transport thread, with the response or a status (UNAVAILABLE,
// DEADLINE_EXCEEDED, or the agent's own error). The seam where one unary call per message can be
// replaced by a batching stream without touching the driver. Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/transport/circuit_breaker.h"
#include "txn/v1/participant.pb.h"

namespace txn::transport {

template <typename T>
using Reply = std::function<void(absl::StatusOr<T>)>;

// What an agent said of its resource (Participant.Describe).
struct ParticipantCapabilities {
  bool supports_prepare = true;
  int64_t max_txn_lifetime_ms = 0;  // 0: no limit
};

class ParticipantChannel {
 public:
  virtual ~ParticipantChannel() = default;
  virtual const std::string& name() const = 0;
  virtual const std::string& address() const = 0;
  virtual void Describe(const v1::DescribeRequest& req, int64_t timeout_ms,
                        Reply<v1::DescribeResponse> done) = 0;
  virtual void Execute(const v1::ExecuteBranchRequest& req, int64_t timeout_ms,
                       Reply<v1::ExecuteBranchResponse> done) = 0;
  virtual void Prepare(const v1::PrepareBranchRequest& req, int64_t timeout_ms,
                       Reply<v1::PrepareBranchResponse> done) = 0;
  virtual void Commit(const v1::CommitBranchRequest& req, int64_t timeout_ms,
                      Reply<v1::CommitBranchResponse> done) = 0;
  virtual void Rollback(const v1::RollbackBranchRequest& req, int64_t timeout_ms,
                        Reply<v1::RollbackBranchResponse> done) = 0;
  virtual void CommitOnePhase(const v1::CommitOnePhaseRequest& req, int64_t timeout_ms,
                              Reply<v1::CommitOnePhaseResponse> done) = 0;
  // Sagas.
  virtual void ExecuteLocal(const v1::ExecuteLocalRequest& req, int64_t timeout_ms,
                            Reply<v1::ExecuteLocalResponse> done) = 0;
  virtual void Compensate(const v1::CompensateRequest& req, int64_t timeout_ms,
                          Reply<v1::CompensateResponse> done) = 0;
  // Three-phase commit: PRE_COMMIT / PRE_ABORT, and a termination round's ELECT.
  virtual void PreDecide(const v1::PreDecideRequest& req, int64_t timeout_ms,
                         Reply<v1::TerminationReply> done) = 0;
  virtual void Elect(const v1::ElectRequest& req, int64_t timeout_ms,
                     Reply<v1::TerminationReply> done) = 0;
};

enum class ParticipantHealth { kUnknown, kServing, kNotServing };

// What the coordinator knows of one participant, for operators (Admin.ListParticipants).
struct ParticipantStatus {
  std::string name;
  std::string address;
  ParticipantHealth health = ParticipantHealth::kUnknown;
  CircuitState circuit = CircuitState::kClosed;
  std::string backend;
  bool supports_prepare = true;
  int consecutive_failures = 0;
  std::string last_error;
  int64_t retry_at_unix_ms = 0;
  uint64_t calls = 0;
  uint64_t failed_calls = 0;
};

// The configured participants, by name. The set is fixed after construction; thread-safe.
class ParticipantDirectory {
 public:
  virtual ~ParticipantDirectory() = default;
  // nullptr when `name` is not configured.
  virtual ParticipantChannel* Find(const std::string& name) const = 0;
  virtual std::vector<std::string> Names() const = 0;
  // What the participant's agent last said of itself; nullopt until it has been reached.
  virtual std::optional<ParticipantCapabilities> CapabilitiesOf(const std::string& name) const = 0;
  // May a new transaction use `name` now? UNAVAILABLE naming it while its circuit is open.
  virtual absl::Status Admit(const std::string& name) = 0;
  // Every participant, in name order.
  virtual std::vector<ParticipantStatus> Statuses() const = 0;
};

}  // namespace txn::transport
