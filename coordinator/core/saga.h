// Sagas as a pure state machine: Step(saga, event) updates the saga and returns the effects the
// driver must carry out, in order. No I/O, clock or threads (DESIGN.md section 2).
//
// A saga is an ordered list of steps; each is a local transaction on its participant
// (Participant.ExecuteLocal) with a compensation (Participant.Compensate). The agents' barrier
// table makes both idempotent: a retried step runs once, a compensation whose step never ran
// does nothing but blocks that step from running later.
//
// States (TxnState) and transitions:
//
//   ACTIVE --Start------------------------> ACTIVE   [LogSaga(start, sync)]
//   ACTIVE --logged(start)----------------> ACTIVE   [SendStep(0)]
//   ACTIVE --start write failed-----------> ABORTED  [LogSaga(final, sync)] (nothing ran; the
//                                           START may have landed all the same: the answer
//                                           waits for the ABORTED record written over it)
//   ACTIVE --step k DONE------------------> ACTIVE   [LogSaga(progress), SendStep(k+1)]
//   ACTIVE --last step DONE---------------> COMMITTED [LogSaga(final, sync)]
//   COMMITTED --logged(final)-------------> COMMITTED [Reply, Forget]
//   COMMITTED --final write failed--------> COMMITTED [Reply (IN_DOUBT), LogSaga(final, sync,
//                                           n+1)]: the answer is not known until the record
//                                           lands, so the write is tried again (with backoff)
//                                           until it does, as a restart would
//   (FAILED_COMPENSATION, whose record is synced too, waits for it the same way)
//   ACTIVE --step k UNKNOWN---------------> ACTIVE   [SendStep(k, n+1)] up to kMaxStepAttempts
//   ACTIVE --step k FAILED (or no answer)-> ABORTING [LogSaga(compensating, sync)]
//   ABORTING --logged(compensating)-------> ABORTING [SendCompensation(j)] for the highest step
//                                           j <= k that was sent and is not compensated
//   ABORTING --compensation j DONE--------> ABORTING [LogSaga(progress), SendCompensation(next)]
//   ABORTING --last compensation DONE-----> ABORTED  [LogSaga(final), Reply, Forget]
//   ABORTING --compensation j FAILED------> ABORTING [SendCompensation(j, n+1)] (with backoff)
//                                           up to kMaxCompensationAttempts, then
//                                       -> FAILED_COMPENSATION [LogSaga(final, sync), Reply,
//                                       Forget]
//   ABORTING --compensating write failed--> ABORTING [Reply (IN_DOUBT), LogSaga(compensating,
//                                           sync, n+1)]: nothing is compensated before it lands
//
// The failed step itself is compensated too: its failure may have been a lost answer, and even
// a definite failure leaves a retried copy of the step in flight that could still run; the
// compensation's barrier row stops it (or undoes it). Compensations run one at a time, in
// reverse step order, and stop at the first that cannot be done (the order matters).
//
// What must be durable when: the START record (with the steps and compensations) before the first
// step, and the decision to compensate before the first compensation (a restart that missed it
// would run the failed step again, forward, after compensations had begun), and the COMMITTED
// record before the client hears COMMITTED (a restart that missed it takes the saga up forward,
// and a step whose answers are then lost would make it compensate). Progress records are
// not synced: a restart that misses one re-sends a step or compensation the barrier already has,
// which answers as done.
//
// The SPIN models (tests/model/) cover 2PC and 3PC; this machine is checked by saga_test.cc
// transition by transition and end to end by tests/integration/test_saga.py.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "coordinator/core/types.h"

namespace txn::core {

struct SagaTxn {
  std::string id;
  // ACTIVE (forward), ABORTING (compensating), COMMITTED, ABORTED, FAILED_COMPENSATION. (A
  // client hears IN_DOUBT while a synced record is being written again: see log_failures.)
  TxnState state = TxnState::kActive;
  // One per step. Forward: ACTIVE (not sent), PREPARING (sent, no answer yet), COMMITTED (done),
  // ABORTED (failed), IN_DOUBT (no answer after every attempt). Backward: COMPENSATED, or
  // HEURISTIC when its compensation could not be done.
  std::vector<BranchStatus> steps;
  std::string reason;
  bool started = false;              // the START record is durable
  bool compensating_logged = false;  // the decision to compensate is durable
  std::optional<uint32_t> failed_step;
  // The compensation under way (ABORTING).
  std::optional<uint32_t> compensating;
  bool client_answered = false;
  // Taken up from the log after a restart. Which steps were sent is then known only from
  // records that may lag (progress is not synced: a step may have run after the last durable
  // progress record), so every step not compensated yet gets a compensation (a null one where
  // the step never ran, which the barrier also keeps from running later).
  bool resumed = false;
  // COMMITTED (or FAILED_COMPENSATION), and its final record is being written: the answer
  // waits for it, and until then the saga shows as still running.
  bool final_pending = false;
  // The synced record being written (the decision to compensate, or the final one) failed to
  // write `log_failures` times in a row, the last with `log_error`; it is being tried again. The
  // client was answered IN_DOUBT.
  int log_failures = 0;
  std::string log_error;
};

enum class StepResult { kDone, kFailed, kUnknown };

// Events.
struct SagaStart {};
enum class SagaLogPoint { kStart, kProgress, kCompensating, kFinal };
struct SagaLogged {
  SagaLogPoint point = SagaLogPoint::kStart;
};
struct SagaLogFailed {
  SagaLogPoint point = SagaLogPoint::kStart;
  std::string reason;
};
// kUnknown: the call failed in transport (the step may or may not have run).
struct StepFinished {
  uint32_t step = 0;
  StepResult result = StepResult::kDone;
  std::string reason;
};
struct CompensationFinished {
  uint32_t step = 0;
  StepResult result = StepResult::kDone;
  std::string reason;
};

using SagaEvent =
    std::variant<SagaStart, SagaLogged, SagaLogFailed, StepFinished, CompensationFinished>;

// Effects. attempt 0: now; n > 0: after the n-th backoff delay.
struct LogSaga {
  SagaLogPoint point = SagaLogPoint::kStart;
  bool sync = false;
  int attempt = 0;  // > 0: a write that failed, tried again (after a backoff)
};
struct SendStep {
  uint32_t step = 0;
  int attempt = 0;
};
struct SendCompensation {
  uint32_t step = 0;
  int attempt = 0;
};

using SagaEffect = std::variant<LogSaga, SendStep, SendCompensation, ReplyToClient, Forget>;

// A step whose answer is lost is re-sent this many times before the saga compensates.
inline constexpr int kMaxStepAttempts = 5;
// A compensation that fails is retried this many times before FAILED_COMPENSATION.
inline constexpr int kMaxCompensationAttempts = 8;

std::vector<SagaEffect> Step(SagaTxn& saga, const SagaEvent& event);

// A saga rebuilt from its log record after a restart: re-sends the step or compensation it was
// at (the barrier answers for what already ran). Requires saga.started.
std::vector<SagaEffect> ResumeSaga(SagaTxn& saga);

}  // namespace txn::core
