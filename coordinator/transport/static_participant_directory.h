// StaticParticipantDirectory: the participants named on the command line (`NAME=HOST:PORT`),
// each behind a channel that counts its calls and feeds a CircuitBreaker.
//
// A background prober asks every agent to Describe itself every `probe_interval_ms`, in parallel:
// the answer gives the participant's capabilities (an agent may be replaced by one of another
// kind) and its health, and the probe is the circuit breaker's trial call, so an open circuit
// closes soon after the agent is back even when no client tries.
//
// A call counts as failed when the agent did not answer (UNAVAILABLE, DEADLINE_EXCEEDED); an
// answer, even an error, shows the agent is there (and makes its health SERVING until the next
// probe says otherwise).
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "common/clock.h"
#include "common/tls.h"
#include "coordinator/transport/circuit_breaker.h"
#include "coordinator/transport/participant_channel.h"

namespace txn::transport {

struct DirectoryOptions {
  int64_t probe_interval_ms = 250;
  int64_t probe_timeout_ms = 2000;
  CircuitOptions circuit;
  // Prepare / Commit / Rollback / CommitOnePhase on one Exchange stream per agent
  // (StreamingParticipantChannel); false: one unary call each.
  bool stream_calls = true;
  // Mutual TLS to every agent, each expected to present its participant name (common/tls.h).
  std::optional<common::TlsConfig> tls;
};

class StaticParticipantDirectory final : public ParticipantDirectory {
 public:
  // gRPC channels from `NAME=HOST:PORT` specs. INVALID_ARGUMENT naming a malformed or repeated
  // one.
  static absl::StatusOr<std::unique_ptr<StaticParticipantDirectory>> FromSpecs(
      const std::vector<std::string>& specs, common::Clock* clock, DirectoryOptions options = {});
  // `clock` must outlive the directory.
  StaticParticipantDirectory(std::map<std::string, std::unique_ptr<ParticipantChannel>> channels,
                             common::Clock* clock, DirectoryOptions options);
  ~StaticParticipantDirectory() override;

  ParticipantChannel* Find(const std::string& name) const override;
  std::vector<std::string> Names() const override;
  std::optional<ParticipantCapabilities> CapabilitiesOf(const std::string& name) const override;
  absl::Status Admit(const std::string& name) override;
  std::vector<ParticipantStatus> Statuses() const override;

  // Records the outcome of one call to `name` (done by its channel); `probe`: the prober's
  // Describe, which feeds the circuit breaker but not the call counters.
  void RecordCall(const std::string& name, const absl::Status& status, bool probe);

 private:
  struct Entry;
  void ProbeLoop();
  void ProbeAll();

  common::Clock* const clock_;
  const DirectoryOptions options_;
  std::map<std::string, std::unique_ptr<Entry>> entries_;  // the set is fixed at construction
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  std::thread prober_;
};

}  // namespace txn::transport
