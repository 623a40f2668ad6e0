#include "coordinator/core/three_phase.h"

#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"

namespace txn::core {
namespace {

using Effects = std::vector<ThreePhaseEffect>;

bool ValidBranch(const ThreePhaseTxn& txn, uint32_t b) { return b < txn.branches.size(); }

bool IsFinished(BranchState s) {
  return s == BranchState::kCommitted || s == BranchState::kAborted || s == BranchState::kHeuristic;
}

bool Undecided(const ThreePhaseTxn& txn) {
  return txn.state == TxnState::kActive || txn.state == TxnState::kPreparing ||
         txn.state == TxnState::kPreCommitted || txn.state == TxnState::kInDoubt;
}

std::vector<std::string> Members(const ThreePhaseTxn& txn) {
  std::vector<std::string> m;
  for (const auto& br : txn.branches) m.push_back(br.participant);
  return m;
}

void Reply(ThreePhaseTxn& txn, Effects& out) {
  if (txn.client_answered) return;
  txn.client_answered = true;
  out.push_back(ReplyToClient{});
}

void SendRollbacks(ThreePhaseTxn& txn, Effects& out) {
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

// Abort with nothing logged: only before START is durable (no participant can have a record).
void AbortUnlogged(ThreePhaseTxn& txn, std::string reason, Effects& out) {
  txn.state = TxnState::kAborting;
  txn.reason = std::move(reason);
  txn.decision_logged = true;  // presumed abort: there is nothing to write
  Reply(txn, out);
  SendRollbacks(txn, out);
}

// Write `d`; the sends follow DecisionLogged.
void Decide(ThreePhaseTxn& txn, Decision d, std::string reason, Effects& out) {
  txn.state = d == Decision::kCommit ? TxnState::kCommitting : TxnState::kAborting;
  if (!reason.empty()) txn.reason = std::move(reason);
  txn.round.reset();
  txn.decision_logged = false;
  out.push_back(LogDecision{.decision = d, .committing_last = false, .sync_abort = true});
}

void StartTermination(ThreePhaseTxn& txn, Effects& out) {
  if (txn.ballot_pending || txn.state != TxnState::kPreCommitted) return;
  txn.round.reset();
  txn.ballot_pending = true;
  out.push_back(LogBallot{txn.max_round + 1});
}

void OnCommitRequested(ThreePhaseTxn& txn, const CommitRequested& e, Effects& out) {
  if (txn.state != TxnState::kActive) return;
  txn.wait_for_completion = e.wait_for_completion;
  txn.state = TxnState::kPreparing;
  out.push_back(LogStart{});
}

void OnRollbackRequested(ThreePhaseTxn& txn, const RollbackRequested& e, Effects& out) {
  if (txn.state == TxnState::kActive) {
    AbortUnlogged(txn, e.reason, out);
  } else if (txn.state == TxnState::kPreparing && txn.start_logged) {
    // Still the vote phase: no PRE_COMMIT went out.
    Decide(txn, Decision::kAbort, e.reason, out);
  }
}

void OnStartLogged(ThreePhaseTxn& txn, Effects& out) {
  if (txn.state != TxnState::kPreparing || txn.start_logged) return;
  txn.start_logged = true;
  for (uint32_t b = 0; b < txn.branches.size(); ++b) {
    txn.branches[b].state = BranchState::kPreparing;
    out.push_back(SendPrepare{b});
  }
  out.push_back(StartPrepareTimer{});
}

void OnStartLogFailed(ThreePhaseTxn& txn, const StartLogFailed& e, Effects& out) {
  if (txn.state != TxnState::kPreparing || txn.start_logged) return;
  AbortUnlogged(txn, absl::StrCat("the START record could not be written: ", e.reason), out);
}

void OnVote(ThreePhaseTxn& txn, uint32_t b, bool yes, const std::string& reason, Effects& out) {
  if (txn.state != TxnState::kPreparing || !txn.start_logged || !ValidBranch(txn, b)) return;
  BranchStatus& br = txn.branches[b];
  if (br.state != BranchState::kPreparing) return;  // duplicate
  if (!yes) {
    br.state = BranchState::kAborted;
    br.reason = reason;
    Decide(txn, Decision::kAbort, absl::StrCat("participant ", br.participant, ": ", reason), out);
    return;
  }
  br.state = BranchState::kPrepared;
  for (const auto& other : txn.branches) {
    if (other.state != BranchState::kPrepared) return;
  }
  txn.state = TxnState::kPreCommitted;
  for (uint32_t i = 0; i < txn.branches.size(); ++i) {
    out.push_back(SendPreDecide{i, InitialBallot(), Direction::kPreCommit});
  }
  out.push_back(StartAckTimer{});
}

void OnPreDecideAnswered(ThreePhaseTxn& txn, const PreDecideAnswered& e, Effects& out) {
  if (txn.state != TxnState::kPreCommitted || !ValidBranch(txn, e.branch)) return;
  const std::string& member = txn.branches[e.branch].participant;
  // A quorum of ACK(B0) commits whenever it is complete, even with a round of the coordinator's
  // own under way: B0 reached a quorum, so every later round would pre-commit too (Lemma C).
  if (e.ballot == InitialBallot() && e.reply.kind == TpcReply::Kind::kAck) {
    txn.acks.insert(e.branch);
    if (txn.acks.size() >= QuorumOf(txn.branches.size())) Decide(txn, Decision::kCommit, "", out);
    return;
  }
  if (txn.round) {
    if (e.ballot != txn.round->ballot()) return;  // an earlier attempt's answer
    TerminationRound::Next n = txn.round->OnPreDecideReply(member, e.reply);
    switch (n.kind) {
      case TerminationRound::Next::Kind::kWait:
      case TerminationRound::Next::Kind::kSendPreDecide:
        return;
      case TerminationRound::Next::Kind::kDecided:
        Decide(txn, n.decision, "", out);
        return;
      case TerminationRound::Next::Kind::kAbandon:
        txn.max_round = std::max(txn.max_round, txn.round->highest_round_seen());
        txn.round.reset();
        out.push_back(StartAckTimer{});  // try again after the driver's backoff
        return;
    }
    return;
  }
  if (e.ballot != InitialBallot() || txn.ballot_pending) return;
  switch (e.reply.kind) {
    case TpcReply::Kind::kAck:
      return;  // counted above
    case TpcReply::Kind::kDecided:
      if (!IsFinal(e.reply.state)) return;  // malformed: not a decision
      // A participants' round got there first.
      Decide(txn, e.reply.state == TpcState::kCommitted ? Decision::kCommit : Decision::kAbort,
             absl::StrCat("decided by a termination round (", member, ")"), out);
      return;
    case TpcReply::Kind::kNack:
      // The participant promised a termination round: B0 may never reach a quorum now, so the
      // coordinator joins the termination with a ballot of its own.
      txn.max_round = std::max(txn.max_round, e.reply.ballot.round);
      StartTermination(txn, out);
      return;
    case TpcReply::Kind::kState:
      return;
  }
}

void OnAckTimedOut(ThreePhaseTxn& txn, Effects& out) {
  if (txn.state == TxnState::kInDoubt && txn.unwritten != Decision::kNone) {
    const Decision d = std::exchange(txn.unwritten, Decision::kNone);
    Decide(txn, d, "", out);  // write it again: a majority accepted it, it cannot change
    return;
  }
  if (txn.state != TxnState::kPreCommitted) return;
  if (txn.round) txn.max_round = std::max(txn.max_round, txn.round->highest_round_seen());
  StartTermination(txn, out);
}

void OnBallotLogged(ThreePhaseTxn& txn, const BallotLogged& e, Effects& out) {
  if (!txn.ballot_pending) return;
  txn.ballot_pending = false;
  txn.max_round = std::max(txn.max_round, e.round);
  if (txn.state != TxnState::kPreCommitted) return;
  txn.round.emplace(Ballot{e.round, ""}, Members(txn));
  for (uint32_t b = 0; b < txn.branches.size(); ++b) {
    out.push_back(SendElect{b, txn.round->ballot()});
  }
  out.push_back(StartAckTimer{});
}

void OnBallotLogFailed(ThreePhaseTxn& txn, const BallotLogFailed& e, Effects& out) {
  if (!txn.ballot_pending) return;
  txn.ballot_pending = false;
  txn.reason = absl::StrCat("a termination ballot could not be written: ", e.reason);
  out.push_back(StartAckTimer{});  // try again later; nothing was sent
}

void OnElectAnswered(ThreePhaseTxn& txn, const ElectAnswered& e, Effects& out) {
  if (txn.state != TxnState::kPreCommitted || !txn.round || !ValidBranch(txn, e.branch)) return;
  if (e.ballot != txn.round->ballot()) return;
  TerminationRound::Next n = txn.round->OnElectReply(txn.branches[e.branch].participant, e.reply);
  switch (n.kind) {
    case TerminationRound::Next::Kind::kWait:
      return;
    case TerminationRound::Next::Kind::kSendPreDecide:
      for (uint32_t b = 0; b < txn.branches.size(); ++b) {
        out.push_back(SendPreDecide{b, txn.round->ballot(), n.direction});
      }
      return;
    case TerminationRound::Next::Kind::kDecided:
      Decide(txn, n.decision, "", out);
      return;
    case TerminationRound::Next::Kind::kAbandon:
      txn.max_round = std::max(txn.max_round, txn.round->highest_round_seen());
      txn.round.reset();
      out.push_back(StartAckTimer{});
      return;
  }
}

void OnDecisionReported(ThreePhaseTxn& txn, const DecisionReported& e, Effects& out) {
  if (e.decision == Decision::kNone) return;
  if (e.decision == Decision::kCommit && txn.state == TxnState::kPreparing) {
    // No PRE_COMMIT has gone out, so no round can have committed.
    txn.conflict = absl::StrCat("participant ", e.participant,
                                " reported COMMIT before any PRE_COMMIT was sent");
    return;
  }
  if (Undecided(txn) && txn.state != TxnState::kActive &&
      !(txn.state == TxnState::kPreparing && !txn.start_logged)) {
    Decide(txn, e.decision, absl::StrCat("decided by a termination round (", e.participant, ")"),
           out);
    return;
  }
  const bool committing = txn.state == TxnState::kCommitting || txn.state == TxnState::kCommitted;
  const bool aborting = txn.state == TxnState::kAborting || txn.state == TxnState::kAborted;
  if ((e.decision == Decision::kCommit && aborting) ||
      (e.decision == Decision::kAbort && committing)) {
    txn.conflict = absl::StrCat("participant ", e.participant, " reported ",
                                e.decision == Decision::kCommit ? "COMMIT" : "ABORT",
                                " against the logged decision");
  }
}

void OnDecisionLogged(ThreePhaseTxn& txn, const DecisionLogged& e, Effects& out) {
  if (txn.decision_logged) return;
  if (txn.state == TxnState::kCommitting && e.decision == Decision::kCommit) {
    txn.decision_logged = true;
    if (!txn.wait_for_completion) Reply(txn, out);
    for (uint32_t b = 0; b < txn.branches.size(); ++b) {
      BranchStatus& br = txn.branches[b];
      if (IsFinished(br.state)) continue;
      br.state = BranchState::kPrepared;
      br.attempts = 1;
      out.push_back(SendCommit{b, 0});
    }
  } else if (txn.state == TxnState::kAborting && e.decision == Decision::kAbort) {
    txn.decision_logged = true;
    Reply(txn, out);
    SendRollbacks(txn, out);
  }
}

void OnDecisionLogFailed(ThreePhaseTxn& txn, const DecisionLogFailed& e, Effects& out) {
  if (txn.decision_logged ||
      (txn.state != TxnState::kCommitting && txn.state != TxnState::kAborting)) {
    return;
  }
  txn.unwritten = txn.state == TxnState::kCommitting ? Decision::kCommit : Decision::kAbort;
  txn.state = TxnState::kInDoubt;
  txn.reason = absl::StrCat("the decision could not be written: ", e.reason);
  Reply(txn, out);
  out.push_back(StartAckTimer{});
}

// Whether every branch finished; `*mixed`: some ended against the decision.
bool AllFinished(const ThreePhaseTxn& txn, bool* mixed) {
  *mixed = false;
  for (const auto& br : txn.branches) {
    if (!IsFinished(br.state)) return false;
    *mixed = *mixed || br.state == BranchState::kHeuristic;
  }
  return true;
}

void FinishCommitIfDone(ThreePhaseTxn& txn, Effects& out) {
  bool mixed;
  if (!AllFinished(txn, &mixed)) return;
  txn.state = mixed ? TxnState::kHeuristicMixed : TxnState::kCommitted;
  out.push_back(LogCompletion{});
  Reply(txn, out);
  out.push_back(Forget{});
}

void FinishAbortIfDone(ThreePhaseTxn& txn, Effects& out) {
  bool mixed;
  if (!AllFinished(txn, &mixed)) return;
  txn.state = mixed ? TxnState::kHeuristicMixed : TxnState::kAborted;
  out.push_back(LogCompletion{});
  out.push_back(Forget{});
}

void OnCommitAcked(ThreePhaseTxn& txn, const CommitAcked& e, Effects& out) {
  if (txn.state != TxnState::kCommitting || !txn.decision_logged || !ValidBranch(txn, e.branch)) {
    return;
  }
  BranchStatus& br = txn.branches[e.branch];
  if (IsFinished(br.state)) return;
  if (e.result == BranchResult::kCommitted) {
    br.state = BranchState::kCommitted;
  } else {
    br.state = BranchState::kHeuristic;
    br.reason = absl::StrCat(e.result == BranchResult::kAborted
                                 ? "branch rolled back although the decision was COMMIT: "
                                 : "branch outcome cannot be proven: ",
                             e.reason);
  }
  FinishCommitIfDone(txn, out);
}

void OnCommitFailed(ThreePhaseTxn& txn, const CommitFailed& e, Effects& out) {
  if (txn.state != TxnState::kCommitting || !txn.decision_logged || !ValidBranch(txn, e.branch)) {
    return;
  }
  BranchStatus& br = txn.branches[e.branch];
  if (IsFinished(br.state)) return;
  br.reason = e.reason;
  out.push_back(SendCommit{e.branch, br.attempts++});  // never gives up on a logged decision
}

void OnRollbackAcked(ThreePhaseTxn& txn, const RollbackAcked& e, Effects& out) {
  if (txn.state != TxnState::kAborting || !txn.decision_logged || !ValidBranch(txn, e.branch)) {
    return;
  }
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

void OnRollbackFailed(ThreePhaseTxn& txn, const RollbackFailed& e, Effects& out) {
  if (txn.state != TxnState::kAborting || !txn.decision_logged || !ValidBranch(txn, e.branch)) {
    return;
  }
  BranchStatus& br = txn.branches[e.branch];
  if (IsFinished(br.state)) return;
  br.reason = e.reason;
  // The ABORT is logged (GetDecision answers it), but a 3PC branch may be pre-committed and
  // waiting: keep telling it rather than leaving it to its own termination.
  out.push_back(SendRollback{e.branch, br.attempts++});
}

}  // namespace

std::vector<ThreePhaseEffect> Step(ThreePhaseTxn& txn, const ThreePhaseEvent& event) {
  Effects out;
  std::visit(
      [&](const auto& e) {
        using E = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<E, CommitRequested>) {
          OnCommitRequested(txn, e, out);
        } else if constexpr (std::is_same_v<E, RollbackRequested>) {
          OnRollbackRequested(txn, e, out);
        } else if constexpr (std::is_same_v<E, StartLogged>) {
          OnStartLogged(txn, out);
        } else if constexpr (std::is_same_v<E, StartLogFailed>) {
          OnStartLogFailed(txn, e, out);
        } else if constexpr (std::is_same_v<E, VoteReceived>) {
          OnVote(txn, e.branch, e.vote != Vote::kNo, e.reason, out);  // READ_ONLY stays a member
        } else if constexpr (std::is_same_v<E, PrepareFailed>) {
          OnVote(txn, e.branch, false, e.reason, out);
        } else if constexpr (std::is_same_v<E, PrepareTimedOut>) {
          if (txn.state == TxnState::kPreparing && txn.start_logged) {
            Decide(txn, Decision::kAbort, "prepare timed out", out);
          }
        } else if constexpr (std::is_same_v<E, PreDecideAnswered>) {
          OnPreDecideAnswered(txn, e, out);
        } else if constexpr (std::is_same_v<E, ElectAnswered>) {
          OnElectAnswered(txn, e, out);
        } else if constexpr (std::is_same_v<E, AckTimedOut>) {
          OnAckTimedOut(txn, out);
        } else if constexpr (std::is_same_v<E, BallotLogged>) {
          OnBallotLogged(txn, e, out);
        } else if constexpr (std::is_same_v<E, BallotLogFailed>) {
          OnBallotLogFailed(txn, e, out);
        } else if constexpr (std::is_same_v<E, DecisionReported>) {
          OnDecisionReported(txn, e, out);
        } else if constexpr (std::is_same_v<E, DecisionLogged>) {
          OnDecisionLogged(txn, e, out);
        } else if constexpr (std::is_same_v<E, DecisionLogFailed>) {
          OnDecisionLogFailed(txn, e, out);
        } else if constexpr (std::is_same_v<E, CommitAcked>) {
          OnCommitAcked(txn, e, out);
        } else if constexpr (std::is_same_v<E, CommitFailed>) {
          OnCommitFailed(txn, e, out);
        } else if constexpr (std::is_same_v<E, RollbackAcked>) {
          OnRollbackAcked(txn, e, out);
        } else if constexpr (std::is_same_v<E, RollbackFailed>) {
          OnRollbackFailed(txn, e, out);
        }
      },
      event);
  return out;
}

std::vector<ThreePhaseEffect> Resume(ThreePhaseTxn& txn, Decision decision, uint64_t max_round) {
  Effects out;
  txn.start_logged = true;
  txn.client_answered = true;  // the client that asked is gone
  txn.max_round = std::max<uint64_t>(max_round, 1);
  if (decision != Decision::kNone) {
    // Final: no termination round can have decided otherwise. Re-send it (no reply: the client
    // that asked is gone).
    txn.state = decision == Decision::kCommit ? TxnState::kCommitting : TxnState::kAborting;
    txn.decision_logged = false;
    return Step(txn, DecisionLogged{decision, false});
  }
  // START only: PRE_COMMIT may or may not have gone out. Never presume abort; terminate.
  txn.state = TxnState::kPreCommitted;
  for (auto& br : txn.branches) {
    if (!IsFinished(br.state)) br.state = BranchState::kPrepared;
  }
  StartTermination(txn, out);
  return out;
}

TxnState OutcomeState(const ThreePhaseTxn& txn) {
  return ReportedState(txn.state, txn.decision_logged);
}

Decision DecisionOf(const ThreePhaseTxn& txn) {
  switch (txn.state) {
    case TxnState::kCommitting:
      return txn.decision_logged ? Decision::kCommit : Decision::kNone;
    case TxnState::kCommitted:
      return Decision::kCommit;
    case TxnState::kAborting:
      return txn.decision_logged ? Decision::kAbort : Decision::kNone;
    case TxnState::kAborted:
      return Decision::kAbort;
    default:
      return Decision::kNone;
  }
}

}  // namespace txn::core
