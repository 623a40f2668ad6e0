#include "tests/sim/sim_run.h"

#include <map>
#include <memory>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/logging.h"
#include "tests/sim/sim_agent.h"

namespace txn::sim {
namespace {

constexpr int kAccounts = 4;  // few rows: transfers meet each other's locks
constexpr int64_t kBalance = 20;
// The databases that can prepare (2PC, 3PC, sagas), and one that cannot (like MongoDB): it
// takes part in two-phase commits only, as their last resource, committed in one phase.
const char* const kDatabases[] = {"orders", "ledger", "stock"};
constexpr char kLastResource[] = "docs";

// The coordinator's GetDecision, as an agent's reconciler reaches it: over its link.
class SimDecisionSource final : public agent::DecisionSource {
 public:
  SimDecisionSource(SimScheduler* scheduler, SimNetwork* network, std::string agent)
      : scheduler_(scheduler), network_(network), agent_(std::move(agent)) {}
  void set_coordinator(SimCoordinator* c) { coordinator_ = c; }
  absl::StatusOr<v1::Decision> GetDecision(const std::string& txn_id) override {
    if (!coordinator_->life().up() || network_->IsCut(agent_) ||
        scheduler_->Chance(network_->faults().drop)) {
      return absl::UnavailableError("the simulated coordinator cannot be reached");
    }
    return coordinator_->driver().GetDecision(txn_id);
  }
  absl::Status ReportDecision(const std::string& txn_id, const std::string& participant,
                              v1::Decision decision) override {
    if (!coordinator_->life().up() || network_->IsCut(agent_) ||
        scheduler_->Chance(network_->faults().drop)) {
      return absl::UnavailableError("the simulated coordinator cannot be reached");
    }
    v1::ReportDecisionRequest req;
    req.set_txn_id(txn_id);
    req.set_participant(participant);
    req.set_decision(decision);
    return coordinator_->driver().ReportDecision(req);
  }

 private:
  SimScheduler* const scheduler_;
  SimNetwork* const network_;
  const std::string agent_;
  SimCoordinator* coordinator_ = nullptr;
};

// What clients were told, per idempotency key.
struct Answer {
  std::string txn_id;
  v1::TxnState state;
  int coordinator_crashes;  // how many there had been when it was given
};

struct Transfer {
  std::string key;  // empty for an interactive one
  // Run's request; an interactive transfer runs its branches' operations one Execute each, in
  // order, so its branch numbers are the same.
  v1::RunRequest request;
  std::string txn_id;  // interactive: Begin's
  bool saga = false;   // request.protocol is PROTOCOL_SAGA (else 2PC or 3PC)
  std::set<int> read_only;  // branches that write nothing (no database records them)
  std::vector<Answer> answers;
  bool finished = false;
};

class Run {
 public:
  explicit Run(const SimOptions& options)
      : options_(options), scheduler_(options.seed), network_(&scheduler_) {
    std::vector<std::pair<std::string, bool>> databases;  // name, can prepare
    for (const char* name : kDatabases) databases.emplace_back(name, true);
    databases.emplace_back(kLastResource, false);
    for (const auto& [name, can_prepare] : databases) {
      sources_.push_back(std::make_unique<SimDecisionSource>(&scheduler_, &network_, name));
      peers_.push_back(std::make_unique<SimPeers>(&scheduler_, &network_, name, &agents_));
      agents_.push_back(std::make_unique<SimAgent>(
          &scheduler_,
          std::make_unique<SimDatabase>(name, &scheduler_, kAccounts, kBalance,
                                        /*flaky_chance=*/options.faults ? 0.02 : 0, can_prepare),
          sources_.back().get(), peers_.back().get(), /*reconcile_every_ms=*/200));
    }
  }

  SimResult Go() {
    // Channels bind answers to the coordinator's life, so they are added to its directory right
    // after it is made (the driver reads the directory only when it is called).
    coordinator_ = std::make_unique<SimCoordinator>(&scheduler_, &directory_, options_.log_mode);
    for (auto& agent : agents_) {
      directory_.Add(std::make_unique<SimChannel>(&scheduler_, &network_, agent.get(),
                                                  &coordinator_->life()));
    }
    for (auto& source : sources_) source->set_coordinator(coordinator_.get());

    if (options_.faults) {
      coordinator_->set_log_failure_chance(0.01);
      network_.set_faults(NetworkFaults{.drop = 0.03, .duplicate = 0.03, .min_delay_ms = 1,
                                        .max_delay_ms = 30});
      scheduler_.After(scheduler_.Between(50, 300), [this] { Fault(); });
    } else {
      network_.set_faults(NetworkFaults{.min_delay_ms = 1, .max_delay_ms = 5});
    }
    for (int c = 0; c < options_.clients; ++c) {
      scheduler_.After(scheduler_.Between(0, 20), [this, c] { NextTransfer(c); });
    }
    scheduler_.RunUntil(start_ms_ + options_.fault_phase_ms);
    Heal();
    scheduler_.RunUntil(start_ms_ + options_.fault_phase_ms + options_.heal_phase_ms);
    Check();
    for (auto& agent : agents_) result_.terminated_by_agents += agent->terminated();
    result_.log_write_failures = coordinator_->log_failures();
    return std::move(result_);
  }

 private:
  void Note(const std::string& what) {
    absl::StrAppend(&result_.trace, scheduler_.now() - start_ms_, " ms ", what, "\n");
  }

  // --- faults ---
  bool faulting() const { return !healed_; }

  void Fault() {
    if (!faulting()) return;
    const int64_t pick = scheduler_.Between(0, 9);
    if (pick <= 2 && coordinator_->life().up()) {
      Note("fault: coordinator crashes");
      ++result_.coordinator_crashes;
      coordinator_->Crash();
      scheduler_.After(scheduler_.Between(10, 1'000), [this] {
        Note("coordinator restarts");
        coordinator_->Restart();
      });
    } else if (pick <= 5) {
      SimAgent* agent = agents_[scheduler_.Between(0, static_cast<int64_t>(agents_.size()) - 1)].get();
      if (agent->life().up()) {
        Note(absl::StrCat("fault: agent ", agent->name(), " crashes"));
        ++result_.agent_crashes;
        agent->Crash();
        scheduler_.After(scheduler_.Between(10, 1'000), [this, agent] {
          Note(absl::StrCat("agent ", agent->name(), " restarts"));
          agent->Restart();
        });
      }
    } else if (pick <= 7) {
      const std::string name =
          agents_[scheduler_.Between(0, static_cast<int64_t>(agents_.size()) - 1)]->name();
      Note(absl::StrCat("fault: link to ", name, " cut"));
      network_.Cut(name, true);
      scheduler_.After(scheduler_.Between(50, 1'000), [this, name] {
        Note(absl::StrCat("link to ", name, " back"));
        network_.Cut(name, false);
      });
    }
    scheduler_.After(scheduler_.Between(100, 1'500), [this] { Fault(); });
  }

  void Heal() {
    Note("every fault heals");
    healed_ = true;
    network_.HealAll();
    network_.set_faults(NetworkFaults{.min_delay_ms = 1, .max_delay_ms = 5});
    coordinator_->set_log_failure_chance(0);
    if (coordinator_->life().up() && coordinator_->log_failed_since_start()) {
      // A 2PC transaction whose COMMIT write failed stays in doubt until the log is read again
      // (README: a restart, or an operator's resolve): the operator restarts the coordinator.
      Note("an operator restarts the coordinator after its decision log failed");
      ++result_.coordinator_crashes;
      coordinator_->Crash();
    }
    coordinator_->Restart();
    for (auto& agent : agents_) agent->Restart();
  }

  // --- clients ---
  v1::Operation Move(int account, int delta) {
    v1::Operation op;
    op.mutable_sql()->set_text(kTransferSql);
    op.mutable_sql()->add_params(absl::StrCat(account));
    op.mutable_sql()->add_params(absl::StrCat(delta));
    op.mutable_sql()->set_expect_rows_affected(1);
    return op;
  }

  // A Run of `protocol`, waiting for completion or not (sagas always run to their end).
  v1::RunRequest NewRequest(v1::Protocol protocol) {
    v1::RunRequest req;
    req.set_protocol(protocol);
    req.set_timeout_ms(3'000);
    if (protocol != v1::PROTOCOL_SAGA) req.set_wait_for_completion(scheduler_.Chance(0.5));
    return req;
  }

  // A transfer from one database's account to another's (sometimes within one database, a
  // one-phase commit, sometimes through all three, sometimes into the last resource). Its
  // read-only branches go into `read_only` (they write nothing, so no database records them).
  v1::RunRequest MakeRequest(std::set<int>* read_only) {
    v1::RunRequest req = NewRequest(v1::PROTOCOL_TWO_PHASE);
    const int amount = static_cast<int>(scheduler_.Between(1, 5));
    const int64_t shape = scheduler_.Between(0, 9);
    if (shape >= 8) return MakeLastResourceRequest(std::move(req), amount, read_only);
    const int from = static_cast<int>(scheduler_.Between(0, 2));
    auto* debit = req.add_branches();
    debit->set_participant(kDatabases[from]);
    *debit->add_operations() = Move(static_cast<int>(scheduler_.Between(1, kAccounts)), -amount);
    if (shape == 0) {  // one database: debit and credit in one branch
      *debit->add_operations() = Move(static_cast<int>(scheduler_.Between(1, kAccounts)), amount);
      return req;
    }
    const int to = (from + 1 + static_cast<int>(scheduler_.Between(0, 1))) % 3;
    if (shape == 1) {  // three databases: the credit split in two
      auto* half = req.add_branches();
      half->set_participant(kDatabases[3 - from - to]);
      *half->add_operations() = Move(static_cast<int>(scheduler_.Between(1, kAccounts)), 1);
      auto* rest = req.add_branches();
      rest->set_participant(kDatabases[to]);
      *rest->add_operations() =
          Move(static_cast<int>(scheduler_.Between(1, kAccounts)), amount - 1);
      return req;
    }
    auto* credit = req.add_branches();
    credit->set_participant(kDatabases[to]);
    *credit->add_operations() = Move(static_cast<int>(scheduler_.Between(1, kAccounts)), amount);
    return req;
  }

  // A transfer with the last resource: from a database that can prepare into it; or within it
  // alone (a single branch that cannot prepare); or within it beside a read-only branch (one
  // that only looks at a balance: its statement matches no row), which leaves the last resource
  // as the only branch that changes anything.
  v1::RunRequest MakeLastResourceRequest(v1::RunRequest req, int amount, std::set<int>* read_only) {
    const int64_t shape = scheduler_.Between(0, 2);
    if (shape == 1) {
      auto* look = req.add_branches();
      look->set_participant(kDatabases[scheduler_.Between(0, 2)]);
      v1::Operation nothing = Move(static_cast<int>(scheduler_.Between(1, kAccounts)), -1'000'000);
      nothing.mutable_sql()->clear_expect_rows_affected();
      *look->add_operations() = nothing;
      read_only->insert(0);
    }
    auto* last = req.add_branches();
    last->set_participant(kLastResource);
    if (shape == 0) {
      auto* debit = req.add_branches();
      debit->set_participant(kDatabases[scheduler_.Between(0, 2)]);
      *debit->add_operations() = Move(static_cast<int>(scheduler_.Between(1, kAccounts)), -amount);
    } else {
      *last->add_operations() = Move(static_cast<int>(scheduler_.Between(1, kAccounts)), -amount);
    }
    *last->add_operations() = Move(static_cast<int>(scheduler_.Between(1, kAccounts)), amount);
    return req;
  }

  // A saga: debit one database's account, then credit another's; each step's compensation
  // moves the money back (unguarded: a compensation must not fail for want of money).
  v1::RunRequest MakeSagaRequest() {
    v1::RunRequest req = NewRequest(v1::PROTOCOL_SAGA);
    const int amount = static_cast<int>(scheduler_.Between(1, 5));
    const int from = static_cast<int>(scheduler_.Between(0, 2));
    const int to = (from + 1 + static_cast<int>(scheduler_.Between(0, 1))) % 3;
    for (const auto& [db, delta] : {std::pair{from, -amount}, std::pair{to, amount}}) {
      const int account = static_cast<int>(scheduler_.Between(1, kAccounts));
      auto* step = req.add_branches();
      step->set_participant(kDatabases[db]);
      *step->add_operations() = Move(account, delta);
      v1::Operation undo = Move(account, -delta);
      undo.mutable_sql()->set_text(kAdjustSql);
      undo.mutable_sql()->clear_expect_rows_affected();
      *step->add_compensations() = undo;
    }
    return req;
  }

  // A three-phase commit through all three databases: one debit, the credit split over the other
  // two (a 3PC transaction takes one branch per participant; its quorums need three members).
  v1::RunRequest MakeThreePhaseRequest() {
    v1::RunRequest req = NewRequest(v1::PROTOCOL_THREE_PHASE);
    const int amount = static_cast<int>(scheduler_.Between(2, 5));
    const int from = static_cast<int>(scheduler_.Between(0, 2));
    const int part = static_cast<int>(scheduler_.Between(1, amount - 1));
    const int deltas[] = {-amount, part, amount - part};
    for (int i = 0; i < 3; ++i) {
      auto* b = req.add_branches();
      b->set_participant(kDatabases[(from + i) % 3]);
      *b->add_operations() = Move(static_cast<int>(scheduler_.Between(1, kAccounts)), deltas[i]);
    }
    return req;
  }

  void NextTransfer(int client) {
    if (!faulting()) return;  // new transfers only while faults happen; retries go on after
    if (scheduler_.Chance(0.3)) {
      auto t = std::make_shared<Transfer>();
      t->request = MakeRequest(&t->read_only);
      transfers_.push_back(t);
      BeginInteractive(client, t);
      return;
    }
    auto t = std::make_shared<Transfer>();
    t->key = absl::StrCat("c", client, "-", transfers_.size());
    const int64_t kind = scheduler_.Between(0, 99);
    t->saga = kind < 25;
    if (t->saga) {
      t->request = MakeSagaRequest();
    } else if (kind < 45) {
      t->request = MakeThreePhaseRequest();
    } else {
      t->request = MakeRequest(&t->read_only);
    }
    t->request.set_idempotency_key(t->key);
    // Each statement names its transfer, so the checks see every transaction the key ran,
    // also ones no client heard of.
    for (auto& b : *t->request.mutable_branches()) {
      for (auto& op : *b.mutable_operations()) {
        op.mutable_sql()->set_text(absl::StrCat(op.sql().text(), " -- ", t->key));
      }
      for (auto& op : *b.mutable_compensations()) {
        op.mutable_sql()->set_text(absl::StrCat(op.sql().text(), " -- ", t->key));
      }
    }
    transfers_.push_back(t);
    Send(client, t, /*attempt=*/0);
  }

  // Sends (or resends, under the same key) `t`. Each attempt waits for its answer up to a
  // client timeout; an answer that comes later still counts as something the client was told.
  void Send(int client, const std::shared_ptr<Transfer>& t, int attempt) {
    auto waiting = std::make_shared<bool>(true);
    auto retry = [this, client, t, attempt, waiting] {
      if (!*waiting) return;
      *waiting = false;
      scheduler_.After(scheduler_.Between(50, 300), [this, client, t, attempt] {
        Send(client, t, attempt + 1);
      });
    };
    scheduler_.After(4'000, retry);  // the client's own timeout
    if (!coordinator_->life().up() || scheduler_.Chance(network_.faults().drop)) {
      return;  // refused or lost on the way: the timeout retries
    }
    coordinator_->driver().Run(
        t->request, coordinator_->life().BindReply<absl::StatusOr<v1::Outcome>>(
                        [this, client, t, waiting, retry](absl::StatusOr<v1::Outcome> outcome) {
                          OnAnswer(client, t, waiting, retry, std::move(outcome));
                        }));
  }

  void OnAnswer(int client, const std::shared_ptr<Transfer>& t,
                const std::shared_ptr<bool>& waiting, const std::function<void()>& retry,
                absl::StatusOr<v1::Outcome> outcome) {
    if (!outcome.ok()) {
      const auto code = outcome.status().code();
      if (code != absl::StatusCode::kUnavailable && code != absl::StatusCode::kDeadlineExceeded &&
          code != absl::StatusCode::kResourceExhausted && code != absl::StatusCode::kAborted) {
        Violation(absl::StrCat("transfer ", t->key, " got an unexpected error: ",
                               outcome.status().ToString()));
      }
      retry();
      return;
    }
    const v1::TxnState state = outcome->state();
    Note(absl::StrCat("client: ", t->key, " (", t->request.branches_size(), " branches) -> ",
                      outcome->txn_id(), " ", v1::TxnState_Name(state)));
    if (state == v1::TXN_STATE_HEURISTIC_MIXED) {
      Violation(absl::StrCat("transfer ", t->key, " ended HEURISTIC_MIXED"));
    }
    const bool decided = state == v1::TXN_STATE_COMMITTED || state == v1::TXN_STATE_COMMITTING ||
                         state == v1::TXN_STATE_ABORTED || state == v1::TXN_STATE_ABORTING ||
                         state == v1::TXN_STATE_FAILED_COMPENSATION;
    if (!decided) {
      retry();
      return;
    }
    t->answers.push_back(Answer{outcome->txn_id(), state, result_.coordinator_crashes});
    if (!*waiting) return;  // a late answer to an attempt the client had given up on
    *waiting = false;
    if (!t->finished) {
      t->finished = true;
      // Now and then the client retries anyway (it did not see the answer, say): the key must
      // give back the same transaction, not run it again.
      if (scheduler_.Chance(0.2)) {
        scheduler_.After(scheduler_.Between(1, 500), [this, client, t] { Send(client, t, 1); });
      }
      scheduler_.After(scheduler_.Between(0, 50), [this, client] { NextTransfer(client); });
    }
  }

  // --- interactive transfers: Begin, one Execute per operation, Commit ---
  // The client is done with `t` (with an answer or without: it gave up).
  void Done(int client, const std::shared_ptr<Transfer>& t) {
    if (t->finished) return;
    t->finished = true;
    scheduler_.After(scheduler_.Between(0, 50), [this, client] { NextTransfer(client); });
  }

  void Record(const std::shared_ptr<Transfer>& t, const v1::Outcome& o) {
    Note(absl::StrCat("client: interactive ", o.txn_id(), " -> ", v1::TxnState_Name(o.state())));
    if (o.state() == v1::TXN_STATE_HEURISTIC_MIXED) {
      Violation(absl::StrCat(o.txn_id(), " ended HEURISTIC_MIXED"));
    }
    if (o.state() == v1::TXN_STATE_COMMITTED || o.state() == v1::TXN_STATE_COMMITTING ||
        o.state() == v1::TXN_STATE_ABORTED || o.state() == v1::TXN_STATE_ABORTING) {
      t->answers.push_back(Answer{o.txn_id(), o.state(), result_.coordinator_crashes});
    }
  }

  void BeginInteractive(int client, const std::shared_ptr<Transfer>& t) {
    if (!faulting()) return Done(client, t);
    absl::StatusOr<v1::BeginResponse> begun = absl::UnavailableError("coordinator down");
    if (coordinator_->life().up()) {
      v1::BeginRequest req;
      req.set_protocol(v1::PROTOCOL_TWO_PHASE);
      req.set_timeout_ms(3'000);
      begun = coordinator_->driver().Begin(req);
    }
    if (!begun.ok()) {
      scheduler_.After(scheduler_.Between(50, 300), [this, client, t] {
        BeginInteractive(client, t);
      });
      return;
    }
    t->txn_id = begun->txn_id();
    ExecuteNext(client, t, 0, 0);
  }

  void ExecuteNext(int client, const std::shared_ptr<Transfer>& t, int branch, int op) {
    if (branch == t->request.branches_size()) return CommitInteractive(client, t);
    const v1::Branch& b = t->request.branches(branch);
    if (op == b.operations_size()) return ExecuteNext(client, t, branch + 1, 0);
    v1::ExecuteRequest req;
    req.set_txn_id(t->txn_id);
    req.set_participant(b.participant());
    *req.mutable_operation() = b.operations(op);
    auto waiting = std::make_shared<bool>(true);
    scheduler_.After(4'000, [this, client, t, waiting] {
      if (!*waiting) return;
      *waiting = false;
      RollbackInteractive(client, t);  // the client gives up
    });
    if (!coordinator_->life().up() || scheduler_.Chance(network_.faults().drop)) return;
    coordinator_->driver().Execute(
        req, coordinator_->life().BindReply<absl::StatusOr<v1::ExecuteResult>>(
                 [this, client, t, waiting, branch, op](absl::StatusOr<v1::ExecuteResult> r) {
                   if (!*waiting) return;
                   *waiting = false;
                   if (!r.ok() || r->rows_affected() != 1) return RollbackInteractive(client, t);
                   ExecuteNext(client, t, branch, op + 1);
                 }));
  }

  void RollbackInteractive(int client, const std::shared_ptr<Transfer>& t) {
    if (coordinator_->life().up() && !scheduler_.Chance(network_.faults().drop)) {
      v1::RollbackRequest req;
      req.set_txn_id(t->txn_id);
      coordinator_->driver().Rollback(
          req, coordinator_->life().BindReply<absl::StatusOr<v1::Outcome>>(
                   [this, t](absl::StatusOr<v1::Outcome> o) {
                     if (o.ok()) Record(t, *o);
                   }));
    }
    Done(client, t);  // whatever the Rollback says: nothing was asked to commit
  }

  void CommitInteractive(int client, const std::shared_ptr<Transfer>& t) {
    auto waiting = std::make_shared<bool>(true);
    scheduler_.After(4'000, [this, client, t, waiting] {
      if (!*waiting) return;
      *waiting = false;
      Poll(client, t, 0);
    });
    if (!coordinator_->life().up() || scheduler_.Chance(network_.faults().drop)) return;
    v1::CommitRequest req;
    req.set_txn_id(t->txn_id);
    req.set_wait_for_completion(scheduler_.Chance(0.5));
    coordinator_->driver().Commit(
        req, coordinator_->life().BindReply<absl::StatusOr<v1::Outcome>>(
                 [this, client, t, waiting](absl::StatusOr<v1::Outcome> o) {
                   if (!*waiting) return;
                   *waiting = false;
                   if (o.ok()) Record(t, *o);
                   if (o.ok() && !t->answers.empty()) return Done(client, t);
                   Poll(client, t, 0);
                 }));
  }

  // The Commit's answer did not come (or did not decide): ask GetTransaction, for a while. A
  // transaction the coordinator no longer knows (NOT_FOUND after a restart) has an outcome the
  // client cannot learn; it gives up without an answer.
  void Poll(int client, const std::shared_ptr<Transfer>& t, int attempt) {
    if (coordinator_->life().up()) {
      absl::StatusOr<v1::Transaction> got = coordinator_->driver().GetTransaction(t->txn_id);
      if (got.ok()) {
        v1::Outcome o;
        o.set_txn_id(got->txn_id());
        o.set_state(got->state());
        Record(t, o);
        if (!t->answers.empty()) return Done(client, t);
      } else if (got.status().code() == absl::StatusCode::kNotFound) {
        return Done(client, t);
      }
    }
    if (attempt >= 100) return Done(client, t);
    scheduler_.After(scheduler_.Between(100, 300), [this, client, t, attempt] {
      Poll(client, t, attempt + 1);
    });
  }

  // --- checks ---
  void Violation(const std::string& what) {
    Note(absl::StrCat("VIOLATION: ", what));
    result_.violations.push_back(what);
  }

  void Check() {
    // Each gid's ending, by transaction.
    std::map<std::string, std::map<uint32_t, bool>> endings;
    // Transactions that committed a statement of each keyed transfer.
    std::map<std::string, std::set<std::string>> committed_by_key;
    int64_t total = 0;
    for (auto& agent : agents_) {
      SimDatabase& db = agent->database();
      total += db.TotalBalance();
      for (const auto& gid : db.prepared()) {
        Violation(absl::StrCat(db.name(), " still holds ", gid, " prepared"));
      }
      for (const auto& [gid, committed] : db.finished()) {
        auto name = common::ParseBranchGid(gid);
        if (!name) continue;
        endings[name->txn_id][name->branch] = committed;
        auto tag = db.tags().find(gid);
        if (committed && tag != db.tags().end()) {
          committed_by_key[tag->second.substr(4)].insert(name->txn_id);  // after " -- "
        }
      }
    }
    // Sagas: what each step and compensation did, by transaction.
    std::map<std::string, std::map<uint32_t, SimDatabase::SagaEffects>> sagas;
    for (auto& agent : agents_) {
      SimDatabase& db = agent->database();
      for (const auto& [gid, effects] : db.saga_effects()) {
        auto name = common::ParseBranchGid(gid);
        if (!name) continue;
        sagas[name->txn_id][name->branch] = effects;
        auto tag = db.tags().find(gid);
        if (effects.step_ran && tag != db.tags().end()) {
          committed_by_key[tag->second.substr(4)].insert(name->txn_id);
        }
      }
    }
    // Whatever a saga's outcome: a compensation undoes exactly what its step did here, and one
    // whose step never ran (a null compensation) moves nothing.
    for (const auto& [txn, steps] : sagas) {
      for (const auto& [step, e] : steps) {
        if (e.compensated && e.step_delta + e.compensation_delta != 0) {
          Violation(absl::StrCat(txn, ": the compensation of step ", step, " moved ",
                                 e.compensation_delta, " for a step that moved ", e.step_delta));
        }
        if (!e.compensated && e.compensation_delta != 0) {
          Violation(absl::StrCat(txn, ": step ", step, " has no compensation row but moved money"));
        }
      }
    }
    int64_t left_by_failed_compensations = 0;
    for (const auto& t : transfers_) {
      if (!t->saga) continue;
      std::set<std::string> counted;
      for (const Answer& a : t->answers) {
        const auto& steps = sagas[a.txn_id];
        for (int b = 0; b < t->request.branches_size(); ++b) {
          auto it = steps.find(b);
          const SimDatabase::SagaEffects e =
              it == steps.end() ? SimDatabase::SagaEffects{} : it->second;
          if (a.state == v1::TXN_STATE_COMMITTED && (!e.step_ran || e.compensated)) {
            Violation(absl::StrCat(t->key, ": saga told COMMITTED, but step ", b, " of ",
                                   a.txn_id, e.step_ran ? " was compensated" : " never ran"));
          }
          if (a.state == v1::TXN_STATE_ABORTED &&
              (e.step_ran && (!e.compensated || e.step_delta + e.compensation_delta != 0))) {
            Violation(absl::StrCat(t->key, ": saga told ABORTED, but step ", b, " of ", a.txn_id,
                                   " ran and was not undone"));
          }
          if (a.state == v1::TXN_STATE_FAILED_COMPENSATION && counted.insert(a.txn_id).second) {
            // Only the steps it could not compensate are left for the operator.
            for (const auto& [step, effects] : steps) {
              if (!effects.compensated) left_by_failed_compensations += effects.step_delta;
            }
          }
        }
        if (a.state == v1::TXN_STATE_FAILED_COMPENSATION) ++result_.failed_compensations;
      }
    }
    for (const auto& [txn, branches] : endings) {
      std::set<bool> ends;
      for (const auto& [branch, committed] : branches) ends.insert(committed);
      if (ends.size() > 1) Violation(absl::StrCat(txn, ": some branches committed, some not"));
    }
    // Money moves only by transfers, which are balanced, except what a saga whose compensation
    // failed (left for an operator, FAILED_COMPENSATION) left behind.
    const int64_t expected = kAccounts * kBalance * static_cast<int64_t>(agents_.size()) +
                             left_by_failed_compensations;
    if (total != expected) {
      Violation(absl::StrCat("the databases hold ", total, ", not ", expected));
    }
    for (const auto& t : transfers_) {
      if (!t->finished) Violation(absl::StrCat("transfer ", t->key, " never got an answer"));
      std::set<std::string> ids;
      for (const Answer& a : t->answers) {
        ids.insert(a.txn_id);
        const bool said_commit =
            a.state == v1::TXN_STATE_COMMITTED || a.state == v1::TXN_STATE_COMMITTING;
        auto it = endings.find(a.txn_id);
        for (int b = 0; b < t->request.branches_size() && !t->saga; ++b) {
          if (t->read_only.count(b) > 0) continue;
          const bool committed = it != endings.end() && it->second.count(b) > 0 &&
                                 it->second.at(b);
          if (said_commit && !committed) {
            Violation(absl::StrCat(t->key, ": told COMMITTED, but branch ", b, " of ", a.txn_id,
                                   " did not commit"));
          } else if (!said_commit && committed) {
            Violation(absl::StrCat(t->key, ": told ABORTED, but branch ", b, " of ", a.txn_id,
                                   " committed"));
          }
        }
        if (said_commit) {
          ++result_.committed;
          if (t->saga) ++result_.saga_committed;
          if (t->request.protocol() == v1::PROTOCOL_THREE_PHASE) ++result_.three_phase_committed;
          for (const auto& b : t->request.branches()) {
            if (b.participant() == kLastResource) {
              ++result_.last_resource_committed;
              break;
            }
          }
        } else {
          ++result_.aborted;
        }
      }
      // The key took effect at most once: one transaction committed for it, named by every answer
      // after the first COMMITTED. Within one coordinator life every answer names the same one;
      // an ABORTED transaction's key does not outlive a restart (presumed abort logs nothing of
      // it, README "idempotency keys"), so a retry after one may run the transfer anew.
      std::set<std::string> committed_ids;
      std::string committed_as;
      for (size_t i = 0; i < t->answers.size(); ++i) {
        const Answer& a = t->answers[i];
        const bool said_commit =
            a.state == v1::TXN_STATE_COMMITTED || a.state == v1::TXN_STATE_COMMITTING;
        if (said_commit) committed_ids.insert(a.txn_id);
        if (!committed_as.empty() && a.txn_id != committed_as) {
          Violation(absl::StrCat(t->key, ": answered ", a.txn_id, " after COMMITTED as ",
                                 committed_as));
        }
        if (said_commit && committed_as.empty()) committed_as = a.txn_id;
        if (i > 0 && a.txn_id != t->answers[i - 1].txn_id &&
            a.coordinator_crashes == t->answers[i - 1].coordinator_crashes) {
          Violation(absl::StrCat(t->key, ": one coordinator answered ", t->answers[i - 1].txn_id,
                                 " and then ", a.txn_id));
        }
      }
      for (const std::string& id : ids) {
        auto it = endings.find(id);
        if (it != endings.end() && !it->second.empty() && it->second.begin()->second) {
          committed_ids.insert(id);
        }
      }
      if (t->key.empty()) continue;  // interactive: one transaction, no key
      for (const std::string& id : committed_by_key[t->key]) committed_ids.insert(id);
      if (committed_ids.size() > 1) {
        Violation(absl::StrCat(t->key, ": one idempotency key committed ", committed_ids.size(),
                               " transactions"));
      }
    }
  }

  const SimOptions options_;
  SimScheduler scheduler_;
  const int64_t start_ms_ = scheduler_.now();
  SimNetwork network_;
  SimDirectory directory_;
  std::vector<std::unique_ptr<SimDecisionSource>> sources_;
  std::vector<std::unique_ptr<SimPeers>> peers_;
  std::vector<std::unique_ptr<SimAgent>> agents_;
  std::unique_ptr<SimCoordinator> coordinator_;
  std::vector<std::shared_ptr<Transfer>> transfers_;
  bool healed_ = false;
  SimResult result_;
};

}  // namespace

SimResult RunSimulation(const SimOptions& options) {
  std::string log;
  common::SetLogSink([&log](common::Severity, absl::string_view m) {
    absl::StrAppend(&log, m, "\n");
  });
  SimResult result;
  {
    Run run(options);
    result = run.Go();
  }
  common::SetLogSink(nullptr);
  result.log = std::move(log);
  return result;
}

}  // namespace txn::sim
