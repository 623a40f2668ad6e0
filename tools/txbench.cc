// txbench: a closed-loop load generator for txcoord, a client of the public API only.
//
// Each of --clients threads runs transactions back to back for --duration-s seconds: one Run with
// a branch per --participant, each branch running --sql with one random key in [0, --keys) as $1
// (or ?; --sql-for sets another statement for one participant). It prints throughput, latency
// percentiles and outcomes; --json prints one JSON line.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/flags.h"
#include "txn/v1/coordinator.grpc.pb.h"

namespace txn::bench {
namespace {

struct Result {
  std::vector<double> latencies_ms;
  std::map<std::string, int64_t> outcomes;
};

int Fail(const std::string& line) {
  std::fprintf(stderr, "txbench: %s\n", line.c_str());
  return 2;
}

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5));
  std::nth_element(v.begin(), v.begin() + i, v.end());
  return v[i];
}

int Main(int argc, char** argv) {
  common::FlagSet f("txbench", "Closed-loop load generator for txcoord (public API only).");
  f.Add({"coordinator", "HOST:PORT", "txcoord address", "127.0.0.1:7700"});
  f.Add({"participant", "NAME", "a branch on this participant (one per flag)", "", true});
  f.Add({"sql", "TEXT", "statement each branch runs; $1 or ? is a random key",
         "UPDATE bench SET n = n + 1 WHERE id = $1"});
  f.Add({"sql-for", "NAME=TEXT", "the statement for one participant (e.g. ? for MySQL)", "", true});
  f.Add({"keys", "N", "keys to pick from (fewer keys, more contention)", "10000"});
  f.Add({"clients", "N", "concurrent clients", "8"});
  f.Add({"duration-s", "S", "how long to run", "10"});
  f.Add({"wait", "", "wait_for_completion: answer after every branch acknowledged", ""});
  f.Add({"json", "", "print one JSON line instead of text", ""});
  common::ParsedFlags parsed;
  if (std::optional<int> exit_code = f.ParseOrExit(argc, argv, &parsed)) return *exit_code;
  const common::ParsedFlags* flags = &parsed;
  if (flags->GetAll("participant").empty()) return Fail("give at least one --participant");
  auto keys = flags->GetInt("keys", 1, 1'000'000'000);
  auto clients = flags->GetInt("clients", 1, 4096);
  auto duration = flags->GetInt("duration-s", 1, 86'400);
  for (const auto* s : {&keys, &clients, &duration}) {
    if (!s->ok()) return Fail(std::string(s->status().message()));
  }
  std::map<std::string, std::string> sql_for;
  for (const auto& spec : flags->GetAll("sql-for")) {
    auto eq = spec.find('=');
    if (eq == std::string::npos) return Fail("--sql-for takes NAME=TEXT");
    sql_for[spec.substr(0, eq)] = spec.substr(eq + 1);
  }
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto channel = grpc::CreateCustomChannel(flags->Get("coordinator"),
                                           grpc::InsecureChannelCredentials(), args);
  auto stub = v1::Coordinator::NewStub(channel);

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(*duration);
  std::mutex mu;
  Result total;
  std::vector<std::thread> threads;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t c = 0; c < *clients; ++c) {
    threads.emplace_back([&, c] {
      std::mt19937_64 rng(c * 7919 + 1);
      std::uniform_int_distribution<int64_t> key(0, *keys - 1);
      Result mine;
      while (std::chrono::steady_clock::now() < deadline) {
        v1::RunRequest req;
        req.set_protocol(v1::PROTOCOL_TWO_PHASE);
        req.set_wait_for_completion(flags->GetBool("wait"));
        for (const auto& p : flags->GetAll("participant")) {
          v1::Branch* b = req.add_branches();
          b->set_participant(p);
          v1::Sql* sql = b->add_operations()->mutable_sql();
          auto it = sql_for.find(p);
          sql->set_text(it == sql_for.end() ? flags->Get("sql") : it->second);
          sql->add_params(absl::StrCat(key(rng)));
        }
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
        v1::Outcome out;
        auto t0 = std::chrono::steady_clock::now();
        grpc::Status s = stub->Run(&ctx, req, &out);
        double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                        .count();
        mine.latencies_ms.push_back(ms);
        ++mine.outcomes[s.ok() ? v1::TxnState_Name(out.state())
                               : absl::StrCat("rpc_error_", s.error_code())];
      }
      std::lock_guard<std::mutex> lock(mu);
      total.latencies_ms.insert(total.latencies_ms.end(), mine.latencies_ms.begin(),
                                mine.latencies_ms.end());
      for (const auto& [k, v] : mine.outcomes) total.outcomes[k] += v;
    });
  }
  for (auto& t : threads) t.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double tps = static_cast<double>(total.latencies_ms.size()) / seconds;
  const double p50 = Percentile(total.latencies_ms, 0.50);
  const double p90 = Percentile(total.latencies_ms, 0.90);
  const double p99 = Percentile(total.latencies_ms, 0.99);
  if (flags->GetBool("json")) {
    std::string outcomes;
    for (const auto& [k, v] : total.outcomes) {
      absl::StrAppend(&outcomes, outcomes.empty() ? "" : ",", "\"", k, "\":", v);
    }
    std::printf(
        "{\"transactions\":%zu,\"seconds\":%.2f,\"tps\":%.1f,\"p50_ms\":%.2f,\"p90_ms\":%.2f,"
        "\"p99_ms\":%.2f,\"outcomes\":{%s}}\n",
        total.latencies_ms.size(), seconds, tps, p50, p90, p99, outcomes.c_str());
  } else {
    std::printf(
        "%zu transactions in %.1f s: %.1f txn/s; latency p50 %.2f ms, p90 %.2f ms, p99 "
        "%.2f ms\n",
        total.latencies_ms.size(), seconds, tps, p50, p90, p99);
    for (const auto& [k, v] : total.outcomes) std::printf("  %-28s %ld\n", k.c_str(), v);
  }
  return 0;
}

}  // namespace
}  // namespace txn::bench

int main(int argc, char** argv) { return txn::bench::Main(argc, argv); }
