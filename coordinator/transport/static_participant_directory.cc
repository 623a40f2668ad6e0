#include "coordinator/transport/static_participant_directory.h"

#include <future>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "coordinator/transport/grpc_participant_channel.h"
#include "coordinator/transport/streaming_participant_channel.h"

namespace txn::transport {
namespace {

bool AgentDidNotAnswer(const absl::Status& s) {
  return s.code() == absl::StatusCode::kUnavailable ||
         s.code() == absl::StatusCode::kDeadlineExceeded;
}

// Passes every call through to `inner`, reports its outcome to the directory, and records its
// latency and errors in the metrics.
class MonitoredChannel final : public ParticipantChannel {
 public:
  MonitoredChannel(std::unique_ptr<ParticipantChannel> inner, StaticParticipantDirectory* dir)
      : inner_(std::move(inner)), dir_(dir) {
    for (const char* method : {"Execute", "Prepare", "Commit", "Rollback", "CommitOnePhase",
                               "ExecuteLocal", "Compensate", "PreDecide", "Elect"}) {
      latency_[method] = common::DefaultMetrics().GetHistogram(
          "txcoord_participant_rpc_seconds",
          "Latency of calls from the coordinator to participant agents.",
          {{"participant", inner_->name()}, {"method", method}});
    }
  }
  const std::string& name() const override { return inner_->name(); }
  const std::string& address() const override { return inner_->address(); }

#define TXN_MONITORED(Method, Req, Resp, IsProbe)                                      \
  void Method(const v1::Req& req, int64_t timeout_ms, Reply<v1::Resp> done) override { \
    common::Stopwatch watch;                                                           \
    inner_->Method(req, timeout_ms,                                                    \
                   [this, watch, done = std::move(done)](absl::StatusOr<v1::Resp> r) { \
                     dir_->RecordCall(inner_->name(), r.status(), IsProbe);            \
                     if (!(IsProbe)) Observe(#Method, watch.Seconds(), r.status());    \
                     done(std::move(r));                                               \
                   });                                                                 \
  }
  TXN_MONITORED(Describe, DescribeRequest, DescribeResponse, true)
  TXN_MONITORED(Execute, ExecuteBranchRequest, ExecuteBranchResponse, false)
  TXN_MONITORED(Prepare, PrepareBranchRequest, PrepareBranchResponse, false)
  TXN_MONITORED(Commit, CommitBranchRequest, CommitBranchResponse, false)
  TXN_MONITORED(Rollback, RollbackBranchRequest, RollbackBranchResponse, false)
  TXN_MONITORED(CommitOnePhase, CommitOnePhaseRequest, CommitOnePhaseResponse, false)
  TXN_MONITORED(ExecuteLocal, ExecuteLocalRequest, ExecuteLocalResponse, false)
  TXN_MONITORED(Compensate, CompensateRequest, CompensateResponse, false)
  TXN_MONITORED(PreDecide, PreDecideRequest, TerminationReply, false)
  TXN_MONITORED(Elect, ElectRequest, TerminationReply, false)
#undef TXN_MONITORED

 private:
  void Observe(const char* method, double seconds, const absl::Status& status) {
    auto it = latency_.find(method);
    if (it != latency_.end()) it->second->Observe(seconds);
    if (status.ok()) return;
    common::DefaultMetrics()
        .GetCounter("txcoord_participant_rpc_errors_total",
                    "Failed calls from the coordinator to participant agents, by gRPC code.",
                    {{"participant", inner_->name()},
                     {"method", method},
                     {"code", absl::StatusCodeToString(status.code())}})
        ->Inc();
  }

  const std::unique_ptr<ParticipantChannel> inner_;
  StaticParticipantDirectory* const dir_;
  std::map<std::string, common::Histogram*> latency_;  // filled in the constructor only
};

}  // namespace

struct StaticParticipantDirectory::Entry {
  explicit Entry(CircuitOptions circuit_options) : breaker(circuit_options) {}
  std::unique_ptr<MonitoredChannel> channel;
  // Guarded by the directory's mu_.
  CircuitBreaker breaker;
  ParticipantHealth health = ParticipantHealth::kUnknown;
  std::optional<ParticipantCapabilities> capabilities;
  std::string backend;
  uint64_t calls = 0;
  uint64_t failed_calls = 0;
};

absl::StatusOr<std::unique_ptr<StaticParticipantDirectory>> StaticParticipantDirectory::FromSpecs(
    const std::vector<std::string>& specs, common::Clock* clock, DirectoryOptions options) {
  std::map<std::string, std::unique_ptr<ParticipantChannel>> channels;
  for (const auto& spec : specs) {
    auto eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--participant '", spec, "': expected NAME=HOST:PORT"));
    }
    std::string name = spec.substr(0, eq), address = spec.substr(eq + 1);
    if (channels.count(name) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("--participant ", name, " given twice"));
    }
    if (options.stream_calls) {
      channels[name] = std::make_unique<StreamingParticipantChannel>(name, address, options.tls);
    } else {
      channels[name] = std::make_unique<GrpcParticipantChannel>(name, address, options.tls);
    }
  }
  return std::make_unique<StaticParticipantDirectory>(std::move(channels), clock, options);
}

StaticParticipantDirectory::StaticParticipantDirectory(
    std::map<std::string, std::unique_ptr<ParticipantChannel>> channels, common::Clock* clock,
    DirectoryOptions options)
    : clock_(clock), options_(options) {
  for (auto& [name, channel] : channels) {
    auto entry = std::make_unique<Entry>(options_.circuit);
    entry->channel = std::make_unique<MonitoredChannel>(std::move(channel), this);
    entries_[name] = std::move(entry);
  }
  prober_ = std::thread([this] { ProbeLoop(); });
}

StaticParticipantDirectory::~StaticParticipantDirectory() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  prober_.join();
}

void StaticParticipantDirectory::RecordCall(const std::string& name, const absl::Status& status,
                                            bool probe) {
  auto it = entries_.find(name);
  if (it == entries_.end()) return;
  Entry& e = *it->second;
  const int64_t now = clock_->NowMonotonicMs();
  std::lock_guard<std::mutex> lock(mu_);
  if (!probe) ++e.calls;
  if (!AgentDidNotAnswer(status)) {
    if (e.breaker.StateAt(now) != CircuitState::kClosed) {
      common::LogInfo(absl::StrCat("participant=", name, " answering again; circuit closed"));
    }
    e.breaker.RecordSuccess();
    e.health = ParticipantHealth::kServing;  // any answer shows the agent is there
    return;
  }
  if (!probe) ++e.failed_calls;
  const CircuitState before = e.breaker.StateAt(now);
  e.breaker.RecordFailure(now, std::string(status.message()));
  if (before != CircuitState::kOpen && e.breaker.StateAt(now) == CircuitState::kOpen) {
    common::LogWarning(absl::StrCat("participant=", name, " circuit OPEN after ",
                                    e.breaker.consecutive_failures(),
                                    " failed calls; new transactions touching it fail fast for ",
                                    e.breaker.open_until_ms() - now, " ms: ", status.message()));
  }
}

absl::Status StaticParticipantDirectory::Admit(const std::string& name) {
  auto it = entries_.find(name);
  if (it == entries_.end()) {
    return absl::NotFoundError(absl::StrCat("participant '", name, "' is not configured"));
  }
  Entry& e = *it->second;
  const int64_t now = clock_->NowMonotonicMs();
  std::lock_guard<std::mutex> lock(mu_);
  if (e.breaker.AllowNewWork(now)) return absl::OkStatus();
  return absl::UnavailableError(
      absl::StrCat("participant ", name, " is unavailable (circuit open after ",
                   e.breaker.consecutive_failures(), " failed calls, retrying in ",
                   e.breaker.open_until_ms() - now, " ms): ", e.breaker.last_error()));
}

std::vector<ParticipantStatus> StaticParticipantDirectory::Statuses() const {
  const int64_t now = clock_->NowMonotonicMs();
  const int64_t now_unix = clock_->NowUnixMs();
  std::vector<ParticipantStatus> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, e] : entries_) {
    ParticipantStatus s;
    s.name = name;
    s.address = e->channel->address();
    s.health = e->health;
    s.circuit = e->breaker.StateAt(now);
    s.backend = e->backend;
    s.supports_prepare = !e->capabilities || e->capabilities->supports_prepare;
    s.consecutive_failures = e->breaker.consecutive_failures();
    s.last_error = e->breaker.last_error();
    if (s.circuit == CircuitState::kOpen) {
      s.retry_at_unix_ms = now_unix + (e->breaker.open_until_ms() - now);
    }
    s.calls = e->calls;
    s.failed_calls = e->failed_calls;
    out.push_back(std::move(s));
  }
  return out;
}

void StaticParticipantDirectory::ProbeAll() {
  std::vector<std::pair<Entry*, std::future<absl::StatusOr<v1::DescribeResponse>>>> answers;
  for (const auto& [name, e] : entries_) {
    auto answer = std::make_shared<std::promise<absl::StatusOr<v1::DescribeResponse>>>();
    answers.emplace_back(e.get(), answer->get_future());
    e->channel->Describe(
        v1::DescribeRequest(), options_.probe_timeout_ms,
        [answer](absl::StatusOr<v1::DescribeResponse> r) { answer->set_value(std::move(r)); });
  }
  for (auto& [e, answer] : answers) {
    absl::StatusOr<v1::DescribeResponse> r = answer.get();
    std::lock_guard<std::mutex> lock(mu_);
    if (!r.ok()) {
      e->health = ParticipantHealth::kNotServing;
      continue;
    }
    e->health = ParticipantHealth::kServing;
    e->capabilities = ParticipantCapabilities{r->supports_prepare(), r->max_txn_lifetime_ms()};
    e->backend = r->backend();
  }
}

void StaticParticipantDirectory::ProbeLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    lock.unlock();
    ProbeAll();
    lock.lock();
    cv_.wait_for(lock, std::chrono::milliseconds(options_.probe_interval_ms),
                 [this] { return stopping_; });
  }
}

std::optional<ParticipantCapabilities> StaticParticipantDirectory::CapabilitiesOf(
    const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) return std::nullopt;
  std::lock_guard<std::mutex> lock(mu_);
  return it->second->capabilities;
}

ParticipantChannel* StaticParticipantDirectory::Find(const std::string& name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : it->second->channel.get();
}

std::vector<std::string> StaticParticipantDirectory::Names() const {
  std::vector<std::string> names;
  for (const auto& [n, e] : entries_) names.push_back(n);
  return names;
}

}  // namespace txn::transport
