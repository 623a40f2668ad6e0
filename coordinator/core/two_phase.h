// Two-phase commit with presumed abort, as a pure state machine: Step(txn, event) updates the
// transaction and returns the effects the driver must carry out, in order. No I/O, clock,
// threads or logging here; time arrives as PrepareTimedOut, backoff is the driver's (an effect's
// `attempt` says how many sends came before).
//
// States and transitions (TxnState):
//
//   ACTIVE --CommitRequested, 0 branches-------------------------------> COMMITTED   [Reply]
//   ACTIVE --CommitRequested, 1 branch---> COMMITTING (one phase)        [SendCommitOnePhase]
//     (not when keyed: a keyed transaction is prepared and logged, see `keyed`)
//   COMMITTING (one phase) --committed / aborted--> COMMITTED / ABORTED   [Reply, Forget]
//   COMMITTING (one phase) --lost / unknown--> COMMITTING   [SendCommitOnePhase(n+1)] forever;
//                                after kMaxOnePhaseQueries the client hears IN_DOUBT
//   ACTIVE --CommitRequested, >1 branch--> PREPARING   [SendPrepare(each), StartPrepareTimer]
//   ACTIVE|PREPARING --RollbackRequested-> ABORTING    [Reply ABORTED, SendRollback(each)]
//   PREPARING --NO / PrepareFailed / PrepareTimedOut--> ABORTING
//                                          [Reply ABORTED, SendRollback(each not finished)]
//   PREPARING --last vote, all READ_ONLY--> COMMITTED                    [Reply, Forget]
//   PREPARING --last vote, some YES-------> COMMITTING                   [LogDecision]
//   COMMITTING --DecisionLogged-----------> COMMITTING
//                                [Reply COMMITTED unless waiting, SendCommit(each PREPARED)]
//   COMMITTING --DecisionLogFailed--------> IN_DOUBT                     [Reply IN_DOUBT]
//   COMMITTING --CommitFailed(b)----------> COMMITTING                   [SendCommit(b, n+1)]
//   COMMITTING --last CommitAcked---------> COMMITTED | HEURISTIC_MIXED
//                                           [LogCompletion, Reply if waiting, Forget]
//   ABORTING  --last RollbackAcked--------> ABORTED, or HEURISTIC_MIXED when a branch had
//                                           committed anyway                [LogCompletion]
//                                           [Forget]
//
// Operator resolution (OperatorResolved; see CheckResolve for when it is allowed):
//
//   ACTIVE|PREPARING --abort---------------> ABORTING    (as RollbackRequested)
//   IN_DOUBT --commit----------------------> COMMITTING  [LogDecision(COMMIT)], then as above
//   IN_DOUBT --abort-----------------------> ABORTING    [LogDecision(ABORT)]; the rollbacks
//                                            go out once DecisionLogged(ABORT) arrives
//   COMMITTING (committing_last) --d-------> as if the last resource answered d
//   COMMITTING (logged) --commit-----------> COMMITTING  [SendCommit(each unacknowledged), now]
//   ABORTING --abort-----------------------> ABORTING    [SendRollback(each unfinished), now]
//
// With a last resource L (a branch that cannot prepare, e.g. MongoDB; DESIGN.md section 3):
//
//   ACTIVE --CommitRequested---------------> PREPARING   [SendPrepare(each but L), timer]
//     (L alone: a plain one-phase commit; keyed, nothing to prepare: as "all READ_ONLY")
//   PREPARING --last vote, some YES--------> COMMITTING  [LogDecision(committing_last)]
//   PREPARING --last vote, all READ_ONLY---> COMMITTING  [SendCommitOnePhase(L)] (plain 1PC),
//                                            keyed: [LogDecision(committing_last)]
//   COMMITTING --DecisionLogged(last)------> COMMITTING  [SendCommitOnePhase(L)]
//   COMMITTING --L committed---------------> COMMITTING  [LogDecision(COMMIT)], then as above
//   COMMITTING --L aborted-----------------> ABORTING    [LogDecision(ABORT), Reply, rollbacks]
//   COMMITTING --L unknown / call failed---> COMMITTING  [SendCommitOnePhase(L, query)] forever;
//                                            after kMaxOnePhaseQueries the client hears IN_DOUBT
//   COMMITTING --DecisionLogFailed(last)---> COMMITTING  [LogDecision(ABORT, synced)]: L was
//                                            never asked, but the record may have landed and a
//                                            restart would ask L (whose open branch, in an
//                                            interactive transaction, would commit): the ABORT
//                                            is written over it first; once durable -> ABORTING
//                                            [Reply, rollbacks]; if it fails, [Reply IN_DOUBT,
//                                            LogDecision(ABORT, n+1)] until it lands
//
// L's commit writes its commit marker in the same transaction, so a restarted coordinator that
// finds only the committing_last record asks L again and L's agent answers from the marker.
// Further branches that cannot prepare (heuristic_resources, only with allow_heuristic) are
// committed in one phase once COMMIT is logged; one that aborts is HEURISTIC, and the
// transaction HEURISTIC_MIXED.
//
// What must be durable when: the COMMIT decision, before any Commit is sent and before the
// client hears COMMITTED (LogDecision -> DecisionLogged -> SendCommit). Nothing else: a
// transaction with no COMMIT record is aborted (presumed abort), so the abort path and the
// prepare phase write nothing. One-phase and all-READ_ONLY commits write nothing either, unless
// keyed (see TwoPhaseTxn::keyed).
//
// The in-doubt window: from a participant's YES vote until it hears the decision, its branch
// stays prepared (locks held). If the coordinator dies in that window, the branch waits until
// the coordinator is back; the agent asks GetDecision (COMMIT if logged, else ABORT).
//
// Duplicate and late events (a second vote, a vote after the abort, an ack for a finished
// branch) change nothing and produce no effects. The SPIN model of this protocol is
// tests/model/two_phase.pml (checked by tests/model/check_models.sh): change both together.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "coordinator/core/types.h"

namespace txn::core {

struct TwoPhaseTxn {
  std::string id;
  TxnState state = TxnState::kActive;
  std::vector<BranchStatus> branches;
  std::string reason;
  bool wait_for_completion = false;
  bool one_phase = false;
  // A single branch commits in one phase (no prepare, no log record). Off only to measure what
  // that saves (txcoord --no-one-phase): the branch is then prepared and committed like any.
  bool one_phase_allowed = true;
  // The client gave an idempotency key. The key must outlive a coordinator crash at any step,
  // also one between a one-phase commit and its answer, and only a record written before that
  // commit can carry it: a keyed transaction never commits in one phase without one. A single
  // branch is prepared and logged like any other; a last resource (alone, or after every other
  // branch voted READ_ONLY) is committed after the committing-last record, which a restart
  // answers by asking it. Without this, a retry after the restart would not find the key and
  // would run the transaction a second time.
  bool keyed = false;
  bool client_answered = false;
  // COMMITTING before this is set means the COMMIT record is being written: not yet a decision.
  bool decision_logged = false;
  // The committing-last record failed to write, so the transaction aborts (the last resource
  // was never asked); the ABORT is being written over whatever of that record landed, and
  // nothing acts on it before it is durable. `abort_log_failures`: how often that write failed
  // (it is tried again with backoff; the client hears IN_DOUBT meanwhile).
  bool abort_pending = false;
  int abort_log_failures = 0;
  // The branch that cannot prepare and is committed last, in one phase, if any.
  std::optional<uint32_t> last_resource;
  // The committing_last record was requested: the last resource's commit decides.
  bool committing_last = false;
  // Further branches that cannot prepare, accepted with allow_heuristic: committed in one phase
  // after the decision; one that aborts then makes the outcome HEURISTIC_MIXED (never hidden).
  std::vector<uint32_t> heuristic_resources;
  // An operator's decision for an IN_DOUBT transaction is being written.
  bool resolution_pending = false;
};

// Events.
struct CommitRequested {
  bool wait_for_completion = false;
};
struct RollbackRequested {
  std::string reason;
};
struct VoteReceived {
  uint32_t branch = 0;
  Vote vote = Vote::kNo;
  std::string reason;
  std::string native_id;
};
// The Prepare call failed (transport error, refusal): counts as a NO vote.
struct PrepareFailed {
  uint32_t branch = 0;
  std::string reason;
};
struct PrepareTimedOut {};
// The write asked for by LogDecision completed; `decision` and `committing_last` echo it.
struct DecisionLogged {
  Decision decision = Decision::kCommit;
  bool committing_last = false;
};
struct DecisionLogFailed {
  std::string reason;
  bool committing_last = false;
};
struct CommitAcked {
  uint32_t branch = 0;
  BranchResult result = BranchResult::kCommitted;
  std::string reason;
};
// The Commit call failed in transport: the branch must be retried, forever.
struct CommitFailed {
  uint32_t branch = 0;
  std::string reason;
};
struct RollbackAcked {
  uint32_t branch = 0;
  BranchResult result = BranchResult::kAborted;
  std::string reason;
};
struct RollbackFailed {
  uint32_t branch = 0;
  std::string reason;
};
// Result of CommitOnePhase (kUnknown when it cannot be learnt). `branch`: which branch answered
// (unset: the single branch, or the last resource).
struct OnePhaseFinished {
  BranchResult result = BranchResult::kUnknown;
  std::string reason;
  std::optional<uint32_t> branch;
};
// The CommitOnePhase call failed in transport; the driver may query again.
struct OnePhaseFailed {
  std::string reason;
  std::optional<uint32_t> branch;
};

// An operator's decision (Admin.ResolveTransaction), already checked by CheckResolve.
struct OperatorResolved {
  Decision decision = Decision::kAbort;
};

using TwoPhaseEvent =
    std::variant<CommitRequested, RollbackRequested, VoteReceived, PrepareFailed, PrepareTimedOut,
                 DecisionLogged, DecisionLogFailed, CommitAcked, CommitFailed, RollbackAcked,
                 RollbackFailed, OnePhaseFinished, OnePhaseFailed, OperatorResolved>;

// Effects.
struct SendPrepare {
  uint32_t branch = 0;
};
// attempt 0 carries the branch's operations; later attempts only ask for the result.
struct SendCommitOnePhase {
  uint32_t branch = 0;
  int attempt = 0;
};
// attempt 0: send now; attempt n > 0: send after the n-th backoff delay.
struct SendCommit {
  uint32_t branch = 0;
  int attempt = 0;
};
struct SendRollback {
  uint32_t branch = 0;
  int attempt = 0;
};
struct StartPrepareTimer {};
// Write the decision record and answer with DecisionLogged or DecisionLogFailed (echoing these
// fields). kCommit: the COMMIT record, synced. committing_last: the record saying the last
// resource is being committed, synced. kAbort: the ABORT outcome after the last resource aborted
// (unsynced: if it is lost, recovery asks the last resource again and learns the same).
struct LogDecision {
  Decision decision = Decision::kCommit;
  bool committing_last = false;
  // kAbort only: the write must be durable before the rollbacks go out (it replaces a COMMIT
  // or committing-last record that a failed write may have left).
  bool sync_abort = false;
  int attempt = 0;  // > 0: a write that failed, tried again (after a backoff)
};
// Mark the record done: every branch finished (no sync needed; recovery re-drives otherwise).
// After a HEURISTIC_MIXED abort it writes the transaction's first record (decision ABORT, synced):
// a heuristic outcome is kept until an operator deals with it.
struct LogCompletion {};
// ReplyToClient and Forget: see types.h.

using TwoPhaseEffect =
    std::variant<SendPrepare, SendCommitOnePhase, SendCommit, SendRollback, StartPrepareTimer,
                 LogDecision, LogCompletion, ReplyToClient, Forget>;

// Rollbacks are retried this many times; after that the branch is left to the agent, which
// asks GetDecision (ABORT under presumed abort) in its reconciliation loop.
inline constexpr int kMaxRollbackAttempts = 8;
// One-phase commits whose answer was lost are re-asked this many times, then reported IN_DOUBT.
inline constexpr int kMaxOnePhaseQueries = 5;

// Requires txn.state and the event to come from this machine's own history.
std::vector<TwoPhaseEffect> Step(TwoPhaseTxn& txn, const TwoPhaseEvent& event);

// A transaction rebuilt from a COMMIT record after a restart: state COMMITTING, branches as
// logged. Returns the effects that finish it (SendCommit for each branch not yet finished).
std::vector<TwoPhaseEffect> ResumeCommit(TwoPhaseTxn& txn);

// A transaction rebuilt from a committing_last record after a restart (txn.last_resource set,
// the other branches PREPARED): asks the last resource what became of its commit.
std::vector<TwoPhaseEffect> ResumeCommittingLast(TwoPhaseTxn& txn);

// Whether an operator may resolve `txn` with `decision` now; the reason when not. Allowed:
//  - ABORT of an undecided transaction (ACTIVE, PREPARING): rolled back like a client Rollback;
//  - COMMIT or ABORT of one whose COMMIT write failed (IN_DOUBT): the chosen decision is written
//    (synced) before anything is sent, replacing whatever the failed write left on disk;
//  - COMMIT or ABORT of one whose last resource's outcome is not known (committing_last): taken
//    as the last resource's answer (the operator has checked it; if they are wrong, the outcome
//    is mixed);
//  - the logged decision again (COMMIT while committing, ABORT while aborting): re-sends it now.
// Never a change of a logged decision, never a finished transaction.
std::optional<std::string> CheckResolve(const TwoPhaseTxn& txn, Decision decision);

// The state the client is told now: COMMITTING is reported as COMMITTED once the decision is
// durable and IN_DOUBT before; ABORTING as ABORTED; ACTIVE and PREPARING as IN_DOUBT.
TxnState OutcomeState(const TwoPhaseTxn& txn);

// What GetDecision answers for a transaction in memory: kCommit only once the record is durable,
// kAbort once aborting, kNone (ask again later) while undecided.
Decision DecisionOf(const TwoPhaseTxn& txn);

}  // namespace txn::core
