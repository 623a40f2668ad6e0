// txbench: load generator for txcoord (a client of its public API only), and, with --direct,
// for the floor: the same transfer driven by txbench itself through both databases' native
// two-phase commit, with no coordinator. See workloads.h for the workloads and load_loop.h for
// closed and open loop.
#include <grpcpp/grpcpp.h>

#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/bearer_token.h"
#include "common/file_text.h"
#include "common/process_setup.h"
#include "common/flags.h"
#include "common/tls.h"
#include "tools/txbench/accounts.h"
#include "tools/txbench/load_loop.h"
#include "tools/txbench/log_counters.h"
#include "tools/txbench/workloads.h"

namespace txn::bench {
namespace {

int Fail(const std::string& line) {
  std::fprintf(stderr, "txbench: %s\n", line.c_str());
  return 2;
}

common::FlagSet BenchFlags() {
  common::FlagSet f("txbench",
                    "Load generator for txcoord, and (--direct) the native-2PC floor without it.");
  f.Add({"coordinator", "HOST:PORT", "txcoord address", "127.0.0.1:7700"});
  f.Add({"direct", "",
         "no coordinator: drive PostgreSQL PREPARE TRANSACTION and MariaDB XA directly "
         "(transfer only)",
         ""});
  f.Add({"workload", "NAME", "transfer | mix | readonly | empty", "transfer"});
  f.Add({"pg-participant", "NAME", "the PostgreSQL agent's participant name", "orders"});
  f.Add({"mysql-participant", "NAME", "the MariaDB agent's participant name", "ledger"});
  f.Add({"participant", "NAME", "empty: a branch on this (noop) participant; repeat", "", true});
  f.Add({"pg-dsn", "DSN", "PostgreSQL holding acct (setup, balance check, --direct)", ""});
  f.Add({"mysql-dsn", "DSN", "MariaDB holding acct (key=value or mysql:// URI)", ""});
  f.Add({"mysql-password-file", "FILE", "MariaDB password (instead of one in --mysql-dsn)", ""});
  f.Add({"setup", "", "(re)create both acct tables before the run", ""});
  f.Add({"accounts", "N", "accounts 1..N in each table", "1000"});
  f.Add({"clients", "N", "concurrent clients", "8"});
  f.Add({"duration", "S", "seconds measured (after the warm-up)", "10"});
  f.Add({"warmup", "S", "seconds run before measuring", "1"});
  f.Add({"rate", "R", "open loop: R transactions/s in all (latency from the intended start)",
         "0"});
  f.Add({"abort-ratio", "F", "fraction of transactions made to abort (a branch votes NO)", "0"});
  f.Add({"wait", "", "wait_for_completion: answer after every branch acknowledged", ""});
  f.Add({"timeout-ms", "MS", "RunRequest.timeout_ms (0: the coordinator's default)", "0"});
  f.Add({"channels", "N", "gRPC channels to the coordinator, shared round robin", "1"});
  f.Add({"coordinator-metrics", "HOST:PORT",
         "txcoord's --metrics-listen: report its decision-log fsyncs for the run", ""});
  f.Add({"json", "", "print one JSON object instead of text", ""});
  common::AddTlsFlags(&f);
  f.Add({"tls-server-name", "NAME", "with TLS: the name txcoord's certificate must carry",
         "coordinator"});
  f.Add({"token-file", "FILE",
         "bearer token for txcoord (a client one when it has --token-file): the token alone, or "
         "a 'SCOPE TOKEN [NAME]' line",
         ""});
  return f;
}

absl::StatusOr<double> GetDouble(const common::ParsedFlags& flags, const std::string& name,
                                 double min, double max) {
  double v = 0;
  if (!absl::SimpleAtod(flags.Get(name), &v) || v < min || v > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " must be a number in [", min, ", ", max, "]"));
  }
  return v;
}

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    if (static_cast<unsigned char>(ch) < 0x20) {
      out += ' ';
      continue;
    }
    out += ch;
  }
  return out;
}

int Main(int argc, char** argv) {
  common::ParsedFlags flags;
  if (std::optional<int> exit_code = BenchFlags().ParseOrExit(argc, argv, &flags)) {
    return *exit_code;
  }
  WorkloadOptions w;
  const std::string workload = flags.Get("workload");
  if (workload == "transfer") {
    w.workload = Workload::kTransfer;
  } else if (workload == "mix") {
    w.workload = Workload::kMix;
  } else if (workload == "readonly") {
    w.workload = Workload::kReadOnly;
  } else if (workload == "empty") {
    w.workload = Workload::kEmpty;
  } else {
    return Fail(absl::StrCat("--workload '", workload, "': use transfer, mix, readonly or empty"));
  }
  auto accounts = flags.GetInt("accounts", 1, 100'000'000);
  auto clients = flags.GetInt("clients", 1, 4096);
  auto timeout_ms = flags.GetInt("timeout-ms", 0, 3'600'000);
  auto channels = flags.GetInt("channels", 1, 256);
  for (const auto* s : {&accounts, &clients, &timeout_ms, &channels}) {
    if (!s->ok()) return Fail(std::string(s->status().message()));
  }
  auto duration = GetDouble(flags, "duration", 0.1, 86'400);
  auto warmup = GetDouble(flags, "warmup", 0, 3'600);
  auto rate = GetDouble(flags, "rate", 0, 10'000'000);
  auto abort_ratio = GetDouble(flags, "abort-ratio", 0, 1);
  for (const auto* s : {&duration, &warmup, &rate, &abort_ratio}) {
    if (!s->ok()) return Fail(std::string(s->status().message()));
  }
  w.accounts = *accounts;
  w.abort_ratio = *abort_ratio;
  w.pg_participant = flags.Get("pg-participant");
  w.mysql_participant = flags.Get("mysql-participant");
  w.participants = flags.GetAll("participant");
  w.wait_for_completion = flags.GetBool("wait");
  w.timeout_ms = *timeout_ms;
  if (const std::string& file = flags.Get("token-file"); !file.empty()) {
    absl::StatusOr<std::string> token = common::ReadBearerToken(file);
    if (!token.ok()) return Fail(std::string(token.status().message()));
    w.token = *token;
  }
  const bool direct = flags.GetBool("direct");
  if (direct && w.workload != Workload::kTransfer) {
    return Fail("--direct runs --workload transfer only");
  }
  if (w.workload == Workload::kEmpty && w.participants.empty()) {
    return Fail("--workload empty needs --participant NAME (noop agents), one per branch");
  }
  std::string mysql_password;
  if (const std::string& file = flags.Get("mysql-password-file"); !file.empty()) {
    std::optional<std::string> text = common::ReadFileText(file);
    if (!text) return Fail(absl::StrCat("--mysql-password-file ", file, ": cannot read"));
    mysql_password = std::string(absl::StripTrailingAsciiWhitespace(*text));
  }

  // The tables: needed by --setup, --direct and the balance check of transfer and mix (which
  // needs both DSNs; without them the run goes on and says loudly that nothing was checked).
  const bool have_dsns = !flags.Get("pg-dsn").empty() && !flags.Get("mysql-dsn").empty();
  const bool moves_money = w.workload == Workload::kTransfer || w.workload == Workload::kMix;
  const bool check_balance = moves_money && have_dsns;
  const bool needs_tables = check_balance || direct || flags.GetBool("setup");
  if (moves_money && !have_dsns) {
    std::fprintf(stderr,
                 "txbench: the total balance will NOT be checked: give --pg-dsn and --mysql-dsn "
                 "to check that the run kept it\n");
  }
  std::unique_ptr<PgClient> pg;
  std::unique_ptr<MysqlClient> my;
  int64_t total_before = 0;
  if (needs_tables) {
    if (!have_dsns) {
      return Fail(absl::StrCat(direct ? "--direct" : "--setup",
                               " needs --pg-dsn and --mysql-dsn"));
    }
    auto p = PgClient::Connect(flags.Get("pg-dsn"));
    if (!p.ok()) return Fail(std::string(p.status().message()));
    pg = std::move(*p);
    auto m = MysqlClient::Connect(flags.Get("mysql-dsn"), mysql_password);
    if (!m.ok()) return Fail(std::string(m.status().message()));
    my = std::move(*m);
    if (flags.GetBool("setup")) {
      if (absl::Status s = SetUpAccounts(*pg, *my, *accounts); !s.ok()) {
        return Fail(absl::StrCat("--setup: ", s.message()));
      }
    }
    auto total = TotalBalance(*pg, *my, 30);
    if (!total.ok()) {
      return Fail(absl::StrCat("reading the balances before the run (run with --setup "
                               "first?): ",
                               total.status().message()));
    }
    total_before = *total;
  }

  TxnFunction txn;
  if (direct) {
    txn = DirectTransferTxn(w, flags.Get("pg-dsn"), flags.Get("mysql-dsn"), mysql_password,
                            static_cast<int>(*clients));
  } else {
    absl::StatusOr<std::optional<common::TlsConfig>> tls = common::TlsFromFlags(flags);
    if (!tls.ok()) return Fail(std::string(tls.status().message()));
    std::vector<std::shared_ptr<v1::Coordinator::Stub>> stubs;
    for (int64_t i = 0; i < *channels; ++i) {
      grpc::ChannelArguments args;
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      stubs.push_back(v1::Coordinator::NewStub(
          common::MakeChannel(flags.Get("coordinator"), *tls, flags.Get("tls-server-name"), args)));
    }
    txn = CoordinatorTxn(w, std::move(stubs));
  }

  const std::string metrics = direct ? "" : flags.Get("coordinator-metrics");
  LogCounters log_before;
  if (!metrics.empty()) {
    auto c = ReadLogCounters(metrics);
    if (!c.ok()) return Fail(std::string(c.status().message()));
    log_before = *c;
  }

  LoadResult r = RunLoad(LoadOptions{.clients = static_cast<int>(*clients),
                                     .duration_s = *duration,
                                     .warmup_s = *warmup,
                                     .rate = *rate},
                         txn);

  std::string balance = "not checked";
  bool balance_ok = true;
  if (check_balance) {
    auto total_after = TotalBalance(*pg, *my, 30);
    if (!total_after.ok()) {
      balance_ok = false;
      balance = absl::StrCat("could not be checked: ", total_after.status().message());
    } else if (*total_after != total_before) {
      balance_ok = false;
      balance = absl::StrCat("CHANGED from ", total_before, " to ", *total_after);
    } else {
      balance = absl::StrCat("unchanged (", total_before, ")");
    }
  }

  // The log's counters cover the warm-up and the tail too: compare them with every transaction
  // the run made, which the coordinator counts the same way.
  std::string log_json, log_text;
  if (!metrics.empty()) {
    auto c = ReadLogCounters(metrics);
    if (!c.ok()) return Fail(std::string(c.status().message()));
    const double fsyncs = c->synced_writes - log_before.synced_writes;
    const double records = c->records - log_before.records;
    log_json = absl::StrCat(",\"log_fsyncs\":", fsyncs, ",\"log_unsynced_writes\":",
                            c->unsynced_writes - log_before.unsynced_writes,
                            ",\"log_records\":", records);
    log_text = absl::StrCat("; decision log: ", fsyncs, " fsyncs, ", records, " records");
  }

  const double tps = static_cast<double>(r.committed + r.aborted) / r.seconds;
  const double p50 = Percentile(r.latencies_ms, 0.50), p90 = Percentile(r.latencies_ms, 0.90),
               p99 = Percentile(r.latencies_ms, 0.99), p999 = Percentile(r.latencies_ms, 0.999);
  if (flags.GetBool("json")) {
    std::string errors;
    for (const auto& [k, v] : r.details) {
      absl::StrAppend(&errors, errors.empty() ? "" : ",", "\"", JsonEscape(k), "\":", v);
    }
    std::printf(
        "{\"mode\":\"%s\",\"workload\":\"%s\",\"clients\":%ld,\"duration_s\":%.1f,"
        "\"rate\":%.1f,\"tps\":%.1f,\"committed\":%ld,\"aborted\":%ld,\"errors\":%ld,"
        "\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,"
        "\"balance_checked\":%s,\"balance_ok\":%s,\"balance\":\"%s\",\"error_kinds\":{%s}%s}\n",
        direct ? "direct" : "coordinator", workload.c_str(), *clients, r.seconds, *rate, tps,
        r.committed, r.aborted, r.errors, p50, p90, p99, p999, check_balance ? "true" : "false",
        balance_ok ? "true" : "false",
        JsonEscape(balance).c_str(), errors.c_str(), log_json.c_str());
  } else {
    std::printf(
        "%s %s, %ld clients, %.1f s: %.1f txn/s (%ld committed, %ld aborted, %ld errors); "
        "latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, p99.9 %.2f ms; total balance %s%s\n",
        direct ? "direct" : "txcoord", workload.c_str(), *clients, r.seconds, tps, r.committed,
        r.aborted, r.errors, p50, p90, p99, p999, balance.c_str(), log_text.c_str());
    for (const auto& [k, v] : r.details) std::printf("  %-60s %ld\n", k.c_str(), v);
  }
  if (!balance_ok) {
    std::fprintf(stderr, "txbench: TOTAL BALANCE %s: atomicity was broken\n", balance.c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace txn::bench

int main(int argc, char** argv) {
  txn::common::SetUpProcess();
  return txn::bench::Main(argc, argv);
}
