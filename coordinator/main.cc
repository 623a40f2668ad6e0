// txcoord: the transaction coordinator daemon. See DESIGN.md.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <set>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/failpoint.h"
#include "common/flags.h"
#include "common/ids.h"
#include "common/logging.h"
#include "common/metrics_server.h"
#include "common/process_setup.h"
#include "common/termination_signals.h"
#include "common/timer_queue.h"
#include "common/tls.h"
#include "coordinator/auth/call_authorizer.h"
#include "coordinator/driver/transaction_driver.h"
#include "coordinator/log/group_commit_log.h"
#include "coordinator/log/rocksdb_decision_log.h"
#include "coordinator/service/admin_service.h"
#include "coordinator/service/coordinator_service.h"
#include "coordinator/transport/static_participant_directory.h"

namespace txn {
namespace {

common::FlagSet CoordinatorFlags() {
  common::FlagSet f("txcoord",
                    "Distributed-transaction coordinator: 2PC over txagent participants, decisions "
                    "durable in RocksDB.");
  f.Add({"listen", "HOST:PORT", "address for the Coordinator API", "127.0.0.1:7700"});
  f.Add({"data-dir", "DIR", "RocksDB decision log folder (created if missing)", ""});
  f.Add({"participant", "NAME=HOST:PORT", "a participant agent", "", /*repeated=*/true});
  f.Add({"node-id", "ID", "this coordinator's id in transaction ids ([a-z0-9]{1,16})", "n1"});
  f.Add({"prepare-timeout-ms", "MS", "abort when a vote takes longer", "10000"});
  f.Add({"rpc-timeout-ms", "MS", "deadline of each commit/rollback call to an agent", "5000"});
  f.Add({"termination-timeout-ms", "MS",
         "3PC: wait this long for pre-commit ACKs before running a termination round", "2000"});
  f.Add({"txn-timeout-ms", "MS", "default deadline of an interactive transaction", "60000"});
  f.Add({"retry-initial-ms", "MS", "first commit retry delay", "50"});
  f.Add({"retry-max-ms", "MS", "commit retry delay cap", "5000"});
  f.Add({"retention-ms", "MS", "keep finished COMMIT records this long", "86400000"});
  f.Add({"max-active", "N", "transactions in flight before RESOURCE_EXHAUSTED", "10000"});
  f.Add({"unary-calls", "",
         "one unary RPC per Prepare / Commit / Rollback instead of one batching stream per "
         "agent",
         ""});
  f.Add({"no-one-phase", "",
         "prepare and log single-branch transactions too (only to measure what one-phase "
         "commit saves)",
         ""});
  f.Add({"log-min-free-mb", "MB",
         "refuse decision writes (fail closed) while the data dir has less free space", "64"});
  f.Add({"log-format", "text|json", common::kLogFormatFlagHelp, "text"});
  f.Add(
      {"metrics-listen", "HOST:PORT", "serve Prometheus metrics at http://HOST:PORT/metrics", ""});
  f.Add({"probe-interval-ms", "MS", "how often each agent's health is probed", "250"});
  f.Add({"circuit-failures", "N",
         "consecutive failed calls to a participant that open its circuit (new transactions "
         "touching it then fail fast with UNAVAILABLE)",
         "5"});
  f.Add({"circuit-open-ms", "MS", "how long an open circuit refuses before a trial", "1000"});
  f.Add({"circuit-max-open-ms", "MS", "cap of the open period, which doubles per failed trial",
         "30000"});
  f.Add({"no-deadlock-detection", "",
         "take agents' lock-wait reports but never abort a deadlock victim (cross-database "
         "deadlocks then end at the agents' --lock-timeout-ms)",
         ""});
  f.Add({"wait-report-ttl-ms", "MS",
         "drop an agent's lock-wait report not renewed within this long", "1000"});
  common::AddTlsFlags(&f);
  f.Add({"max-message-bytes", "N",
         "largest gRPC message received or sent; a larger request is RESOURCE_EXHAUSTED",
         "4194304"});
  f.Add({"token-file", "FILE",
         "require bearer tokens: one 'SCOPE TOKEN [NAME]' per line, scopes client, admin, agent; "
         "re-read on SIGHUP",
         ""});
  f.Add({"idempotency-capacity", "N",
         "idempotency keys remembered at most (a new key beyond it is RESOURCE_EXHAUSTED)",
         "1000000"});
  f.Add({"idempotency-keys-per-principal", "N",
         "idempotency keys one principal (a token's name) may hold at once; 0 = no share",
         "100000"});
  f.Add({"max-active-per-principal", "N",
         "transactions one principal (a token's name) may have in flight; 0 = only --max-active",
         "5000"});
  f.Add({"idempotency-retention-ms", "MS",
         "keep an idempotency key this long after its transaction finished: how long a retry "
         "stays safe",
         "900000"});
  return f;
}

int Fail(const std::string& line) {
  std::fprintf(stderr, "txcoord: %s\n", line.c_str());
  return 2;
}

int Main(int argc, char** argv) {
  common::ParsedFlags parsed;
  if (std::optional<int> exit_code = CoordinatorFlags().ParseOrExit(argc, argv, &parsed))
    return *exit_code;
  const common::ParsedFlags* flags = &parsed;
  if (absl::Status s = common::ApplyLogFormatFlag(flags->Get("log-format")); !s.ok()) {
    return Fail(std::string(s.message()));
  }
  if (flags->Get("data-dir").empty()) return Fail("--data-dir is required");
  if (!common::IsValidNodeId(flags->Get("node-id"))) {
    return Fail("--node-id must be 1-16 lowercase letters or digits");
  }
  driver::DriverOptions options;
  options.node_id = flags->Get("node-id");
  struct IntFlag {
    const char* name;
    int64_t min, max;
    int64_t* out;
  };
  int64_t retry_initial = 0, retry_max = 0, max_active = 0, circuit_failures = 0, min_free_mb = 0,
          idempotency_capacity = 0, max_message = 0, idempotency_share = 0,
          max_active_per_principal = 0;
  driver::DeadlockOptions deadlock_options;
  transport::DirectoryOptions directory_options;
  for (const IntFlag& f :
       {IntFlag{"prepare-timeout-ms", 1, 3'600'000, &options.prepare_timeout_ms},
        IntFlag{"rpc-timeout-ms", 1, 3'600'000, &options.rpc_timeout_ms},
        IntFlag{"termination-timeout-ms", 1, 3'600'000, &options.termination_timeout_ms},
        IntFlag{"txn-timeout-ms", 1, 86'400'000, &options.default_txn_timeout_ms},
        IntFlag{"retry-initial-ms", 1, 60'000, &retry_initial},
        IntFlag{"retry-max-ms", 1, 3'600'000, &retry_max},
        IntFlag{"retention-ms", 0, int64_t{1} << 40, &options.retention_ms},
        IntFlag{"max-active", 1, 10'000'000, &max_active},
        IntFlag{"log-min-free-mb", 0, 1 << 20, &min_free_mb},
        IntFlag{"probe-interval-ms", 10, 3'600'000, &directory_options.probe_interval_ms},
        IntFlag{"circuit-failures", 1, 1'000'000, &circuit_failures},
        IntFlag{"circuit-open-ms", 1, 3'600'000, &directory_options.circuit.open_ms},
        IntFlag{"circuit-max-open-ms", 1, 86'400'000, &directory_options.circuit.max_open_ms},
        IntFlag{"wait-report-ttl-ms", 10, 3'600'000, &deadlock_options.edge_ttl_ms},
        IntFlag{"idempotency-capacity", 1, 100'000'000, &idempotency_capacity},
        IntFlag{"idempotency-keys-per-principal", 0, 100'000'000, &idempotency_share},
        IntFlag{"max-active-per-principal", 0, 10'000'000, &max_active_per_principal},
        IntFlag{"max-message-bytes", 4096, 1 << 30, &max_message},
        IntFlag{"idempotency-retention-ms", 0, int64_t{1} << 40,
                &options.idempotency.retention_ms}}) {
    auto v = flags->GetInt(f.name, f.min, f.max);
    if (!v.ok()) return Fail(std::string(v.status().message()));
    *f.out = *v;
  }
  options.retry_backoff = {.initial_ms = retry_initial,
                           .max_ms = std::max(retry_initial, retry_max)};
  options.max_active = static_cast<size_t>(max_active);
  options.max_active_per_principal = static_cast<size_t>(max_active_per_principal);
  options.idempotency.capacity = static_cast<size_t>(idempotency_capacity);
  options.idempotency.per_principal = static_cast<size_t>(idempotency_share);
  auth::CallAuthorizer open_authorizer;
  std::unique_ptr<auth::CallAuthorizer> token_authorizer;
  if (const std::string& file = flags->Get("token-file"); !file.empty()) {
    auto loaded = auth::CallAuthorizer::FromFile(file);
    if (!loaded.ok()) return Fail(std::string(loaded.status().message()));
    token_authorizer = std::move(*loaded);
  }
  auth::CallAuthorizer* authorizer = token_authorizer ? token_authorizer.get() : &open_authorizer;
  options.one_phase = !flags->GetBool("no-one-phase");
  deadlock_options.enabled = !flags->GetBool("no-deadlock-detection");
  directory_options.circuit.failure_threshold = static_cast<int>(circuit_failures);
  directory_options.stream_calls = !flags->GetBool("unary-calls");
  directory_options.circuit.max_open_ms =
      std::max(directory_options.circuit.open_ms, directory_options.circuit.max_open_ms);
  if (absl::Status fp = common::ArmFailpointsFromEnvironment(); !fp.ok()) {
    return Fail(absl::StrCat("TXN_FAILPOINTS: ", fp.message()));
  }

  absl::StatusOr<std::optional<common::TlsConfig>> tls = common::TlsFromFlags(*flags);
  if (!tls.ok()) return Fail(std::string(tls.status().message()));
  directory_options.tls = *tls;
  if (*tls) {
    std::set<std::string> names;
    for (const std::string& spec : flags->GetAll("participant")) {
      names.insert(spec.substr(0, spec.find('=')));
    }
    authorizer->RequireAgentIdentities(std::move(names));
  }
  common::SystemClock clock;
  auto participants = transport::StaticParticipantDirectory::FromSpecs(flags->GetAll("participant"),
                                                                       &clock, directory_options);
  if (!participants.ok()) return Fail(std::string(participants.status().message()));
  auto log = log::RocksDbDecisionLog::Open(flags->Get("data-dir"),
                                           static_cast<uint64_t>(min_free_mb) << 20);
  if (!log.ok()) return Fail(std::string(log.status().message()));
  if ((*log)->created_incarnation()) {
    common::LogInfo(absl::StrCat(
        "decision log ", flags->Get("data-dir"), " is new: incarnation ", (*log)->incarnation(),
        (*log)->made_legacy_ids() ? " (it held an older coordinator's epoch: ids without an "
                                    "incarnation are its own)"
                                  : ""));
  }

  common::TimerQueue timers;
  log::GroupCommitLog group_log(log->get());
  driver::TransactionDriver txns(
      driver::DriverDeps{log->get(), &group_log, participants->get(), &clock, &timers}, options);
  if (absl::Status s = txns.Recover(); !s.ok()) {
    return Fail(absl::StrCat("recovery failed: ", s.message()));
  }
  std::unique_ptr<common::MetricsServer> metrics_server;
  if (!flags->Get("metrics-listen").empty()) {
    common::MetricsRegistry& metrics = common::DefaultMetrics();
    txns.RegisterMetrics(&metrics);
    transport::ParticipantDirectory* dir = participants->get();
    metrics.AddRefresher([dir, &metrics] {
      for (const transport::ParticipantStatus& p : dir->Statuses()) {
        metrics
            .GetGauge("txcoord_participant_up", "1 if the agent answered its last health probe.",
                      {{"participant", p.name}})
            ->Set(p.health == transport::ParticipantHealth::kServing ? 1 : 0);
        for (transport::CircuitState st :
             {transport::CircuitState::kClosed, transport::CircuitState::kOpen,
              transport::CircuitState::kHalfOpen}) {
          metrics
              .GetGauge("txcoord_participant_circuit_state",
                        "Circuit breaker state per participant (1 for the current state).",
                        {{"participant", p.name},
                         {"state", absl::AsciiStrToLower(transport::CircuitStateName(st))}})
              ->Set(p.circuit == st ? 1 : 0);
        }
      }
    });
    auto started = common::MetricsServer::Start(flags->Get("metrics-listen"), &metrics);
    if (!started.ok()) return Fail(std::string(started.status().message()));
    metrics_server = std::move(*started);
  }
  transport::ParticipantDirectory* directory = participants->get();
  driver::DeadlockDetector deadlocks(
      &txns, &clock,
      [directory](const std::string& name) { return directory->Find(name) != nullptr; },
      deadlock_options);
  // Agents report every reconcile pass (5 s by default); a report not renewed for a minute is
  // dropped.
  driver::ForeignBranchBook foreign_branches(&clock, /*ttl_ms=*/60'000, options.node_id);
  service::CoordinatorService service(&txns, &deadlocks, &foreign_branches, authorizer);
  service::AdminService admin(&txns, participants->get(), &deadlocks, &foreign_branches,
                              authorizer);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(flags->Get("listen"), common::ServerCredentialsFor(*tls), &port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(max_message));
  builder.SetMaxSendMessageSize(static_cast<int>(max_message));
  builder.RegisterService(&service);
  builder.RegisterService(&admin);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) return Fail(absl::StrCat("cannot listen on ", flags->Get("listen")));
  server->GetHealthCheckService()->SetServingStatus(true);
  common::LogInfo(absl::StrCat("txcoord ", options.node_id, " serving on ", flags->Get("listen"),
                               " with ", (*participants)->Names().size(),
                               " participant(s), data in ", flags->Get("data-dir"),
                               authorizer->enabled()
                                   ? absl::StrCat(", bearer tokens from ", flags->Get("token-file"))
                                   : std::string(", no token file: every caller is trusted"),
                               *tls ? ", mutual TLS" : ", plaintext (no --tls-cert)"));

  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  // Background: every second, probe a failing decision log (health follows); every minute, drop
  // expired records.
  std::thread housekeeping([&] {
    std::unique_lock<std::mutex> lock(mu);
    for (int tick = 1; !cv.wait_for(lock, std::chrono::seconds(1), [&] { return stopping; });
         ++tick) {
      lock.unlock();
      if (!txns.accepting()) {
        if (absl::Status s = txns.ProbeLog(); !s.ok()) {
          common::LogWarning(absl::StrCat("decision log still failing: ", s.message()));
        }
      }
      server->GetHealthCheckService()->SetServingStatus(txns.accepting());
      if (tick % 60 == 0) {
        absl::StatusOr<int> n = txns.CollectGarbage();
        if (!n.ok())
          common::LogWarning(absl::StrCat("log garbage collection: ", n.status().message()));
      }
      lock.lock();
    }
  });

  const int sig = common::WaitForTerminationSignal([authorizer, &flags] {
    if (!authorizer->enabled()) return;
    if (absl::Status s = authorizer->Reload(); !s.ok()) {
      common::LogError(absl::StrCat("SIGHUP: keeping the tokens loaded before: ", s.message()));
    } else {
      common::LogInfo(absl::StrCat("SIGHUP: tokens re-read from ", flags->Get("token-file")));
    }
  });
  common::LogInfo(absl::StrCat("signal ", sig, ": shutting down"));
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  {
    std::lock_guard<std::mutex> lock(mu);
    stopping = true;
  }
  cv.notify_all();
  housekeeping.join();
  // Decisions are already durable; transactions still committing are re-driven at the next
  // start. Exit without unwinding so no callback runs against a half-destroyed driver.
  std::fflush(stderr);
  _exit(0);
}

}  // namespace
}  // namespace txn

int main(int argc, char** argv) {
  txn::common::SetUpProcess();
  txn::common::BlockTerminationSignals();
  return txn::Main(argc, argv);
}
