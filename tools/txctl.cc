// txctl: the operator's command line for txcoord, a client of the public Coordinator and Admin
// APIs only. Output is a table or a few lines for a person, or with --json one JSON document
// (the response message, field names as in the proto) for a program.
//
//   txctl --coordinator HOST:PORT list [--state in-doubt,committing,...] [--limit N]
//   txctl --coordinator HOST:PORT show TXN
//   txctl --coordinator HOST:PORT resolve TXN commit|abort
//   txctl --coordinator HOST:PORT participants
//   txctl --coordinator HOST:PORT stats
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <ctime>
#include <iostream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/status/status.h"
#include "common/bearer_token.h"
#include "common/flags.h"
#include "common/tls.h"
#include "txn/v1/coordinator.grpc.pb.h"

namespace txn {
namespace {

constexpr int kUsageError = 2;
constexpr int kRpcError = 1;  // the coordinator refused or did not answer

common::FlagSet CtlFlags() {
  common::FlagSet f("txctl",
                    "Operator tool for txcoord.\n"
                    "commands:\n"
                    "  list [--state S[,S...]] [--limit N] [--page-token T]\n"
                    "                              transactions (states: active, preparing,\n"
                    "                              committing, committed, aborting, aborted,\n"
                    "                              heuristic-mixed, failed-compensation,\n"
                    "                              in-doubt)\n"
                    "  show TXN                    one transaction with its branches and errors\n"
                    "  resolve TXN commit|abort    decide a transaction that has no logged\n"
                    "                              decision, or re-drive a logged one\n"
                    "  participants                agents with health and circuit state\n"
                    "  stats                       counts by state, decision log size\n"
                    "  waits                       lock waits the agents report now (who waits\n"
                    "                              for whom, where), deadlocks broken\n"
                    "  foreign                     transactions prepared in the agents' databases\n"
                    "                              for another coordinator node: nothing here\n"
                    "                              finishes them");
  f.Add({"coordinator", "HOST:PORT", "txcoord's address", "127.0.0.1:7700"});
  f.Add({"json", "", "print the response as JSON", ""});
  f.Add({"state", "S[,S...]", "list: only these states", "", /*repeated=*/true});
  f.Add({"limit", "N", "list: at most N transactions (at most 1000)", "100"});
  f.Add({"page-token", "TXN", "list: continue after this transaction", ""});
  f.Add({"timeout-ms", "MS", "deadline of each call", "10000"});
  common::AddTlsFlags(&f);
  f.Add({"tls-server-name", "NAME", "with TLS: the name txcoord's certificate must carry",
         "coordinator"});
  f.Add({"token-file", "FILE",
         "bearer token to send (an admin one when txcoord has --token-file): the token alone, "
         "or a 'SCOPE TOKEN [NAME]' line",
         ""});
  return f;
}

int Usage(const std::string& line) {
  std::fprintf(stderr, "txctl: %s (see txctl --help)\n", line.c_str());
  return kUsageError;
}

// gRPC's codes are Abseil's, numerically: "PERMISSION_DENIED", "NOT_FOUND", ...
std::string CodeName(grpc::StatusCode c) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(c));
}

int Failed(const grpc::Status& s) {
  std::fprintf(stderr, "txctl: %s: %s\n", CodeName(s.error_code()).c_str(),
               s.error_message().c_str());
  return kRpcError;
}

void PrintJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, options);
  std::cout << out;
  if (out.empty() || out.back() != '\n') std::cout << "\n";
}

// "TXN_STATE_IN_DOUBT" -> "IN_DOUBT".
std::string Short(const std::string& enum_name, absl::string_view prefix) {
  absl::string_view s = enum_name;
  if (absl::StartsWith(s, prefix)) s.remove_prefix(prefix.size());
  return std::string(s);
}

std::string Time(int64_t unix_ms) {
  if (unix_ms == 0) return "-";
  std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return absl::StrCat(buf, ".", absl::Dec(unix_ms % 1000, absl::kZeroPad3), "Z");
}

// Prints rows as columns separated by two spaces; the last column is not padded.
void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& r : rows) {
    if (width.size() < r.size()) width.resize(r.size(), 0);
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::cout << line << "\n";
  }
}

absl::StatusOr<v1::TxnState> ParseState(std::string word) {
  std::string norm = absl::AsciiStrToUpper(absl::StrReplaceAll(word, {{"-", "_"}}));
  v1::TxnState state;
  if (v1::TxnState_Parse("TXN_STATE_" + norm, &state) && state != v1::TXN_STATE_UNSPECIFIED) {
    return state;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown state '", word, "'"));
}

class Ctl {
 public:
  Ctl(std::shared_ptr<grpc::Channel> channel, int64_t timeout_ms, bool json, std::string token)
      : coordinator_(v1::Coordinator::NewStub(channel)),
        admin_(v1::Admin::NewStub(channel)),
        timeout_ms_(timeout_ms),
        json_(json),
        token_(std::move(token)) {}

  int List(const common::ParsedFlags& flags) {
    v1::ListTransactionsRequest req;
    for (const std::string& group : flags.GetAll("state")) {
      for (absl::string_view word : absl::StrSplit(group, ',', absl::SkipEmpty())) {
        absl::StatusOr<v1::TxnState> st = ParseState(std::string(word));
        if (!st.ok()) return Usage(std::string(st.status().message()));
        req.add_states(*st);
      }
    }
    absl::StatusOr<int64_t> limit = flags.GetInt("limit", 1, 1000);
    if (!limit.ok()) return Usage(std::string(limit.status().message()));
    req.set_limit(static_cast<uint32_t>(*limit));
    req.set_page_token(flags.Get("page-token"));
    v1::ListTransactionsResponse resp;
    grpc::ClientContext ctx;
    Deadline(&ctx);
    grpc::Status s = admin_->ListTransactions(&ctx, req, &resp);
    if (!s.ok()) return Failed(s);
    if (json_) {
      PrintJson(resp);
      return 0;
    }
    std::vector<std::vector<std::string>> rows = {
        {"TXN", "PROTOCOL", "STATE", "CREATED", "BRANCHES", "REASON"}};
    for (const auto& t : resp.transactions()) {
      std::vector<std::string> branches;
      for (const auto& b : t.branches()) {
        branches.push_back(absl::StrCat(b.participant(), ":",
                                        Short(v1::BranchState_Name(b.state()), "BRANCH_STATE_")));
      }
      rows.push_back({t.txn_id(), Short(v1::Protocol_Name(t.protocol()), "PROTOCOL_"),
                      Short(v1::TxnState_Name(t.state()), "TXN_STATE_"), Time(t.created_unix_ms()),
                      absl::StrJoin(branches, ","), t.reason().substr(0, 120)});
    }
    if (resp.transactions().empty()) {
      std::cout << "(none)\n";
    } else {
      PrintTable(rows);
    }
    if (!resp.next_page_token().empty()) {
      std::cout << "more: txctl list --page-token " << resp.next_page_token() << " ...\n";
    }
    return 0;
  }

  int Show(const std::string& txn_id) {
    v1::GetTransactionRequest req;
    req.set_txn_id(txn_id);
    v1::Transaction t;
    grpc::ClientContext ctx;
    Deadline(&ctx);
    grpc::Status s = coordinator_->GetTransaction(&ctx, req, &t);
    if (!s.ok()) return Failed(s);
    if (json_) {
      PrintJson(t);
      return 0;
    }
    PrintTransaction(t);
    return 0;
  }

  int Resolve(const std::string& txn_id, const std::string& word) {
    v1::ResolveTransactionRequest req;
    req.set_txn_id(txn_id);
    const std::string d = absl::AsciiStrToLower(word);
    if (d == "commit") {
      req.set_decision(v1::DECISION_COMMIT);
    } else if (d == "abort") {
      req.set_decision(v1::DECISION_ABORT);
    } else {
      return Usage(absl::StrCat("resolve: the decision must be commit or abort, not '", word, "'"));
    }
    v1::Outcome out;
    grpc::ClientContext ctx;
    Deadline(&ctx);
    grpc::Status s = admin_->ResolveTransaction(&ctx, req, &out);
    if (!s.ok()) return Failed(s);
    if (json_) {
      PrintJson(out);
      return 0;
    }
    std::cout << "resolution started; the transaction now reads:\n";
    return Show(txn_id);
  }

  int Participants() {
    v1::ListParticipantsResponse resp;
    grpc::ClientContext ctx;
    Deadline(&ctx);
    grpc::Status s = admin_->ListParticipants(&ctx, v1::ListParticipantsRequest(), &resp);
    if (!s.ok()) return Failed(s);
    if (json_) {
      PrintJson(resp);
      return 0;
    }
    std::vector<std::vector<std::string>> rows = {{"NAME", "ADDRESS", "BACKEND", "HEALTH",
                                                   "CIRCUIT", "FAILURES", "CALLS", "FAILED",
                                                   "LAST_ERROR"}};
    for (const auto& p : resp.participants()) {
      std::string circuit = Short(v1::CircuitState_Name(p.circuit()), "CIRCUIT_STATE_");
      if (p.circuit() == v1::CIRCUIT_STATE_OPEN) {
        absl::StrAppend(&circuit, " until ", Time(p.retry_at_unix_ms()));
      }
      rows.push_back({p.name(), p.address(), p.backend().empty() ? "?" : p.backend(),
                      Short(v1::ParticipantHealth_Name(p.health()), "PARTICIPANT_HEALTH_"), circuit,
                      absl::StrCat(p.consecutive_failures()), absl::StrCat(p.calls()),
                      absl::StrCat(p.failed_calls()),
                      p.consecutive_failures() > 0 ? p.last_error().substr(0, 100) : ""});
    }
    PrintTable(rows);
    return 0;
  }

  int Stats() {
    v1::Stats st;
    grpc::ClientContext ctx;
    Deadline(&ctx);
    grpc::Status s = admin_->GetStats(&ctx, v1::GetStatsRequest(), &st);
    if (!s.ok()) return Failed(s);
    if (json_) {
      PrintJson(st);
      return 0;
    }
    std::cout << "node:               " << st.node_id() << "\n";
    std::cout << "incarnation:        " << st.incarnation() << "\n";
    std::cout << "started:            " << Time(st.started_unix_ms()) << "\n";
    std::cout << "accepting:          "
              << (st.accepting() ? "yes" : "NO (the decision log cannot be written)") << "\n";
    std::cout << "log records:        " << st.log_records() << "\n";
    std::cout << "heuristic records:  " << st.heuristic_records()
              << (st.heuristic_records() > 0
                      ? "  <- see txctl list --state heuristic-mixed,failed-compensation"
                      : "")
              << "\n";
    auto print_map = [](const char* title, const auto& m) {
      std::cout << title;
      if (m.empty()) std::cout << " none";
      std::map<std::string, uint64_t> sorted(m.begin(), m.end());
      for (const auto& [k, v] : sorted) std::cout << " " << Short(k, "TXN_STATE_") << "=" << v;
      std::cout << "\n";
    };
    print_map("active now:        ", st.active_by_state());
    print_map("finished (since start):", st.finished_by_state());
    return 0;
  }

  int Waits() {
    v1::ListWaitsResponse resp;
    grpc::ClientContext ctx;
    Deadline(&ctx);
    grpc::Status s = admin_->ListWaits(&ctx, v1::ListWaitsRequest(), &resp);
    if (!s.ok()) return Failed(s);
    if (json_) {
      PrintJson(resp);
      return 0;
    }
    std::vector<std::vector<std::string>> rows = {
        {"WAITER", "PARTICIPANT", "WAITED_MS", "HOLDER_TXN", "HOLDER"}};
    for (const auto& w : resp.waits()) {
      rows.push_back({w.waiter_txn_id(), w.participant(), absl::StrCat(w.waited_ms()),
                      w.holder_txn_id().empty() ? "(not a txcoord transaction)" : w.holder_txn_id(),
                      w.holder()});
    }
    if (resp.waits().empty()) {
      std::cout << "no lock waits reported\n";
    } else {
      PrintTable(rows);
    }
    std::cout << "deadlocks broken since start: " << resp.deadlocks_broken() << "\n";
    return 0;
  }

  int Foreign() {
    v1::ListForeignBranchesResponse resp;
    grpc::ClientContext ctx;
    Deadline(&ctx);
    grpc::Status s = admin_->ListForeignBranches(&ctx, v1::ListForeignBranchesRequest(), &resp);
    if (!s.ok()) return Failed(s);
    if (json_) {
      PrintJson(resp);
      return 0;
    }
    if (resp.branches().empty()) {
      std::cout << "no foreign prepared branches reported\n";
      return 0;
    }
    std::vector<std::vector<std::string>> rows = {{"PARTICIPANT", "GID", "NODE", "SEEN_S"}};
    for (const auto& r : resp.branches()) {
      rows.push_back({r.participant(), r.branch().gid(), r.branch().node_id(),
                      absl::StrCat(r.branch().seen_ms() / 1000)});
    }
    PrintTable(rows);
    std::cout << "each holds its locks until an operator finishes it in its database (COMMIT "
                 "PREPARED / ROLLBACK PREPARED, XA COMMIT / XA ROLLBACK) after asking its own "
                 "coordinator\n";
    return 0;
  }

 private:
  // The deadline and the bearer token every call carries.
  void Deadline(grpc::ClientContext* ctx) const {
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms_));
    common::AddBearerToken(ctx, token_);
  }

  static void PrintTransaction(const v1::Transaction& t) {
    std::cout << "txn:       " << t.txn_id() << "\n";
    std::cout << "protocol:  " << Short(v1::Protocol_Name(t.protocol()), "PROTOCOL_") << "\n";
    std::cout << "state:     " << Short(v1::TxnState_Name(t.state()), "TXN_STATE_") << "\n";
    if (!t.reason().empty()) std::cout << "reason:    " << t.reason() << "\n";
    std::cout << "created:   " << Time(t.created_unix_ms()) << "\n";
    std::cout << "decided:   " << Time(t.decided_unix_ms()) << "\n";
    std::vector<std::vector<std::string>> rows = {{"  #", "PARTICIPANT", "STATE", "LAST_ERROR"}};
    for (int i = 0; i < t.branches_size(); ++i) {
      const auto& b = t.branches(i);
      rows.push_back({absl::StrCat("  ", i), b.participant(),
                      Short(v1::BranchState_Name(b.state()), "BRANCH_STATE_"), b.last_error()});
    }
    std::cout << "branches:\n";
    PrintTable(rows);
  }

  std::unique_ptr<v1::Coordinator::Stub> coordinator_;
  std::unique_ptr<v1::Admin::Stub> admin_;
  const int64_t timeout_ms_;
  const bool json_;
  const std::string token_;
};

int Main(int argc, char** argv) {
  common::ParsedFlags flags;
  if (std::optional<int> code =
          CtlFlags().ParseOrExit(argc, argv, &flags, /*allow_positional=*/true)) {
    return *code;
  }
  const std::vector<std::string>& words = flags.positional();
  if (words.empty()) return Usage("no command given");
  absl::StatusOr<int64_t> timeout = flags.GetInt("timeout-ms", 1, 3'600'000);
  if (!timeout.ok()) return Usage(std::string(timeout.status().message()));
  std::string token;
  if (const std::string& file = flags.Get("token-file"); !file.empty()) {
    absl::StatusOr<std::string> read = common::ReadBearerToken(file);
    if (!read.ok()) return Usage(std::string(read.status().message()));
    token = *read;
  }
  absl::StatusOr<std::optional<common::TlsConfig>> tls = common::TlsFromFlags(flags);
  if (!tls.ok()) return Usage(std::string(tls.status().message()));
  Ctl ctl(common::MakeChannel(flags.Get("coordinator"), *tls, flags.Get("tls-server-name")),
          *timeout, flags.GetBool("json"), std::move(token));
  const std::string& cmd = words[0];
  auto want_args = [&](size_t n, const char* usage) -> std::optional<int> {
    if (words.size() != n + 1) return Usage(absl::StrCat("usage: txctl ", usage));
    return std::nullopt;
  };
  if (cmd == "list") {
    if (auto bad = want_args(0, "list [--state S] [--limit N]")) return *bad;
    return ctl.List(flags);
  }
  if (cmd == "show") {
    if (auto bad = want_args(1, "show TXN")) return *bad;
    return ctl.Show(words[1]);
  }
  if (cmd == "resolve") {
    if (auto bad = want_args(2, "resolve TXN commit|abort")) return *bad;
    return ctl.Resolve(words[1], words[2]);
  }
  if (cmd == "participants") {
    if (auto bad = want_args(0, "participants")) return *bad;
    return ctl.Participants();
  }
  if (cmd == "stats") {
    if (auto bad = want_args(0, "stats")) return *bad;
    return ctl.Stats();
  }
  if (cmd == "waits") {
    if (auto bad = want_args(0, "waits")) return *bad;
    return ctl.Waits();
  }
  if (cmd == "foreign") {
    if (auto bad = want_args(0, "foreign")) return *bad;
    return ctl.Foreign();
  }
  return Usage(absl::StrCat("unknown command '", cmd, "'"));
}

}  // namespace
}  // namespace txn

int main(int argc, char** argv) { return txn::Main(argc, argv); }
