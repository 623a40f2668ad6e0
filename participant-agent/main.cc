// txagent: the participant agent beside one database. See DESIGN.md section 3.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/file_text.h"
#include "common/process_setup.h"
#include "common/clock.h"
#include "common/failpoint.h"
#include "common/bearer_token.h"
#include "common/flags.h"
#include "common/ids.h"
#include "common/tls.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/metrics_server.h"
#include "common/termination_signals.h"
#include "participant-agent/adapter_registry.h"
#include "participant-agent/in_doubt_reconciler.h"
#include "participant-agent/lock_wait_reporter.h"
#include "participant-agent/participant_service.h"
#include "participant-agent/three_phase_terminator.h"
#include "txn/v1/coordinator.grpc.pb.h"
#include "txn/v1/participant.grpc.pb.h"

namespace txn::agent {
namespace {

class GrpcDecisionSource final : public DecisionSource, public WaitSink {
 public:
  // `token`: sent with every call ("" for none; see txcoord --token-file, scope agent). `tls`:
  // mutual TLS, the coordinator's certificate naming `identity`.
  // `name`: this agent's participant name, which its reports carry.
  GrpcDecisionSource(const std::string& address, std::string token,
                     const std::optional<common::TlsConfig>& tls, const std::string& identity,
                     std::string name)
      : stub_(v1::Coordinator::NewStub(common::MakeChannel(address, tls, identity))),
        token_(std::move(token)),
        name_(std::move(name)) {}

  absl::StatusOr<v1::Decision> GetDecision(const std::string& txn_id) override {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
    common::AddBearerToken(&ctx, token_);
    v1::GetDecisionRequest req;
    req.set_txn_id(txn_id);
    v1::GetDecisionResponse resp;
    grpc::Status s = stub_->GetDecision(&ctx, req, &resp);
    if (!s.ok()) return common::ToAbslStatus(s);
    return resp.decision();
  }

  absl::Status ReportDecision(const std::string& txn_id, const std::string& participant,
                              v1::Decision decision) override {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
    common::AddBearerToken(&ctx, token_);
    v1::ReportDecisionRequest req;
    req.set_txn_id(txn_id);
    req.set_participant(participant);
    req.set_decision(decision);
    v1::ReportDecisionResponse resp;
    return common::ToAbslStatus(stub_->ReportDecision(&ctx, req, &resp));
  }

  absl::Status ReportForeignBranches(const std::vector<v1::ForeignBranch>& branches) override {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
    common::AddBearerToken(&ctx, token_);
    v1::ReportForeignBranchesRequest req;
    req.set_participant(name_);
    for (const v1::ForeignBranch& b : branches) *req.add_branches() = b;
    v1::ReportForeignBranchesResponse resp;
    return common::ToAbslStatus(stub_->ReportForeignBranches(&ctx, req, &resp));
  }

  absl::Status ReportWaits(const v1::ReportWaitsRequest& req) override {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
    common::AddBearerToken(&ctx, token_);
    v1::ReportWaitsResponse resp;
    return common::ToAbslStatus(stub_->ReportWaits(&ctx, req, &resp));
  }

 private:
  std::unique_ptr<v1::Coordinator::Stub> stub_;
  const std::string token_;
  const std::string name_;
};

// The other members' agents, for 3PC termination rounds (addresses only from --peer).
class GrpcPeerSet final : public PeerSet {
 public:
  // `tls`: mutual TLS, each peer's certificate naming the peer (its participant name).
  static absl::StatusOr<std::unique_ptr<GrpcPeerSet>> FromSpecs(
      const std::vector<std::string>& specs, const std::optional<common::TlsConfig>& tls) {
    auto peers = std::make_unique<GrpcPeerSet>();
    for (const std::string& spec : specs) {
      const size_t eq = spec.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--peer '", spec, "' must be NAME=HOST:PORT"));
      }
      const std::string name = spec.substr(0, eq);
      peers->stubs_[name] =
          v1::Participant::NewStub(common::MakeChannel(spec.substr(eq + 1), tls, name));
    }
    return peers;
  }
  absl::StatusOr<v1::TerminationReply> Elect(const std::string& peer,
                                             const v1::ElectRequest& req) override {
    return Call<v1::ElectRequest, v1::TerminationReply>(peer, req, &v1::Participant::Stub::Elect);
  }
  absl::StatusOr<v1::TerminationReply> PreDecide(const std::string& peer,
                                                 const v1::PreDecideRequest& req) override {
    return Call<v1::PreDecideRequest, v1::TerminationReply>(peer, req,
                                                            &v1::Participant::Stub::PreDecide);
  }
  absl::Status Commit(const std::string& peer, const v1::CommitBranchRequest& req) override {
    return Call<v1::CommitBranchRequest, v1::CommitBranchResponse>(peer, req,
                                                                   &v1::Participant::Stub::Commit)
        .status();
  }
  absl::Status Rollback(const std::string& peer, const v1::RollbackBranchRequest& req) override {
    return Call<v1::RollbackBranchRequest, v1::RollbackBranchResponse>(
               peer, req, &v1::Participant::Stub::Rollback)
        .status();
  }

 private:
  template <typename Req, typename Resp>
  absl::StatusOr<Resp> Call(const std::string& peer, const Req& req,
                            grpc::Status (v1::Participant::Stub::*method)(grpc::ClientContext*,
                                                                          const Req&, Resp*)) {
    auto it = stubs_.find(peer);
    if (it == stubs_.end()) {
      return absl::NotFoundError(absl::StrCat("no --peer for ", peer));
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    Resp resp;
    grpc::Status s = (it->second.get()->*method)(&ctx, req, &resp);
    if (!s.ok()) return common::ToAbslStatus(s);
    return resp;
  }
  std::map<std::string, std::unique_ptr<v1::Participant::Stub>> stubs_;
};

common::FlagSet AgentFlags() {
  common::FlagSet f("txagent",
                    "Participant agent: maps txcoord's prepare/commit/abort onto one database.");
  f.Add({"listen", "HOST:PORT", "address to serve txn.v1.Participant on", "127.0.0.1:7711"});
  f.Add({"name", "NAME", "this participant's name, as the coordinator knows it", ""});
  f.Add({"backend", "KIND", "postgres | mysql | mongodb | noop", ""});
  f.Add({"dsn", "DSN", "database connection string (libpq key=value or URI)", ""});
  f.Add({"dsn-password-file", "FILE", "file holding the database password", ""});
  f.Add({"coordinator", "HOST:PORT", "txcoord address, asked for in-doubt decisions", ""});
  f.Add({"peer", "NAME=HOST:PORT",
         "another participant's agent, for 3PC termination rounds without the coordinator", "",
         /*repeated=*/true});
  f.Add({"termination-timeout-ms", "MS",
         "3PC: a branch the coordinator leaves in doubt this long is terminated with the peers",
         "3000"});
  f.Add({"pool-size", "N", "idle database connections kept (default: --max-connections)", ""});
  f.Add({"max-connections", "N",
         "calls that take a database connection (Begin, Execute, Prepare, one-phase commits, "
         "saga steps) run on this many workers at most",
         "32"});
  f.Add({"max-db-connections", "N",
         "database connections open branches may hold at once, also between an interactive "
         "client's calls; a new branch waits (up to --db-connection-wait-ms) for one, then is "
         "RESOURCE_EXHAUSTED; 0 = no limit",
         "64"});
  f.Add({"db-connection-wait-ms", "MS",
         "the longest a new branch waits for a connection under --max-db-connections", "10000"});
  f.Add({"max-queued-calls", "N",
         "such calls that may wait for a worker; one more is RESOURCE_EXHAUSTED", "256"});
  f.Add({"finish-workers", "N",
         "workers for Commit and Rollback, which never wait behind new work", "4"});
  f.Add({"reconcile-interval-ms", "MS", "how often to look for in-doubt branches", "5000"});
  f.Add({"idle-timeout-ms", "MS", "roll back an unprepared branch idle this long", "60000"});
  f.Add({"last-resource", "",
         "never prepare: take part as the transaction's last resource, committed in one phase",
         ""});
  f.Add({"log-format", "text|json", common::kLogFormatFlagHelp, "text"});
  f.Add(
      {"metrics-listen", "HOST:PORT", "serve Prometheus metrics at http://HOST:PORT/metrics", ""});
  f.Add({"lock-timeout-ms", "MS",
         "a statement waiting longer for a row lock fails (the branch votes NO); 0 = the "
         "database's own setting",
         "5000"});
  common::AddTlsFlags(&f);
  f.Add({"coordinator-identity", "NAME",
         "with TLS: the name (certificate DNS SAN) of the coordinator, the only caller of every "
         "Participant RPC besides the --peer agents' termination calls",
         "coordinator"});
  f.Add({"coordinator-node-id", "ID",
         "the node id of the coordinator this agent serves (txcoord --node-id): branches of any "
         "other node's transactions are refused, and prepared ones reported, never finished; "
         "empty = any node",
         ""});
  f.Add({"coordinator-token-file", "FILE",
         "bearer token for the agent's calls to txcoord (GetDecision, lock-wait and 3PC "
         "reports), when txcoord has --token-file: a token with scope agent",
         ""});
  f.Add({"statements", "FILE",
         "allow-list (YAML: NAME: {sql: TEXT, params: N}): operations must name one of these "
         "statements (sql.name), raw SQL is refused",
         ""});
  f.Add({"run-as-role", "ROLE",
         "PostgreSQL: run client statements as this unprivileged role (SET LOCAL ROLE); the "
         "agent's own statements keep the DSN's user",
         ""});
  f.Add({"lock-wait-threshold-ms", "MS",
         "look for lock waits to report to the coordinator's deadlock detector once a branch's "
         "call has run this long (then every running call's waits are reported); 0 = never "
         "report",
         "50"});
  f.Add({"lock-wait-interval-ms", "MS",
         "how often to look for such waits (MySQL/MariaDB: 120 ms at least from the end of one "
         "look to the next, so that InnoDB refreshes its lock tables between looks)",
         "20"});
  f.Add({"max-result-rows", "N",
         "an operation returning more rows aborts its branch (RESOURCE_EXHAUSTED)", "10000"});
  f.Add({"max-result-bytes", "N",
         "an operation whose result is larger aborts its branch (RESOURCE_EXHAUSTED); keep it "
         "below --max-message-bytes",
         "1048576"});
  f.Add({"max-message-bytes", "N",
         "largest gRPC message received or sent; a larger request is RESOURCE_EXHAUSTED",
         "4194304"});
  return f;
}

int Fail(const std::string& line) {
  std::fprintf(stderr, "txagent: %s\n", line.c_str());
  return 2;
}

int Main(int argc, char** argv) {
  common::ParsedFlags parsed;
  if (std::optional<int> exit_code = AgentFlags().ParseOrExit(argc, argv, &parsed))
    return *exit_code;
  const common::ParsedFlags* flags = &parsed;
  if (absl::Status s = common::ApplyLogFormatFlag(flags->Get("log-format")); !s.ok()) {
    return Fail(std::string(s.message()));
  }
  if (flags->Get("name").empty()) return Fail("--name is required");
  if (flags->Get("coordinator").empty()) return Fail("--coordinator is required");
  if (const std::string& node = flags->Get("coordinator-node-id");
      !node.empty() && !common::IsValidNodeId(node)) {
    return Fail("--coordinator-node-id must be 1-16 lowercase letters or digits");
  }
  auto max_connections = flags->GetInt("max-connections", 1, 1000);
  auto max_queued = flags->GetInt("max-queued-calls", 0, 1'000'000);
  auto finish_workers = flags->GetInt("finish-workers", 1, 256);
  auto max_db_connections = flags->GetInt("max-db-connections", 0, 100'000);
  auto db_connection_wait = flags->GetInt("db-connection-wait-ms", 0, 3'600'000);
  for (const auto* s : {&max_connections, &max_queued, &finish_workers, &max_db_connections,
                        &db_connection_wait}) {
    if (!s->ok()) return Fail(std::string(s->status().message()));
  }
  auto pool_size = flags->Get("pool-size").empty() ? absl::StatusOr<int64_t>(*max_connections)
                                                     : flags->GetInt("pool-size", 1, 1000);
  auto interval = flags->GetInt("reconcile-interval-ms", 50, 3'600'000);
  auto idle = flags->GetInt("idle-timeout-ms", 100, 86'400'000);
  auto lock_timeout = flags->GetInt("lock-timeout-ms", 0, 86'400'000);
  auto termination_timeout = flags->GetInt("termination-timeout-ms", 10, 86'400'000);
  auto wait_threshold = flags->GetInt("lock-wait-threshold-ms", 0, 86'400'000);
  auto wait_interval = flags->GetInt("lock-wait-interval-ms", 1, 60'000);
  auto max_rows = flags->GetInt("max-result-rows", 1, 100'000'000);
  auto max_bytes = flags->GetInt("max-result-bytes", 1024, 1 << 30);
  auto max_message = flags->GetInt("max-message-bytes", 4096, 1 << 30);
  for (const auto* s : {&pool_size, &interval, &idle, &lock_timeout, &termination_timeout,
                        &wait_threshold, &wait_interval, &max_rows, &max_bytes, &max_message}) {
    if (!s->ok()) return Fail(std::string(s->status().message()));
  }
  if (absl::Status fp = common::ArmFailpointsFromEnvironment(); !fp.ok()) {
    return Fail(absl::StrCat("TXN_FAILPOINTS: ", fp.message()));
  }

  AdapterConfig config{
      flags->Get("backend"),        flags->Get("dsn"), "",
      static_cast<int>(*pool_size), *lock_timeout,     flags->GetBool("last-resource"),
      flags->Get("run-as-role")};
  if (const std::string& pw = flags->Get("dsn-password-file"); !pw.empty()) {
    std::optional<std::string> text = common::ReadFileText(pw);
    if (!text) return Fail(absl::StrCat("--dsn-password-file ", pw, ": cannot read"));
    config.password = std::string(absl::StripTrailingAsciiWhitespace(*text));
  }
  if (DsnCarriesPassword(config)) {
    common::LogWarning(
        "--dsn holds a password: it shows in the process list and wherever the flags are kept; "
        "put it in a file readable by txagent only and pass --dsn-password-file");
  }
  auto adapter = MakeAdapter(config);
  if (!adapter.ok()) return Fail(std::string(adapter.status().message()));

  absl::Status ready = (*adapter)->CheckReady();
  if (ready.code() == absl::StatusCode::kFailedPrecondition) {
    return Fail(std::string(ready.message()));
  }
  if (!ready.ok()) {
    common::LogWarning(
        absl::StrCat("database not reachable yet, serving anyway: ", ready.message()));
  }

  std::optional<StatementAllowList> statements;
  if (const std::string& file = flags->Get("statements"); !file.empty()) {
    if (config.backend != "postgres" && config.backend != "mysql") {
      return Fail("--statements is for the postgres and mysql backends");
    }
    auto loaded = StatementAllowList::Load(file, config.backend == "postgres"
                                                     ? common::SqlDialect::kPostgres
                                                     : common::SqlDialect::kMysql);
    if (!loaded.ok()) return Fail(std::string(loaded.status().message()));
    common::LogInfo(absl::StrCat(loaded->size(), " allow-listed statements from ", file,
                                 "; raw SQL is refused"));
    statements = std::move(*loaded);
  }
  (*adapter)->set_result_limits(ResultLimits{.max_rows = *max_rows, .max_bytes = *max_bytes});
  common::SystemClock clock;
  BranchRegistry registry(adapter->get(), &clock,
                          BranchRegistryOptions{.idle_timeout_ms = *idle,
                                                .max_result_rows = *max_rows,
                                                .max_result_bytes = *max_bytes,
                                                .coordinator_node = flags->Get("coordinator-node-id"),
                                                .statements = statements ? &*statements : nullptr,
                                                .max_sessions =
                                                    static_cast<size_t>(*max_db_connections),
                                                .session_wait_ms = *db_connection_wait});
  SagaSteps saga_steps(adapter->get(), statements ? &*statements : nullptr);
  ThreePhaseRecords three_phase(adapter->get(), flags->Get("name"));
  registry.set_three_phase(&three_phase);
  // The lanes outlive the server (declared before it): Shutdown waits for every call they
  // finish.
  WorkLane work_lane(WorkLaneOptions{
      .name = "work",
      .workers = static_cast<int>(*max_connections),
      .max_queued = static_cast<int>(*max_queued),
      .limit_hint = absl::StrCat("--max-connections=", *max_connections,
                                 ", --max-queued-calls=", *max_queued)});
  WorkLane finish_lane(WorkLaneOptions{
      .name = "finish",
      .workers = static_cast<int>(*finish_workers),
      .max_queued = 100'000,
      .limit_hint = absl::StrCat("--finish-workers=", *finish_workers)});
  WorkLane control_lane(WorkLaneOptions{
      .name = "control", .workers = 2, .max_queued = 10'000, .limit_hint = "2 workers"});
  absl::StatusOr<std::optional<common::TlsConfig>> tls = common::TlsFromFlags(*flags);
  if (!tls.ok()) return Fail(std::string(tls.status().message()));
  CallerPolicy callers;
  if (*tls) {
    std::set<std::string> peer_names;
    for (const std::string& spec : flags->GetAll("peer")) {
      peer_names.insert(spec.substr(0, spec.find('=')));
    }
    callers = CallerPolicy(flags->Get("coordinator-identity"), std::move(peer_names));
  }
  ParticipantService service(
      &registry, &saga_steps, &three_phase, adapter->get(),
      ServiceLanes{.work = &work_lane, .finish = &finish_lane, .control = &control_lane},
      flags->Get("name"), config.backend, std::move(callers));
  std::string coordinator_token;
  if (const std::string& file = flags->Get("coordinator-token-file"); !file.empty()) {
    absl::StatusOr<std::string> token = common::ReadBearerToken(file);
    if (!token.ok()) return Fail(std::string(token.status().message()));
    coordinator_token = *token;
  }
  GrpcDecisionSource decisions(flags->Get("coordinator"), coordinator_token, *tls,
                               flags->Get("coordinator-identity"), flags->Get("name"));
  InDoubtReconciler reconciler(&registry, &decisions, &three_phase,
                               flags->Get("coordinator-node-id"), &clock);
  auto peers = GrpcPeerSet::FromSpecs(flags->GetAll("peer"), *tls);
  if (!peers.ok()) return Fail(std::string(peers.status().message()));
  ThreePhaseTerminator terminator(flags->Get("name"), &three_phase, &registry,
                                  &decisions, peers->get(), &clock,
                                  TerminatorOptions{.timeout_ms = *termination_timeout});

  std::unique_ptr<common::MetricsServer> metrics_server;
  if (!flags->Get("metrics-listen").empty()) {
    common::MetricsRegistry& metrics = common::DefaultMetrics();
    metrics.AddRefresher([&registry, &metrics, &work_lane, &finish_lane, &control_lane] {
      metrics
          .GetGauge("txagent_branches", "Branches this agent is tracking now (live and recent).")
          ->Set(static_cast<double>(registry.size()));
      metrics
          .GetGauge("txagent_branch_connections",
                    "Database connections open branches hold now (--max-db-connections).")
          ->Set(static_cast<double>(registry.sessions().held()));
      metrics
          .GetGauge("txagent_branch_connections_waiting",
                    "New branches waiting for a database connection now.")
          ->Set(static_cast<double>(registry.sessions().waiting()));
      for (const WorkLane* lane : {&work_lane, &finish_lane, &control_lane}) {
        metrics
            .GetGauge("txagent_lane_queued", "Calls waiting for a worker, by lane.",
                      {{"lane", lane->name()}})
            ->Set(lane->queued());
        metrics
            .GetGauge("txagent_lane_busy", "Workers running a call now, by lane.",
                      {{"lane", lane->name()}})
            ->Set(lane->busy());
      }
    });
    auto started = common::MetricsServer::Start(flags->Get("metrics-listen"), &metrics);
    if (!started.ok()) return Fail(std::string(started.status().message()));
    metrics_server = std::move(*started);
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(flags->Get("listen"), common::ServerCredentialsFor(*tls), &port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(*max_message));
  builder.SetMaxSendMessageSize(static_cast<int>(*max_message));
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) return Fail(absl::StrCat("cannot listen on ", flags->Get("listen")));
  server->GetHealthCheckService()->SetServingStatus(ready.ok());
  common::LogInfo(absl::StrCat("txagent ", flags->Get("name"), " (", config.backend,
                               ") serving on ", flags->Get("listen")));

  // Background: database readiness, in-doubt reconciliation, idle branches.
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  std::thread background([&] {
    bool db_ready = ready.ok();
    std::unique_lock<std::mutex> lock(mu);
    while (!stopping) {
      lock.unlock();
      if (!db_ready) {
        absl::Status s = (*adapter)->CheckReady();
        if (s.ok()) {
          db_ready = true;
          common::LogInfo("database reachable");
        } else if (s.code() == absl::StatusCode::kFailedPrecondition) {
          common::LogError(std::string(s.message()));
        }
        server->GetHealthCheckService()->SetServingStatus(db_ready);
      }
      if (db_ready) {
        absl::StatusOr<ReconcilePass> pass = reconciler.RunOnce();
        if (!pass.ok()) {
          common::LogWarning(absl::StrCat("in-doubt scan failed: ", pass.status().message()));
          if (pass.status().code() == absl::StatusCode::kUnavailable) {
            db_ready = false;
            server->GetHealthCheckService()->SetServingStatus(false);
          }
        }
        absl::StatusOr<TerminationPass> terminated = terminator.RunOnce();
        if (!terminated.ok() && terminated.status().code() != absl::StatusCode::kUnimplemented) {
          common::LogWarning(
              absl::StrCat("3PC termination scan failed: ", terminated.status().message()));
        }
      }
      registry.Sweep();
      if (db_ready) {
        if (absl::Status gc = (*adapter)->CollectGarbage(); !gc.ok()) {
          common::LogWarning(absl::StrCat("database housekeeping failed: ", gc.message()));
        }
      }
      lock.lock();
      cv.wait_for(lock, std::chrono::milliseconds(*interval), [&] { return stopping; });
    }
  });

  // Lock waits for the deadlock detector: a thread of its own, since its period (tens of ms) is
  // much shorter than the background loop's, and a slow reconciler pass must not delay it.
  LockWaitReporter wait_reporter(
      flags->Get("name"), [&registry] { return registry.LiveBranches(); },
      adapter->get()->lock_waits(), &decisions, &clock,
      LockWaitReporterOptions{.threshold_ms = *wait_threshold});
  // Every --lock-wait-interval-ms; the reporter itself leaves a database that needs it alone for
  // its min_lock_wait_interval_ms between looks (MariaDB).
  const int64_t report_every_ms = *wait_interval;
  std::thread wait_reporting([&] {
    if (*wait_threshold == 0) return;
    bool warned = false;
    std::unique_lock<std::mutex> lock(mu);
    while (!stopping) {
      lock.unlock();
      absl::StatusOr<int> reported = wait_reporter.RunOnce();
      if (!reported.ok() && !warned) {
        // Once: detection is an optimisation, the lock timeout still ends every wait.
        common::LogWarning(absl::StrCat("lock-wait report failed (deadlocks across databases "
                                        "then end at --lock-timeout-ms): ",
                                        reported.status().message()));
        warned = true;
      } else if (reported.ok()) {
        warned = false;
      }
      lock.lock();
      cv.wait_for(lock, std::chrono::milliseconds(report_every_ms), [&] { return stopping; });
    }
  });

  const int sig = common::WaitForTerminationSignal();
  common::LogInfo(absl::StrCat("signal ", sig, ": shutting down"));
  {
    std::lock_guard<std::mutex> lock(mu);
    stopping = true;
  }
  cv.notify_all();
  service.CloseStreams();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  background.join();
  wait_reporting.join();
  return 0;
}

}  // namespace
}  // namespace txn::agent

int main(int argc, char** argv) {
  txn::common::SetUpProcess();
  txn::common::BlockTerminationSignals();
  return txn::agent::Main(argc, argv);
}
