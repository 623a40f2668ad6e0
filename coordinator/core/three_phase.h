// Three-phase commit with quorum termination, the coordinator's side, as a pure state machine:
// Step(txn, event) updates the transaction and returns the effects the driver must carry out, in
// order. No I/O, clock or threads (docs/three-phase.md sections 2, 3 and 7). The rules a
// participant follows, the decision rule and the termination round are in three_phase_quorum.h.
//
// States (TxnState) and transitions:
//
//   ACTIVE --CommitRequested-------------> PREPARING     [LogStart] (START(members), synced)
//   ACTIVE --RollbackRequested-----------> ABORTING      [Reply, SendRollback(each)]
//                                          (nothing logged yet: no START, presumed abort)
//   PREPARING --StartLogged--------------> PREPARING     [SendPrepare(each), StartPrepareTimer]
//   PREPARING --StartLogFailed-----------> ABORTING      [Reply, SendRollback(each)]
//   PREPARING --NO / failure / timeout / RollbackRequested
//                                      --> ABORTING      [LogDecision(ABORT)]; the rollbacks go
//                                          out when it is logged. Legal only because no
//                                          PRE_COMMIT has been sent.
//   PREPARING --last YES-----------------> PRECOMMITTED  [SendPreDecide(each, B0, PRE_COMMIT),
//                                                         StartAckTimer]
//   PRECOMMITTED --ACK(B0) from a quorum-> COMMITTING    [LogDecision(COMMIT)]
//   PRECOMMITTED --AckTimedOut / NACK----> PRECOMMITTED  [LogBallot(next round)]
//   PRECOMMITTED --BallotLogged----------> PRECOMMITTED  [SendElect(each, b), StartAckTimer]
//                                          then the round (TerminationRound) says:
//                 SendPreDecide----------> [SendPreDecide(each, b, direction)]
//                 Decided(d)-------------> COMMITTING | ABORTING  [LogDecision(d)]
//                 Abandon / AckTimedOut--> [LogBallot(next round)] (the driver backs off)
//   any undecided --DecisionReported(d)--> COMMITTING | ABORTING  [LogDecision(d)]
//                                          (a participants' termination round decided d)
//   COMMITTING --DecisionLogged----------> [Reply COMMITTED unless waiting, SendCommit(each)]
//   ABORTING --DecisionLogged------------> [Reply ABORTED, SendRollback(each)]
//   COMMITTING|ABORTING --DecisionLogFailed-> IN_DOUBT   [Reply IN_DOUBT, StartAckTimer]
//                                          (nothing sent; the decision is final in the protocol)
//   IN_DOUBT --AckTimedOut---------------> COMMITTING | ABORTING  [LogDecision(it)] again
//   COMMITTING --last CommitAcked--------> COMMITTED     [LogCompletion, Reply if waiting, Forget]
//   ABORTING --last RollbackAcked--------> ABORTED       [Forget]
//
// After a restart (Resume): a COMMIT or ABORT in the log is re-sent as in 2PC; START alone ->
// PRECOMMITTED with a termination round (never presumed abort: PRE_COMMIT may have gone out and a
// quorum may have pre-committed).
//
// What must be durable when: START before any PREPARE; every ballot this coordinator uses
// (max_round) before its ELECT; the decision before it is sent or told to the client. The
// coordinator writes ABORT only while no PRE_COMMIT has gone out, COMMIT only after a quorum
// of ACK(B0) or a decided round, and otherwise only what a termination round decided.
//
// The SPIN model of this machine and of the participants is tests/model/three_phase_quorum.pml;
// change both together.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "protocol/three_phase_quorum.h"
#include "coordinator/core/two_phase.h"
#include "coordinator/core/types.h"

namespace txn::core {

// The quorum rules this state machine runs are shared with the agents (protocol/).
using protocol::Ballot;
using protocol::Direction;
using protocol::InitialBallot;
using protocol::IsFinal;
using protocol::QuorumOf;
using protocol::TerminationRound;
using protocol::TpcReply;
using protocol::TpcState;

struct ThreePhaseTxn {
  std::string id;
  TxnState state = TxnState::kActive;
  std::vector<BranchStatus> branches;  // the members, in order; participant names are unique
  std::string reason;
  bool wait_for_completion = false;
  bool client_answered = false;
  bool start_logged = false;
  // The highest ballot round this coordinator has made durable (B0's round 1 comes with START).
  uint64_t max_round = 1;
  // A LogBallot is being written.
  bool ballot_pending = false;
  // ACK(B0) received, by branch (the normal case, before any termination round).
  std::set<uint32_t> acks;
  // The coordinator's own termination round, if one is under way.
  std::optional<TerminationRound> round;
  // COMMITTING / ABORTING before this is set means the decision is being written.
  bool decision_logged = false;
  // IN_DOUBT after a failed decision write: the decision (final in the protocol: a majority
  // accepted it) that is written again on the next AckTimedOut.
  Decision unwritten = Decision::kNone;
  // A participant reported a decision opposite to the logged one (or a COMMIT in the vote
  // phase): a protocol bug, kept visible, never applied.
  std::string conflict;
};

// Events beyond two_phase.h's (CommitRequested, RollbackRequested, VoteReceived, PrepareFailed,
// PrepareTimedOut, DecisionLogged, DecisionLogFailed, CommitAcked, CommitFailed, RollbackAcked,
// RollbackFailed).
struct StartLogged {};
struct StartLogFailed {
  std::string reason;
};
// A participant answered PRE_COMMIT / PRE_ABORT at `ballot` (the ballot sent).
struct PreDecideAnswered {
  uint32_t branch = 0;
  Ballot ballot;
  TpcReply reply;
};
struct ElectAnswered {
  uint32_t branch = 0;
  Ballot ballot;
  TpcReply reply;
};
// The pre-commit ACKs, or the coordinator's termination round, made no progress in time.
struct AckTimedOut {};
struct BallotLogged {
  uint64_t round = 0;
};
struct BallotLogFailed {
  std::string reason;
};
// A termination round run by participants decided (their DECIDED sent to the coordinator).
struct DecisionReported {
  Decision decision = Decision::kNone;
  std::string participant;
};

using ThreePhaseEvent =
    std::variant<CommitRequested, RollbackRequested, StartLogged, StartLogFailed, VoteReceived,
                 PrepareFailed, PrepareTimedOut, PreDecideAnswered, ElectAnswered, AckTimedOut,
                 BallotLogged, BallotLogFailed, DecisionReported, DecisionLogged, DecisionLogFailed,
                 CommitAcked, CommitFailed, RollbackAcked, RollbackFailed>;

// Effects beyond two_phase.h's (SendPrepare, SendCommit, SendRollback, StartPrepareTimer,
// LogDecision, LogCompletion).
// Write START(members) with max_round 1, synced; answer StartLogged / StartLogFailed.
struct LogStart {};
struct SendPreDecide {
  uint32_t branch = 0;
  Ballot ballot;
  Direction direction = Direction::kPreCommit;
};
struct SendElect {
  uint32_t branch = 0;
  Ballot ballot;
};
// Make `round` durable as the highest ballot round used (synced); answer BallotLogged.
struct LogBallot {
  uint64_t round = 0;
};
// Deliver AckTimedOut after the driver's pre-commit / termination timeout (with backoff).
struct StartAckTimer {};

using ThreePhaseEffect = std::variant<LogStart, SendPrepare, StartPrepareTimer, SendPreDecide,
                                      StartAckTimer, LogBallot, SendElect, LogDecision, SendCommit,
                                      SendRollback, LogCompletion, ReplyToClient, Forget>;

std::vector<ThreePhaseEffect> Step(ThreePhaseTxn& txn, const ThreePhaseEvent& event);

// A transaction rebuilt after a restart. `decision` is what the log holds (kNone: START only);
// `max_round` the highest ballot round logged. Branches as logged (PREPARED where not finished).
std::vector<ThreePhaseEffect> Resume(ThreePhaseTxn& txn, Decision decision, uint64_t max_round);

// What the client is told now (COMMITTING -> COMMITTED once logged, ABORTING -> ABORTED,
// undecided -> IN_DOUBT), and what GetDecision answers (kNone while undecided).
TxnState OutcomeState(const ThreePhaseTxn& txn);
Decision DecisionOf(const ThreePhaseTxn& txn);

}  // namespace txn::core
