#include "coordinator/core/two_phase.h"

#include <algorithm>
#include <type_traits>

#include "absl/strings/str_cat.h"

namespace txn::core {
namespace {

using Effects = std::vector<TwoPhaseEffect>;

bool IsFinished(BranchState s) {
  return s == BranchState::kCommitted || s == BranchState::kAborted ||
         s == BranchState::kReadOnly || s == BranchState::kHeuristic || s == BranchState::kInDoubt;
}

bool ValidBranch(const TwoPhaseTxn& txn, uint32_t b) { return b < txn.branches.size(); }

// The branch committed in one phase: the only one, or the last resource.
uint32_t OnePhaseBranch(const TwoPhaseTxn& txn) { return txn.last_resource.value_or(0); }

bool IsLastResource(const TwoPhaseTxn& txn, uint32_t b) {
  return txn.last_resource.has_value() && *txn.last_resource == b;
}

bool IsHeuristicResource(const TwoPhaseTxn& txn, uint32_t b) {
  return std::find(txn.heuristic_resources.begin(), txn.heuristic_resources.end(), b) !=
         txn.heuristic_resources.end();
}

void Reply(TwoPhaseTxn& txn, Effects& out) {
  if (txn.client_answered) return;
  txn.client_answered = true;
  out.push_back(ReplyToClient{});
}

// Moves to ABORTING and rolls back every branch that may hold work. No log write: presumed abort.
void StartAbort(TwoPhaseTxn& txn, std::string reason, Effects& out) {
  txn.state = TxnState::kAborting;
  txn.reason = std::move(reason);
  Reply(txn, out);
  bool any = false;
  for (uint32_t b = 0; b < txn.branches.size(); ++b) {
    BranchStatus& br = txn.branches[b];
    if (IsFinished(br.state)) continue;
    br.attempts = 1;
    out.push_back(SendRollback{b, 0});
    any = true;
  }
  if (!any) {
    txn.state = TxnState::kAborted;
    out.push_back(Forget{});
  }
}

void FinishCommitIfDone(TwoPhaseTxn& txn, Effects& out) {
  bool mixed = false;
  for (const auto& br : txn.branches) {
    // PREPARED: commit not acknowledged yet; PREPARING: a one-phase commit still under way.
    if (br.state == BranchState::kPrepared || br.state == BranchState::kPreparing) return;
    if (br.state == BranchState::kHeuristic) mixed = true;
  }
  txn.state = mixed ? TxnState::kHeuristicMixed : TxnState::kCommitted;
  out.push_back(LogCompletion{});
  Reply(txn, out);
  out.push_back(Forget{});
}

void FinishAbortIfDone(TwoPhaseTxn& txn, Effects& out) {
  bool mixed = false;
  for (const auto& br : txn.branches) {
    if (!IsFinished(br.state)) return;
    if (br.state == BranchState::kHeuristic) mixed = true;
  }
  txn.state = mixed ? TxnState::kHeuristicMixed : TxnState::kAborted;
  if (mixed) out.push_back(LogCompletion{});
  out.push_back(Forget{});
}

void DecideIfAllVoted(TwoPhaseTxn& txn, Effects& out);

void StartOnePhase(TwoPhaseTxn& txn, Effects& out) {
  const uint32_t b = OnePhaseBranch(txn);
  txn.one_phase = true;
  txn.state = TxnState::kCommitting;
  txn.branches[b].state = BranchState::kPreparing;
  txn.branches[b].attempts = 1;
  out.push_back(SendCommitOnePhase{b, 0});
}

void OnCommitRequested(TwoPhaseTxn& txn, const CommitRequested& e, Effects& out) {
  if (txn.state != TxnState::kActive) return;
  txn.wait_for_completion = e.wait_for_completion;
  if (txn.branches.empty()) {
    txn.state = TxnState::kCommitted;
    Reply(txn, out);
    out.push_back(Forget{});
    return;
  }
  // A keyed transaction is never committed in one phase without a record (see TwoPhaseTxn::keyed).
  if (txn.branches.size() == 1 && !txn.keyed && (txn.one_phase_allowed || txn.last_resource)) {
    txn.last_resource.reset();
    StartOnePhase(txn, out);
    return;
  }
  txn.state = TxnState::kPreparing;
  for (uint32_t b = 0; b < txn.branches.size(); ++b) {
    if (IsLastResource(txn, b) || IsHeuristicResource(txn, b)) continue;  // one phase, later
    txn.branches[b].state = BranchState::kPreparing;
    out.push_back(SendPrepare{b});
  }
  if (out.empty()) {  // every branch commits in one phase (allow_heuristic): nothing to vote
    DecideIfAllVoted(txn, out);
    return;
  }
  out.push_back(StartPrepareTimer{});
}

void OnRollbackRequested(TwoPhaseTxn& txn, const RollbackRequested& e, Effects& out) {
  if (txn.state != TxnState::kActive && txn.state != TxnState::kPreparing) return;
  StartAbort(txn, e.reason.empty() ? "rolled back by the client" : e.reason, out);
}

// Once no branch is still voting: log and commit (or finish read-only transactions).
void DecideIfAllVoted(TwoPhaseTxn& txn, Effects& out) {
  bool any_yes = false;
  for (const auto& other : txn.branches) {
    if (other.state == BranchState::kPreparing) return;  // still waiting
    if (other.state == BranchState::kPrepared) any_yes = true;
  }
  txn.state = TxnState::kCommitting;
  if (txn.last_resource) {
    if (!any_yes && txn.heuristic_resources.empty() && !txn.keyed) {
      // Only the last resource changes anything: a plain one-phase commit (not for a keyed
      // transaction, see TwoPhaseTxn::keyed).
      StartOnePhase(txn, out);
      return;
    }
    txn.committing_last = true;
    out.push_back(LogDecision{Decision::kNone, /*committing_last=*/true});
    return;
  }
  if (!any_yes) {  // everyone only read: nothing to commit, nothing to log
    txn.state = TxnState::kCommitted;
    Reply(txn, out);
    out.push_back(Forget{});
    return;
  }
  out.push_back(LogDecision{});
}

void OnVote(TwoPhaseTxn& txn, uint32_t b, Vote vote, const std::string& reason,
            const std::string& native_id, Effects& out) {
  if (txn.state != TxnState::kPreparing || !ValidBranch(txn, b)) return;
  BranchStatus& br = txn.branches[b];
  if (br.state != BranchState::kPreparing) return;  // duplicate
  br.reason = reason;
  switch (vote) {
    case Vote::kNo:
      br.state = BranchState::kAborted;  // a NO voter has rolled itself back
      StartAbort(txn, absl::StrCat("participant ", br.participant, " voted NO: ", reason), out);
      return;
    case Vote::kReadOnly:
      br.state = BranchState::kReadOnly;
      break;
    case Vote::kYes:
      br.state = BranchState::kPrepared;
      br.native_id = native_id;
      break;
  }
  DecideIfAllVoted(txn, out);
}

void OnDecisionLogged(TwoPhaseTxn& txn, const DecisionLogged& e, Effects& out) {
  if (e.committing_last) {
    if (txn.state != TxnState::kCommitting || !txn.committing_last || !txn.last_resource) return;
    BranchStatus& last = txn.branches[*txn.last_resource];
    if (last.state != BranchState::kActive) return;  // duplicate
    last.state = BranchState::kPreparing;
    last.attempts = 1;
    out.push_back(SendCommitOnePhase{*txn.last_resource, 0});
    return;
  }
  if (e.decision == Decision::kAbort) {
    if (txn.abort_pending) {  // the ABORT over a failed committing-last write is durable
      txn.abort_pending = false;
      StartAbort(txn, txn.reason, out);
      return;
    }
    // An operator's ABORT of an IN_DOUBT transaction is durable: now roll back. (The ABORT after
    // a last resource aborted was already acted on.)
    if (txn.resolution_pending &&
        (txn.state == TxnState::kInDoubt || txn.state == TxnState::kCommitting)) {
      txn.resolution_pending = false;
      StartAbort(txn, txn.reason, out);
    }
    return;
  }
  if (txn.state == TxnState::kInDoubt && txn.resolution_pending) {
    txn.resolution_pending = false;
    txn.state = TxnState::kCommitting;  // an operator's COMMIT, now durable
  }
  if (txn.state != TxnState::kCommitting || txn.one_phase || txn.decision_logged) return;
  txn.decision_logged = true;
  if (!txn.wait_for_completion) Reply(txn, out);
  for (uint32_t b = 0; b < txn.branches.size(); ++b) {
    if (txn.branches[b].state != BranchState::kPrepared) continue;
    txn.branches[b].attempts = 1;
    out.push_back(SendCommit{b, 0});
  }
  for (uint32_t b : txn.heuristic_resources) {
    if (txn.branches[b].state != BranchState::kActive) continue;
    txn.branches[b].state = BranchState::kPreparing;
    txn.branches[b].attempts = 1;
    out.push_back(SendCommitOnePhase{b, 0});
  }
  FinishCommitIfDone(txn, out);
}

// A heuristic resource answered after the decision to COMMIT.
void OnHeuristicFinished(TwoPhaseTxn& txn, uint32_t b, const OnePhaseFinished& e, Effects& out) {
  BranchStatus& br = txn.branches[b];
  if (br.state != BranchState::kPreparing) return;  // duplicate
  switch (e.result) {
    case BranchResult::kCommitted:
      br.state = BranchState::kCommitted;
      br.reason.clear();
      break;
    case BranchResult::kAborted:
      br.state = BranchState::kHeuristic;
      br.reason =
          absl::StrCat("aborted after the decision to COMMIT (allow_heuristic): ", e.reason);
      break;
    case BranchResult::kUnknown:
      br.reason = e.reason;
      out.push_back(SendCommitOnePhase{b, br.attempts++});
      return;
  }
  FinishCommitIfDone(txn, out);
}

void OnCommitAcked(TwoPhaseTxn& txn, const CommitAcked& e, Effects& out) {
  if (txn.state != TxnState::kCommitting || !txn.decision_logged || !ValidBranch(txn, e.branch)) {
    return;
  }
  BranchStatus& br = txn.branches[e.branch];
  if (br.state != BranchState::kPrepared) return;
  switch (e.result) {
    case BranchResult::kCommitted:
      br.state = BranchState::kCommitted;
      break;
    case BranchResult::kAborted:
      br.state = BranchState::kHeuristic;
      br.reason = absl::StrCat("branch rolled back although the decision was COMMIT: ", e.reason);
      break;
    case BranchResult::kUnknown:
      br.state = BranchState::kHeuristic;
      br.reason = absl::StrCat("branch outcome cannot be proven: ", e.reason);
      break;
  }
  FinishCommitIfDone(txn, out);
}

void OnCommitFailed(TwoPhaseTxn& txn, const CommitFailed& e, Effects& out) {
  if (txn.state != TxnState::kCommitting || !txn.decision_logged || !ValidBranch(txn, e.branch)) {
    return;
  }
  BranchStatus& br = txn.branches[e.branch];
  if (br.state != BranchState::kPrepared) return;
  br.reason = e.reason;
  out.push_back(SendCommit{e.branch, br.attempts++});
}

void OnRollbackAcked(TwoPhaseTxn& txn, const RollbackAcked& e, Effects& out) {
  if (txn.state != TxnState::kAborting || !ValidBranch(txn, e.branch)) return;
  BranchStatus& br = txn.branches[e.branch];
  if (IsFinished(br.state)) return;
  if (e.result == BranchResult::kCommitted) {
    br.state = BranchState::kHeuristic;
    br.reason = absl::StrCat("branch committed although the decision was ABORT: ", e.reason);
  } else {
    br.state = BranchState::kAborted;
  }
  FinishAbortIfDone(txn, out);
}

void OnRollbackFailed(TwoPhaseTxn& txn, const RollbackFailed& e, Effects& out) {
  if (txn.state != TxnState::kAborting || !ValidBranch(txn, e.branch)) return;
  BranchStatus& br = txn.branches[e.branch];
  if (IsFinished(br.state)) return;
  br.reason = e.reason;
  if (br.attempts >= kMaxRollbackAttempts) {
    // Left to the agent: its reconciliation asks GetDecision and gets ABORT.
    br.state = BranchState::kAborted;
    br.reason = absl::StrCat("rollback not acknowledged, left to the agent: ", e.reason);
    FinishAbortIfDone(txn, out);
    return;
  }
  out.push_back(SendRollback{e.branch, br.attempts++});
}

// The last resource answered while committing_last: its commit is the decision.
void OnLastResourceFinished(TwoPhaseTxn& txn, const OnePhaseFinished& e, Effects& out) {
  BranchStatus& last = txn.branches[*txn.last_resource];
  if (last.state != BranchState::kPreparing) return;  // duplicate
  switch (e.result) {
    case BranchResult::kCommitted:
      last.state = BranchState::kCommitted;
      last.reason.clear();
      out.push_back(LogDecision{Decision::kCommit, false});
      return;
    case BranchResult::kAborted:
      last.state = BranchState::kAborted;
      last.reason = e.reason;
      out.push_back(LogDecision{Decision::kAbort, false});
      StartAbort(txn, absl::StrCat("participant ", last.participant, " aborted: ", e.reason), out);
      return;
    case BranchResult::kUnknown:
      last.reason = e.reason;
      if (last.attempts >= kMaxOnePhaseQueries && !txn.client_answered) {
        txn.reason = absl::StrCat("outcome of the last resource ", last.participant,
                                  " is not known yet: ", e.reason);
        Reply(txn, out);
      }
      out.push_back(SendCommitOnePhase{*txn.last_resource, last.attempts++});
      return;
  }
}

// A one-phase commit's answer was lost or did not tell: ask again (the agent answers a repeated
// CommitOnePhase from its branch table or the branch's commit marker), forever, since only the
// database knows. After kMaxOnePhaseQueries the client hears IN_DOUBT; the transaction stays
// COMMITTING (shown IN_DOUBT) until the answer comes.
void QueryOnePhaseAgain(TwoPhaseTxn& txn, const std::string& reason, Effects& out) {
  BranchStatus& br = txn.branches[OnePhaseBranch(txn)];
  br.reason = reason;
  if (br.attempts >= kMaxOnePhaseQueries && !txn.client_answered) {
    txn.reason = absl::StrCat("outcome of the one-phase commit on ", br.participant,
                              " is not known yet: ", reason);
    Reply(txn, out);
  }
  out.push_back(SendCommitOnePhase{OnePhaseBranch(txn), br.attempts++});
}

void OnOnePhaseFinished(TwoPhaseTxn& txn, const OnePhaseFinished& e, Effects& out) {
  if (e.branch && IsHeuristicResource(txn, *e.branch)) {
    if (txn.state == TxnState::kCommitting && txn.decision_logged) {
      OnHeuristicFinished(txn, *e.branch, e, out);
    }
    return;
  }
  if (txn.committing_last && txn.state == TxnState::kCommitting) {
    OnLastResourceFinished(txn, e, out);
    return;
  }
  if (!txn.one_phase || txn.state != TxnState::kCommitting) return;
  BranchStatus& br = txn.branches[OnePhaseBranch(txn)];
  br.reason = e.reason;
  switch (e.result) {
    case BranchResult::kCommitted:
      br.state = BranchState::kCommitted;
      txn.state = TxnState::kCommitted;
      break;
    case BranchResult::kAborted:
      br.state = BranchState::kAborted;
      txn.state = TxnState::kAborted;
      txn.reason = absl::StrCat("participant ", br.participant, " aborted: ", e.reason);
      break;
    case BranchResult::kUnknown:
      QueryOnePhaseAgain(txn, e.reason, out);
      return;
  }
  Reply(txn, out);
  out.push_back(Forget{});
}

void OnOnePhaseFailed(TwoPhaseTxn& txn, const OnePhaseFailed& e, Effects& out) {
  if (e.branch && IsHeuristicResource(txn, *e.branch)) {
    OnOnePhaseFinished(txn, OnePhaseFinished{BranchResult::kUnknown, e.reason, e.branch}, out);
    return;
  }
  if (txn.committing_last && txn.state == TxnState::kCommitting) {
    OnLastResourceFinished(txn, OnePhaseFinished{BranchResult::kUnknown, e.reason}, out);
    return;
  }
  if (!txn.one_phase || txn.state != TxnState::kCommitting) return;
  QueryOnePhaseAgain(txn, e.reason, out);
}

void OnOperatorResolved(TwoPhaseTxn& txn, const OperatorResolved& e, Effects& out) {
  if (CheckResolve(txn, e.decision)) return;
  const bool commit = e.decision == Decision::kCommit;
  switch (txn.state) {
    case TxnState::kActive:
    case TxnState::kPreparing:
      StartAbort(txn, "aborted by an operator", out);
      return;
    case TxnState::kInDoubt:
      txn.reason = commit ? "COMMIT chosen by an operator after the decision write failed"
                          : "ABORT chosen by an operator after the decision write failed";
      txn.resolution_pending = true;
      out.push_back(LogDecision{e.decision, false, /*sync_abort=*/true});
      return;
    case TxnState::kCommitting:
      if (txn.committing_last && !txn.decision_logged) {
        BranchStatus& last = txn.branches[*txn.last_resource];
        if (last.state != BranchState::kPreparing) {  // not asked yet: ask now, do not guess
          return;
        }
        if (commit) {
          OnLastResourceFinished(
              txn, OnePhaseFinished{BranchResult::kCommitted, "outcome given by an operator"}, out);
          return;
        }
        // The ABORT must be durable before the others roll back: if it were lost, a restart
        // would ask the last resource again, and it might say otherwise.
        last.state = BranchState::kAborted;
        last.reason = "outcome given by an operator: aborted";
        txn.reason = absl::StrCat("the outcome of the last resource ", last.participant,
                                  " was given as ABORT by an operator");
        txn.resolution_pending = true;
        out.push_back(LogDecision{Decision::kAbort, false, /*sync_abort=*/true});
        return;
      }
      for (uint32_t b = 0; b < txn.branches.size(); ++b) {
        BranchStatus& br = txn.branches[b];
        if (br.state != BranchState::kPrepared) continue;
        br.attempts = 1;
        out.push_back(SendCommit{b, 0});
      }
      return;
    case TxnState::kAborting:
      for (uint32_t b = 0; b < txn.branches.size(); ++b) {
        BranchStatus& br = txn.branches[b];
        if (IsFinished(br.state)) continue;
        br.attempts = 1;
        out.push_back(SendRollback{b, 0});
      }
      return;
    default:
      return;
  }
}

}  // namespace

std::optional<std::string> CheckResolve(const TwoPhaseTxn& txn, Decision decision) {
  if (decision != Decision::kCommit && decision != Decision::kAbort) {
    return std::string("the decision must be COMMIT or ABORT");
  }
  const bool commit = decision == Decision::kCommit;
  switch (txn.state) {
    case TxnState::kActive:
    case TxnState::kPreparing:
      if (commit) {
        return std::string(
            "it is not decided and not every branch voted YES; only ABORT is possible");
      }
      return std::nullopt;
    case TxnState::kInDoubt:
      if (txn.resolution_pending) return std::string("an operator's decision is being written");
      if (txn.one_phase) {
        return std::string(
            "its single branch committed in one phase with an unknown result; check the "
            "participant's database (there is nothing the coordinator can send)");
      }
      return std::nullopt;
    case TxnState::kCommitting:
      if (txn.one_phase) return std::string("its one-phase commit is still under way");
      if (txn.committing_last && !txn.decision_logged) {
        if (txn.resolution_pending) return std::string("an operator's decision is being written");
        if (txn.branches[*txn.last_resource].state != BranchState::kPreparing) {
          return std::string("the last resource has not been asked to commit yet");
        }
        return std::nullopt;
      }
      if (!txn.decision_logged) return std::string("its COMMIT decision is being written");
      if (!commit) return std::string("COMMIT is logged; a logged decision is never changed");
      return std::nullopt;
    case TxnState::kAborting:
      if (commit) return std::string("it is aborting; a decision is never changed");
      return std::nullopt;
    default:
      return absl::StrCat("it is already ", TxnStateName(txn.state));
  }
}

std::vector<TwoPhaseEffect> Step(TwoPhaseTxn& txn, const TwoPhaseEvent& event) {
  Effects out;
  std::visit(
      [&](const auto& e) {
        using E = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<E, CommitRequested>) {
          OnCommitRequested(txn, e, out);
        } else if constexpr (std::is_same_v<E, RollbackRequested>) {
          OnRollbackRequested(txn, e, out);
        } else if constexpr (std::is_same_v<E, VoteReceived>) {
          OnVote(txn, e.branch, e.vote, e.reason, e.native_id, out);
        } else if constexpr (std::is_same_v<E, PrepareFailed>) {
          OnVote(txn, e.branch, Vote::kNo, e.reason, "", out);
        } else if constexpr (std::is_same_v<E, PrepareTimedOut>) {
          if (txn.state != TxnState::kPreparing) return;
          std::string waiting;
          for (const auto& br : txn.branches) {
            if (br.state == BranchState::kPreparing) {
              absl::StrAppend(&waiting, waiting.empty() ? "" : ", ", br.participant);
            }
          }
          StartAbort(txn, absl::StrCat("prepare timed out waiting for ", waiting), out);
        } else if constexpr (std::is_same_v<E, DecisionLogged>) {
          OnDecisionLogged(txn, e, out);
        } else if constexpr (std::is_same_v<E, DecisionLogFailed>) {
          if (e.committing_last) {
            // The last resource was never asked to commit, so the transaction aborts. But the
            // record may have landed all the same (a disk that reports an error after writing),
            // and a restart that found it would ask the last resource, whose open branch (an
            // interactive transaction's) would then commit, after the others rolled back: the
            // ABORT is written over it, synced, before anything acts on it (found by the
            // simulation).
            if (txn.state == TxnState::kCommitting && txn.committing_last && !txn.abort_pending &&
                txn.branches[*txn.last_resource].state == BranchState::kActive) {
              txn.reason = absl::StrCat("decision write failed: ", e.reason);
              txn.abort_pending = true;
              out.push_back(LogDecision{Decision::kAbort, false, /*sync_abort=*/true});
            }
            return;
          }
          if (txn.abort_pending) {  // that ABORT could not be written either: again, later
            ++txn.abort_log_failures;
            Reply(txn, out);  // IN_DOUBT: nothing is durable yet
            out.push_back(
                LogDecision{Decision::kAbort, false, /*sync_abort=*/true, txn.abort_log_failures});
            return;
          }
          if (txn.resolution_pending) {  // an operator's decision could not be written
            txn.resolution_pending = false;
            if (txn.committing_last && txn.last_resource) {
              txn.branches[*txn.last_resource].state = BranchState::kPreparing;
            }
            return;
          }
          if (txn.state != TxnState::kCommitting || txn.one_phase || txn.decision_logged) return;
          // The record may or may not be on disk: only a restart reading the log can tell.
          txn.state = TxnState::kInDoubt;
          txn.reason = absl::StrCat("decision write failed: ", e.reason);
          Reply(txn, out);
        } else if constexpr (std::is_same_v<E, CommitAcked>) {
          OnCommitAcked(txn, e, out);
        } else if constexpr (std::is_same_v<E, CommitFailed>) {
          OnCommitFailed(txn, e, out);
        } else if constexpr (std::is_same_v<E, RollbackAcked>) {
          OnRollbackAcked(txn, e, out);
        } else if constexpr (std::is_same_v<E, RollbackFailed>) {
          OnRollbackFailed(txn, e, out);
        } else if constexpr (std::is_same_v<E, OnePhaseFinished>) {
          OnOnePhaseFinished(txn, e, out);
        } else if constexpr (std::is_same_v<E, OnePhaseFailed>) {
          OnOnePhaseFailed(txn, e, out);
        } else if constexpr (std::is_same_v<E, OperatorResolved>) {
          OnOperatorResolved(txn, e, out);
        }
      },
      event);
  return out;
}

std::vector<TwoPhaseEffect> ResumeCommit(TwoPhaseTxn& txn) {
  Effects out;
  txn.state = TxnState::kCommitting;
  txn.one_phase = false;
  txn.client_answered = true;  // nobody is waiting after a restart
  txn.decision_logged = true;
  for (uint32_t b = 0; b < txn.branches.size(); ++b) {
    if (txn.branches[b].state != BranchState::kPrepared) continue;
    txn.branches[b].attempts = 1;
    out.push_back(SendCommit{b, 0});
  }
  for (uint32_t b : txn.heuristic_resources) {
    BranchStatus& br = txn.branches[b];
    if (br.state != BranchState::kActive && br.state != BranchState::kPreparing) continue;
    br.state = BranchState::kPreparing;
    br.attempts = 2;
    out.push_back(SendCommitOnePhase{b, 1});  // a query: its first attempt may have run
  }
  FinishCommitIfDone(txn, out);
  return out;
}

std::vector<TwoPhaseEffect> ResumeCommittingLast(TwoPhaseTxn& txn) {
  Effects out;
  txn.state = TxnState::kCommitting;
  txn.one_phase = false;
  txn.committing_last = true;
  txn.client_answered = true;
  BranchStatus& last = txn.branches[*txn.last_resource];
  last.state = BranchState::kPreparing;
  last.attempts = 2;
  out.push_back(SendCommitOnePhase{*txn.last_resource, 1});  // a query: attempt > 0
  return out;
}

TxnState OutcomeState(const TwoPhaseTxn& txn) {
  return ReportedState(txn.state, txn.decision_logged);
}

Decision DecisionOf(const TwoPhaseTxn& txn) {
  switch (txn.state) {
    case TxnState::kCommitting:
      return txn.decision_logged ? Decision::kCommit : Decision::kNone;
    case TxnState::kCommitted:
      return Decision::kCommit;
    case TxnState::kAborting:
    case TxnState::kAborted:
      return Decision::kAbort;
    case TxnState::kHeuristicMixed:
      return txn.decision_logged ? Decision::kCommit : Decision::kAbort;
    default:
      return Decision::kNone;
  }
}

}  // namespace txn::core
