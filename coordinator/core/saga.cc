#include "coordinator/core/saga.h"

#include <type_traits>

#include "absl/strings/str_cat.h"

namespace txn::core {
namespace {

using Effects = std::vector<SagaEffect>;

bool Valid(const SagaTxn& saga, uint32_t step) { return step < saga.steps.size(); }

void Reply(SagaTxn& saga, Effects& out) {
  if (saga.client_answered) return;
  saga.client_answered = true;
  out.push_back(ReplyToClient{});
}

void SendStepNow(SagaTxn& saga, uint32_t k, Effects& out) {
  BranchStatus& st = saga.steps[k];
  st.state = BranchState::kPreparing;
  st.attempts = 1;
  out.push_back(SendStep{k, 0});
}

// Sent at least once: it may have run, so it gets a compensation.
bool WasSent(const BranchStatus& st) {
  return st.state == BranchState::kPreparing || st.state == BranchState::kCommitted ||
         st.state == BranchState::kAborted || st.state == BranchState::kInDoubt;
}

void Finish(SagaTxn& saga, TxnState state, bool sync, Effects& out) {
  saga.state = state;
  saga.compensating.reset();
  if (state == TxnState::kCommitted || sync) {
    // The answer waits for the record (OnLogged): see "What must be durable when".
    saga.final_pending = true;
    out.push_back(LogSaga{SagaLogPoint::kFinal, /*sync=*/true});
    return;
  }
  out.push_back(LogSaga{SagaLogPoint::kFinal, sync});
  Reply(saga, out);
  out.push_back(Forget{});
}

// The next compensation, going down from `from`; ABORTED when none is left.
void CompensateNext(SagaTxn& saga, int64_t from, Effects& out) {
  for (int64_t j = from; j >= 0; --j) {
    BranchStatus& st = saga.steps[static_cast<uint32_t>(j)];
    if (!WasSent(st) && !saga.resumed) continue;
    if (st.state == BranchState::kCompensated) continue;
    saga.compensating = static_cast<uint32_t>(j);
    st.attempts = 1;
    out.push_back(SendCompensation{static_cast<uint32_t>(j), 0});
    return;
  }
  Finish(saga, TxnState::kAborted, /*sync=*/false, out);
}

void StartCompensating(SagaTxn& saga, uint32_t failed, std::string reason, Effects& out) {
  saga.state = TxnState::kAborting;
  saga.failed_step = failed;
  saga.reason = std::move(reason);
  out.push_back(LogSaga{SagaLogPoint::kCompensating, /*sync=*/true});
}

void OnLogged(SagaTxn& saga, const SagaLogged& e, Effects& out) {
  if (e.point == SagaLogPoint::kCompensating || e.point == SagaLogPoint::kFinal) {
    saga.log_failures = 0;
    saga.log_error.clear();
  }
  switch (e.point) {
    case SagaLogPoint::kStart:
      if (saga.state != TxnState::kActive || saga.started) return;
      saga.started = true;
      SendStepNow(saga, 0, out);
      return;
    case SagaLogPoint::kCompensating:
      if (saga.state != TxnState::kAborting || saga.compensating_logged) return;
      saga.compensating_logged = true;
      CompensateNext(saga,
                     saga.resumed ? static_cast<int64_t>(saga.steps.size()) - 1
                                  : static_cast<int64_t>(*saga.failed_step),
                     out);
      return;
    case SagaLogPoint::kFinal:
      if (!saga.final_pending) return;
      saga.final_pending = false;
      Reply(saga, out);
      out.push_back(Forget{});
      return;
    case SagaLogPoint::kProgress:
      return;
  }
}

// A synced record failed to write. What it records has happened in memory only, so the client
// hears IN_DOUBT, and the same record is written again (with backoff) until it lands, which is
// what a restart would do; the coordinator refuses new transactions meanwhile (fails closed).
void RetryLog(SagaTxn& saga, const SagaLogFailed& e, Effects& out) {
  ++saga.log_failures;
  saga.log_error = e.reason;
  Reply(saga, out);
  out.push_back(LogSaga{e.point, /*sync=*/true, saga.log_failures});
}

void OnLogFailed(SagaTxn& saga, const SagaLogFailed& e, Effects& out) {
  switch (e.point) {
    case SagaLogPoint::kStart:
      if (saga.state != TxnState::kActive || saga.started) return;
      // Nothing ran. But the START record may have landed all the same (a disk that reports an
      // error after writing), and a restart would then take the saga up forward: the ABORTED
      // outcome is written over it, synced, before the client hears it (found by the
      // simulation). Finish(kAborted, sync) waits for that record; if it fails too, RetryLog.
      saga.reason = absl::StrCat("the saga could not be logged before its first step: ", e.reason);
      Finish(saga, TxnState::kAborted, /*sync=*/true, out);
      return;
    case SagaLogPoint::kCompensating:
      // Nothing is compensated before the decision to compensate is durable.
      if (saga.state != TxnState::kAborting || saga.compensating_logged) return;
      RetryLog(saga, e, out);
      return;
    case SagaLogPoint::kFinal:
      // A restart would not know how it ended: not final until it does. (An ABORTED saga's
      // final record is not waited for: a restart repeats the compensations, which the barrier
      // answers as done.)
      if (saga.final_pending) RetryLog(saga, e, out);
      return;
    case SagaLogPoint::kProgress:
      return;  // a restart repeats the work; the barrier makes that harmless
  }
}

void OnStepFinished(SagaTxn& saga, const StepFinished& e, Effects& out) {
  if (saga.state != TxnState::kActive || !saga.started || !Valid(saga, e.step)) return;
  BranchStatus& st = saga.steps[e.step];
  if (st.state != BranchState::kPreparing) return;  // duplicate or late
  switch (e.result) {
    case StepResult::kDone:
      st.state = BranchState::kCommitted;
      st.reason.clear();
      if (e.step + 1 == saga.steps.size()) {
        Finish(saga, TxnState::kCommitted, /*sync=*/false, out);
        return;
      }
      out.push_back(LogSaga{SagaLogPoint::kProgress, false});
      SendStepNow(saga, e.step + 1, out);
      return;
    case StepResult::kFailed:
      st.state = BranchState::kAborted;
      st.reason = e.reason;
      StartCompensating(
          saga, e.step,
          absl::StrCat("step ", e.step, " (participant ", st.participant, ") failed: ", e.reason),
          out);
      return;
    case StepResult::kUnknown:
      st.reason = e.reason;
      if (st.attempts < kMaxStepAttempts) {
        out.push_back(SendStep{e.step, st.attempts++});
        return;
      }
      st.state = BranchState::kInDoubt;
      StartCompensating(
          saga, e.step,
          absl::StrCat("step ", e.step, " (participant ", st.participant, ") did not answer after ",
                       st.attempts, " attempts: ", e.reason),
          out);
      return;
  }
}

void OnCompensationFinished(SagaTxn& saga, const CompensationFinished& e, Effects& out) {
  if (saga.state != TxnState::kAborting || !saga.compensating_logged ||
      saga.compensating != e.step || !Valid(saga, e.step)) {
    return;  // duplicate or late
  }
  BranchStatus& st = saga.steps[e.step];
  if (e.result == StepResult::kDone) {
    st.state = BranchState::kCompensated;
    st.reason = e.reason;
    if (e.step > 0) out.push_back(LogSaga{SagaLogPoint::kProgress, false});
    CompensateNext(saga, static_cast<int64_t>(e.step) - 1, out);
    return;
  }
  st.reason = absl::StrCat("compensation failed: ", e.reason);
  if (st.attempts < kMaxCompensationAttempts) {
    out.push_back(SendCompensation{e.step, st.attempts++});
    return;
  }
  st.state = BranchState::kHeuristic;
  st.reason = absl::StrCat("compensation failed ", st.attempts, " times: ", e.reason);
  saga.reason =
      absl::StrCat(saga.reason, "; the compensation of step ", e.step, " (participant ",
                   st.participant, ") failed ", st.attempts, " times and was given up: ", e.reason);
  Finish(saga, TxnState::kFailedCompensation, /*sync=*/true, out);
}

}  // namespace

std::vector<SagaEffect> Step(SagaTxn& saga, const SagaEvent& event) {
  Effects out;
  std::visit(
      [&](const auto& e) {
        using E = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<E, SagaStart>) {
          if (saga.state != TxnState::kActive || saga.started) return;
          if (saga.steps.empty()) {
            Finish(saga, TxnState::kCommitted, false, out);
            return;
          }
          out.push_back(LogSaga{SagaLogPoint::kStart, /*sync=*/true});
        } else if constexpr (std::is_same_v<E, SagaLogged>) {
          OnLogged(saga, e, out);
        } else if constexpr (std::is_same_v<E, SagaLogFailed>) {
          OnLogFailed(saga, e, out);
        } else if constexpr (std::is_same_v<E, StepFinished>) {
          OnStepFinished(saga, e, out);
        } else if constexpr (std::is_same_v<E, CompensationFinished>) {
          OnCompensationFinished(saga, e, out);
        }
      },
      event);
  return out;
}

std::vector<SagaEffect> ResumeSaga(SagaTxn& saga) {
  Effects out;
  saga.client_answered = true;  // nobody is waiting after a restart
  saga.started = true;
  saga.resumed = true;
  if (saga.state == TxnState::kAborting && saga.compensating_logged && saga.failed_step) {
    // Start again at the highest step not yet compensated (see `resumed`).
    int64_t from = static_cast<int64_t>(saga.steps.size()) - 1;
    while (from >= 0 &&
           saga.steps[static_cast<uint32_t>(from)].state == BranchState::kCompensated) {
      --from;
    }
    CompensateNext(saga, from, out);
    return out;
  }
  // Forward (also a saga whose decision to compensate never became durable: nothing was
  // compensated, and its failed step is simply tried again).
  saga.state = TxnState::kActive;
  saga.failed_step.reset();
  saga.compensating_logged = false;
  for (uint32_t k = 0; k < saga.steps.size(); ++k) {
    BranchStatus& st = saga.steps[k];
    if (st.state == BranchState::kCommitted) continue;
    st.state = BranchState::kPreparing;
    st.attempts = 2;
    out.push_back(SendStep{k, 1});
    return out;
  }
  Finish(saga, TxnState::kCommitted, false, out);
  return out;
}

}  // namespace txn::core
