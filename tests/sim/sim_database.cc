#include "tests/sim/sim_database.h"

#include <cstdlib>
#include <utility>

#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace txn::sim {

#define TXN_SIM_RETURN_IF_CLOSED() \
  if (!open_) return absl::UnavailableError("the simulated database lost the connection")

// One open transaction. After a crash of its database (or once finished) every call fails as a
// lost connection would.
class SimSession final : public agent::BranchSession, public agent::SagaSession {
 public:
  agent::SagaSession* saga() override { return this; }
  SimSession(SimDatabase* db, std::string gid, uint64_t number)
      : db_(db), gid_(std::move(gid)), number_(number), token_(absl::StrCat("session ", number)) {
    db_->open_[number_] = this;
  }
  ~SimSession() override {
    if (open_) (void)RollbackLocal();
  }

  absl::StatusOr<v1::ExecuteResult> Execute(const v1::Operation& op) override {
    TXN_SIM_RETURN_IF_CLOSED();
    if (!op.has_sql() || op.sql().params_size() != 2) {
      return absl::InvalidArgumentError("the simulated database runs only its transfer statement");
    }
    const std::string& text = op.sql().text();
    bool guarded = true;
    std::string rest;
    if (absl::StartsWith(text, kTransferSql)) {
      rest = text.substr(std::strlen(kTransferSql));
    } else if (absl::StartsWith(text, kAdjustSql)) {
      guarded = false;
      rest = text.substr(std::strlen(kAdjustSql));
    } else {
      return absl::InvalidArgumentError("the simulated database runs only its transfer statement");
    }
    if (!rest.empty() && !absl::StartsWith(rest, " -- ")) {
      return absl::InvalidArgumentError("the simulated database runs only its transfer statement");
    }
    if (!rest.empty()) db_->tags_[gid_] = rest;
    int64_t id = 0, delta = 0;
    if (!absl::SimpleAtoi(op.sql().params(0), &id) || !absl::SimpleAtoi(op.sql().params(1), &delta) ||
        db_->balances_.count(id) == 0) {
      return absl::InvalidArgumentError("bad transfer parameters");
    }
    auto [it, locked_now] = db_->lock_holder_.emplace(id, token_);
    if (!locked_now && it->second != token_) {
      return absl::AbortedError(absl::StrCat("row ", id, " is locked by ", it->second));
    }
    int64_t balance = db_->balances_[id];
    for (const auto& w : writes_) {
      if (w.id == id) balance += w.delta;
    }
    v1::ExecuteResult result;
    if (!guarded || balance + delta >= 0) {
      writes_.push_back({id, delta});
      result.set_rows_affected(1);
    } else if (locked_now) {
      // Nothing written: the row need not stay locked (an UPDATE matching no row locks none).
      bool row_written = false;
      for (const auto& w : writes_) row_written |= w.id == id;
      if (!row_written) db_->lock_holder_.erase(id);
    }
    return result;
  }

  absl::StatusOr<agent::PrepareResult> Prepare(const std::string& gid) override {
    TXN_SIM_RETURN_IF_CLOSED();
    Close();
    agent::PrepareResult r;
    if (writes_.empty()) {
      r.vote = agent::LocalVote::kReadOnly;
      return r;
    }
    if (db_->scheduler_->Chance(db_->flaky_chance_)) {
      db_->Unlock(writes_);
      db_->finished_[gid] = false;
      r.vote = agent::LocalVote::kNo;
      r.reason = "the simulated database refused to prepare";
      return r;
    }
    r.vote = agent::LocalVote::kYes;
    r.native_id = absl::StrCat(db_->next_native_++);
    for (const auto& w : writes_) db_->lock_holder_[w.id] = gid;
    db_->prepared_[gid] = SimDatabase::Prepared{writes_, r.native_id};
    return r;
  }

  absl::Status CommitLocal(const std::string& gid) override {
    TXN_SIM_RETURN_IF_CLOSED();
    Close();
    db_->Apply(writes_);
    db_->one_phase_markers_.insert(gid);
    db_->finished_[gid] = true;
    if (db_->scheduler_->Chance(db_->flaky_chance_)) {
      return absl::UnavailableError("the simulated connection was lost during COMMIT");
    }
    return absl::OkStatus();
  }

  absl::Status RollbackLocal() override {
    TXN_SIM_RETURN_IF_CLOSED();
    Close();
    db_->Unlock(writes_);
    if (!writes_.empty() && barrier_rows_.empty()) db_->finished_[gid_] = false;
    return absl::OkStatus();
  }

  // --- saga steps ---
  absl::StatusOr<bool> InsertBarrier(const std::string& gid, const std::string& op,
                                     const std::string& origin) override {
    TXN_SIM_RETURN_IF_CLOSED();
    const auto row = std::make_pair(gid, op);
    if (db_->barrier_.count(row) > 0) return false;
    for (const auto& [mine, o] : barrier_rows_) {
      if (mine == row) return false;
    }
    auto [it, locked_now] = db_->barrier_locks_.emplace(row, number_);
    if (!locked_now && it->second != number_) {
      return absl::UnavailableError("another transaction is inserting the same barrier row");
    }
    barrier_rows_.push_back({row, origin});
    return true;
  }

  absl::StatusOr<std::string> BarrierOrigin(const std::string& gid,
                                            const std::string& op) override {
    TXN_SIM_RETURN_IF_CLOSED();
    auto it = db_->barrier_.find(std::make_pair(gid, op));
    return it == db_->barrier_.end() ? std::string() : it->second;
  }

  absl::Status Commit() override {
    TXN_SIM_RETURN_IF_CLOSED();
    Close();
    db_->Apply(writes_);
    bool compensation = false;
    for (const auto& [row, origin] : barrier_rows_) {
      db_->barrier_[row] = origin;
      compensation |= row.second == "compensation";
    }
    SimDatabase::SagaEffects& effects = db_->saga_effects_[gid_];
    int64_t moved = 0;
    for (const auto& w : writes_) moved += w.delta;
    for (const auto& [row, origin] : barrier_rows_) {
      if (row.second == "action" && origin == "action") effects.step_ran = true;
      if (row.second == "compensation") effects.compensated = true;
    }
    (compensation ? effects.compensation_delta : effects.step_delta) += moved;
    if (db_->scheduler_->Chance(db_->flaky_chance_)) {
      return absl::UnavailableError("the simulated connection was lost during COMMIT");
    }
    return absl::OkStatus();
  }

  // The database lost this session (it crashed): its transaction is gone.
  void Lose() {
    Close();
    db_->Unlock(writes_);
    if (!writes_.empty() && barrier_rows_.empty()) db_->finished_[gid_] = false;
  }

 private:
  void Close() {
    open_ = false;
    db_->open_.erase(number_);
    for (const auto& [row, origin] : barrier_rows_) db_->barrier_locks_.erase(row);
  }

  SimDatabase* const db_;
  const std::string gid_;
  const uint64_t number_;
  const std::string token_;
  bool open_ = true;
  std::vector<SimDatabase::Write> writes_;
  std::vector<std::pair<std::pair<std::string, std::string>, std::string>> barrier_rows_;
};
#undef TXN_SIM_RETURN_IF_CLOSED

SimDatabase::SimDatabase(std::string name, SimScheduler* scheduler, int accounts, int64_t balance,
                         double flaky_chance, bool can_prepare)
    : name_(std::move(name)),
      scheduler_(scheduler),
      flaky_chance_(flaky_chance),
      can_prepare_(can_prepare) {
  for (int id = 1; id <= accounts; ++id) balances_[id] = balance;
}

SimDatabase::~SimDatabase() { Crash(); }

absl::StatusOr<std::unique_ptr<agent::BranchSession>> SimDatabase::Begin(const std::string& gid) {
  return std::make_unique<SimSession>(this, gid, next_session_++);
}

void SimDatabase::Apply(const std::vector<Write>& writes) {
  for (const auto& w : writes) balances_[w.id] += w.delta;
  Unlock(writes);
}

void SimDatabase::Unlock(const std::vector<Write>& writes) {
  for (const auto& w : writes) lock_holder_.erase(w.id);
}

agent::FinishResult SimDatabase::FinishPrepared(const std::string& gid,
                                                const std::string& native_id, bool commit) {
  auto it = prepared_.find(gid);
  if (it == prepared_.end()) {
    // Like PostgreSQL: only the native id (the xid) can tell what became of it.
    auto known = native_outcomes_.find(native_id);
    if (native_id.empty() || known == native_outcomes_.end()) return {agent::FinishedAs::kUnknown};
    return {known->second ? agent::FinishedAs::kCommitted : agent::FinishedAs::kAborted};
  }
  if (commit) {
    Apply(it->second.writes);
  } else {
    Unlock(it->second.writes);
  }
  native_outcomes_[it->second.native_id] = commit;
  finished_[gid] = commit;
  prepared_.erase(it);
  return {commit ? agent::FinishedAs::kCommitted : agent::FinishedAs::kAborted};
}

absl::StatusOr<agent::FinishResult> SimDatabase::CommitPrepared(const std::string& gid,
                                                                const std::string& native_id) {
  return FinishPrepared(gid, native_id, /*commit=*/true);
}

absl::StatusOr<agent::FinishResult> SimDatabase::RollbackPrepared(const std::string& gid,
                                                                  const std::string& native_id) {
  return FinishPrepared(gid, native_id, /*commit=*/false);
}

absl::StatusOr<bool> SimDatabase::IsPrepared(const std::string& gid) {
  return prepared_.count(gid) > 0;
}

absl::StatusOr<std::vector<std::string>> SimDatabase::ListPrepared() { return prepared(); }

absl::StatusOr<agent::FinishedAs> SimDatabase::ProveOnePhase(const std::string& gid) {
  return one_phase_markers_.count(gid) > 0 ? agent::FinishedAs::kCommitted
                                           : agent::FinishedAs::kAborted;
}

void SimDatabase::Crash() {
  while (!open_.empty()) open_.begin()->second->Lose();
}

int64_t SimDatabase::TotalBalance() const {
  int64_t total = 0;
  for (const auto& [id, bal] : balances_) total += bal;
  return total;
}

std::vector<std::string> SimDatabase::prepared() const {
  std::vector<std::string> gids;
  for (const auto& [gid, p] : prepared_) gids.push_back(gid);
  return gids;
}

absl::StatusOr<std::optional<agent::TpcRow>> SimDatabase::LoadTpcRecord(const std::string& gid) {
  auto it = tpc_rows_.find(gid);
  if (it == tpc_rows_.end()) return std::optional<agent::TpcRow>();
  return std::optional<agent::TpcRow>(it->second);
}

absl::Status SimDatabase::StoreTpcRecord(const std::string& gid, const agent::TpcRow& row) {
  tpc_rows_[gid] = row;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> SimDatabase::ListUndecidedTpc() {
  std::vector<std::string> gids;
  for (const auto& [gid, row] : tpc_rows_) {
    if (row.state == "W" || row.state == "PC" || row.state == "PA") gids.push_back(gid);
  }
  return gids;
}

}  // namespace txn::sim
