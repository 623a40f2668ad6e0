#include "coordinator/core/saga.h"

#include <gtest/gtest.h>

namespace txn::core {
namespace {

SagaTxn MakeSaga(int steps) {
  SagaTxn s;
  s.id = "n1-1-1";
  for (int i = 0; i < steps; ++i) {
    s.steps.push_back(BranchStatus{.participant = "p" + std::to_string(i)});
  }
  return s;
}

template <typename T>
int Count(const std::vector<SagaEffect>& effects) {
  int n = 0;
  for (const auto& e : effects) n += std::holds_alternative<T>(e) ? 1 : 0;
  return n;
}

template <typename T>
const T& Only(const std::vector<SagaEffect>& effects) {
  const T* found = nullptr;
  for (const auto& e : effects) {
    if (const T* t = std::get_if<T>(&e)) {
      EXPECT_EQ(found, nullptr) << "more than one";
      found = t;
    }
  }
  EXPECT_NE(found, nullptr);
  static T none{};
  return found ? *found : none;
}

// A saga whose START is durable and whose step 0 was sent.
SagaTxn Started(int steps) {
  SagaTxn s = MakeSaga(steps);
  Step(s, SagaStart{});
  auto fx = Step(s, SagaLogged{SagaLogPoint::kStart});
  EXPECT_EQ(Only<SendStep>(fx).step, 0u);
  return s;
}

TEST(Saga, NothingRunsBeforeTheStartIsDurable) {
  SagaTxn s = MakeSaga(2);
  auto fx = Step(s, SagaStart{});
  ASSERT_EQ(fx.size(), 1u);
  EXPECT_EQ(std::get<LogSaga>(fx[0]).point, SagaLogPoint::kStart);
  EXPECT_TRUE(std::get<LogSaga>(fx[0]).sync);
}

// The failed START write may have landed (a disk that reports an error after writing): the
// ABORTED outcome is written over it before the client hears it, or a restart would run the
// saga forward after the client heard ABORTED (found by the simulation).
TEST(Saga, StartWriteFailureAbortsWithNothingRunOnceTheAbortIsDurable) {
  SagaTxn s = MakeSaga(2);
  Step(s, SagaStart{});
  auto fx = Step(s, SagaLogFailed{SagaLogPoint::kStart, "disk full"});
  EXPECT_EQ(s.state, TxnState::kAborted);
  EXPECT_EQ(Count<SendStep>(fx), 0);
  EXPECT_EQ(Count<ReplyToClient>(fx), 0) << "not before the ABORTED record is durable";
  EXPECT_EQ(Only<LogSaga>(fx).point, SagaLogPoint::kFinal);
  EXPECT_TRUE(Only<LogSaga>(fx).sync);
  fx = Step(s, SagaLogFailed{SagaLogPoint::kFinal, "disk still full"});
  EXPECT_EQ(Count<ReplyToClient>(fx), 1) << "IN_DOUBT meanwhile";
  EXPECT_EQ(Only<LogSaga>(fx).attempt, 1);
  fx = Step(s, SagaLogged{SagaLogPoint::kFinal});
  EXPECT_EQ(Count<Forget>(fx), 1);
  EXPECT_EQ(s.state, TxnState::kAborted);
}

TEST(Saga, StepsRunInOrderAndTheLastCommits) {
  SagaTxn s = Started(3);
  auto fx = Step(s, StepFinished{0, StepResult::kDone, ""});
  EXPECT_EQ(Only<SendStep>(fx).step, 1u);
  EXPECT_EQ(Count<SendStep>(Step(s, StepFinished{0, StepResult::kDone, ""})), 0) << "duplicate";
  fx = Step(s, StepFinished{1, StepResult::kDone, ""});
  EXPECT_EQ(Only<SendStep>(fx).step, 2u);
  fx = Step(s, StepFinished{2, StepResult::kDone, ""});
  EXPECT_EQ(s.state, TxnState::kCommitted);
  // COMMITTED is answered once its record is durable, not before (found by tests/sim: a crash
  // lost the record after the answer, and the restarted saga compensated).
  EXPECT_EQ(Only<LogSaga>(fx).point, SagaLogPoint::kFinal);
  EXPECT_TRUE(Only<LogSaga>(fx).sync);
  EXPECT_EQ(Count<ReplyToClient>(fx), 0);
  fx = Step(s, SagaLogged{SagaLogPoint::kFinal});
  EXPECT_EQ(Count<ReplyToClient>(fx), 1);
  EXPECT_EQ(Count<Forget>(fx), 1);
}

TEST(Saga, ACommittedSagaWhoseFinalRecordFailsIsAnsweredInDoubtAndTheRecordWrittenAgain) {
  SagaTxn s = Started(1);
  Step(s, StepFinished{0, StepResult::kDone, ""});
  auto fx = Step(s, SagaLogFailed{SagaLogPoint::kFinal, "disk full"});
  EXPECT_TRUE(s.final_pending) << "not final until the record lands";
  EXPECT_EQ(Count<ReplyToClient>(fx), 1) << "the client hears IN_DOUBT (OutcomeOf)";
  EXPECT_EQ(Count<Forget>(fx), 0);
  EXPECT_EQ(Only<LogSaga>(fx).point, SagaLogPoint::kFinal);
  EXPECT_TRUE(Only<LogSaga>(fx).sync);
  EXPECT_EQ(Only<LogSaga>(fx).attempt, 1) << "after a backoff";
  EXPECT_EQ(s.log_error, "disk full");
  fx = Step(s, SagaLogFailed{SagaLogPoint::kFinal, "disk still full"});
  EXPECT_EQ(Only<LogSaga>(fx).attempt, 2);
  EXPECT_EQ(Count<ReplyToClient>(fx), 0) << "answered once";
  fx = Step(s, SagaLogged{SagaLogPoint::kFinal});
  EXPECT_FALSE(s.final_pending);
  EXPECT_EQ(s.state, TxnState::kCommitted);
  EXPECT_TRUE(s.log_error.empty());
  EXPECT_EQ(Count<Forget>(fx), 1);
}

TEST(Saga, AStepAnswerForAStepNotSentIsIgnored) {
  SagaTxn s = Started(3);
  EXPECT_TRUE(Step(s, StepFinished{2, StepResult::kDone, ""}).empty());
  EXPECT_TRUE(Step(s, StepFinished{9, StepResult::kDone, ""}).empty());
}

TEST(Saga, AFailureIsLoggedSyncedBeforeAnyCompensation) {
  SagaTxn s = Started(3);
  Step(s, StepFinished{0, StepResult::kDone, ""});
  auto fx = Step(s, StepFinished{1, StepResult::kFailed, "insufficient funds"});
  EXPECT_EQ(s.state, TxnState::kAborting);
  ASSERT_EQ(fx.size(), 1u);
  EXPECT_EQ(std::get<LogSaga>(fx[0]).point, SagaLogPoint::kCompensating);
  EXPECT_TRUE(std::get<LogSaga>(fx[0]).sync);
  EXPECT_NE(s.reason.find("step 1 (participant p1) failed: insufficient funds"), std::string::npos);
}

TEST(Saga, CompensationsRunInReverseOrderIncludingTheFailedStep) {
  SagaTxn s = Started(4);
  Step(s, StepFinished{0, StepResult::kDone, ""});
  Step(s, StepFinished{1, StepResult::kDone, ""});
  Step(s, StepFinished{2, StepResult::kFailed, "no"});
  auto fx = Step(s, SagaLogged{SagaLogPoint::kCompensating});
  EXPECT_EQ(Only<SendCompensation>(fx).step, 2u) << "the failed step may have a copy in flight";
  fx = Step(s, CompensationFinished{2, StepResult::kDone, ""});
  EXPECT_EQ(Only<SendCompensation>(fx).step, 1u);
  fx = Step(s, CompensationFinished{1, StepResult::kDone, ""});
  EXPECT_EQ(Only<SendCompensation>(fx).step, 0u);
  EXPECT_EQ(Count<ReplyToClient>(fx), 0);
  fx = Step(s, CompensationFinished{0, StepResult::kDone, ""});
  EXPECT_EQ(s.state, TxnState::kAborted);
  EXPECT_EQ(Count<ReplyToClient>(fx), 1);
  EXPECT_EQ(s.steps[3].state, BranchState::kActive) << "never sent, never compensated";
  for (int i = 0; i < 3; ++i) EXPECT_EQ(s.steps[i].state, BranchState::kCompensated);
}

TEST(Saga, AFirstStepFailureCompensatesOnlyItself) {
  SagaTxn s = Started(2);
  Step(s, StepFinished{0, StepResult::kFailed, "constraint"});
  auto fx = Step(s, SagaLogged{SagaLogPoint::kCompensating});
  EXPECT_EQ(Only<SendCompensation>(fx).step, 0u);
  fx = Step(s, CompensationFinished{0, StepResult::kDone, "null compensation"});
  EXPECT_EQ(s.state, TxnState::kAborted);
}

TEST(Saga, LostStepAnswersAreRetriedThenCompensated) {
  SagaTxn s = Started(2);
  for (int i = 1; i < kMaxStepAttempts; ++i) {
    auto fx = Step(s, StepFinished{0, StepResult::kUnknown, "unavailable"});
    EXPECT_EQ(Only<SendStep>(fx).attempt, i);
  }
  auto fx = Step(s, StepFinished{0, StepResult::kUnknown, "unavailable"});
  EXPECT_EQ(s.state, TxnState::kAborting);
  EXPECT_EQ(s.steps[0].state, BranchState::kInDoubt);
  fx = Step(s, SagaLogged{SagaLogPoint::kCompensating});
  EXPECT_EQ(Only<SendCompensation>(fx).step, 0u);
}

TEST(Saga, AFailingCompensationIsRetriedThenLeftAsFailedCompensation) {
  SagaTxn s = Started(3);
  Step(s, StepFinished{0, StepResult::kDone, ""});
  Step(s, StepFinished{1, StepResult::kFailed, "no"});
  Step(s, SagaLogged{SagaLogPoint::kCompensating});
  Step(s, CompensationFinished{1, StepResult::kDone, ""});
  for (int i = 1; i < kMaxCompensationAttempts; ++i) {
    auto fx = Step(s, CompensationFinished{0, StepResult::kFailed, "deadlock"});
    EXPECT_EQ(Only<SendCompensation>(fx).attempt, i);
  }
  auto fx = Step(s, CompensationFinished{0, StepResult::kUnknown, "unavailable"});
  EXPECT_EQ(s.state, TxnState::kFailedCompensation);
  EXPECT_EQ(s.steps[0].state, BranchState::kHeuristic);
  EXPECT_TRUE(Only<LogSaga>(fx).sync) << "never forgotten";
  EXPECT_EQ(Count<ReplyToClient>(fx), 0) << "answered once its record is durable";
  EXPECT_NE(s.reason.find("compensation of step 0"), std::string::npos) << s.reason;
  fx = Step(s, SagaLogged{SagaLogPoint::kFinal});
  EXPECT_EQ(Count<ReplyToClient>(fx), 1);
  EXPECT_EQ(Count<Forget>(fx), 1);
}

TEST(Saga, ACompensatingWriteFailureCompensatesNothingUntilTheRecordLands) {
  SagaTxn s = Started(2);
  Step(s, StepFinished{0, StepResult::kDone, ""});
  Step(s, StepFinished{1, StepResult::kFailed, "no"});
  auto fx = Step(s, SagaLogFailed{SagaLogPoint::kCompensating, "disk"});
  EXPECT_EQ(s.state, TxnState::kAborting);
  EXPECT_EQ(Count<SendCompensation>(fx), 0);
  EXPECT_EQ(Count<ReplyToClient>(fx), 1) << "the client hears IN_DOUBT (OutcomeOf)";
  EXPECT_EQ(Only<LogSaga>(fx).point, SagaLogPoint::kCompensating);
  EXPECT_EQ(Only<LogSaga>(fx).attempt, 1);
  EXPECT_TRUE(Step(s, CompensationFinished{1, StepResult::kDone, ""}).empty());
  fx = Step(s, SagaLogged{SagaLogPoint::kCompensating});
  ASSERT_EQ(Count<SendCompensation>(fx), 1);
  EXPECT_EQ(std::get<SendCompensation>(fx[0]).step, 1u) << "the failed step first";
}

TEST(Saga, LateCompensationAnswersAreIgnored) {
  SagaTxn s = Started(2);
  Step(s, StepFinished{0, StepResult::kDone, ""});
  Step(s, StepFinished{1, StepResult::kFailed, "no"});
  EXPECT_TRUE(Step(s, CompensationFinished{1, StepResult::kDone, ""}).empty())
      << "not sent yet: the decision is not durable";
  Step(s, SagaLogged{SagaLogPoint::kCompensating});
  EXPECT_TRUE(Step(s, CompensationFinished{0, StepResult::kDone, ""}).empty()) << "not its turn";
}

TEST(Saga, ResumeForwardResendsTheFirstUnfinishedStep) {
  SagaTxn s = MakeSaga(3);
  s.state = TxnState::kActive;
  s.steps[0].state = BranchState::kCommitted;
  auto fx = ResumeSaga(s);
  EXPECT_EQ(Only<SendStep>(fx).step, 1u);
  EXPECT_GT(Only<SendStep>(fx).attempt, 0);
  fx = Step(s, StepFinished{1, StepResult::kDone, ""});
  EXPECT_EQ(Only<SendStep>(fx).step, 2u);
}

TEST(Saga, ResumeBackwardContinuesBelowTheCompensatedSteps) {
  SagaTxn s = MakeSaga(3);
  s.state = TxnState::kAborting;
  s.compensating_logged = true;
  s.failed_step = 2;
  s.steps[0].state = BranchState::kCommitted;
  s.steps[1].state = BranchState::kCommitted;
  s.steps[2].state = BranchState::kCompensated;
  auto fx = ResumeSaga(s);
  EXPECT_EQ(Only<SendCompensation>(fx).step, 1u);
}

// Found by tests/sim (seed 5254): progress records are not synced, so after a restart a step
// beyond the last durable one may have run; the resumed saga failed at step 1, compensated
// only steps 1 and 0, and step 2's money stayed moved under an ABORTED answer.
TEST(Saga, AResumedSagaCompensatesEveryStepNotJustTheOnesItKnowsWereSent) {
  SagaTxn s = MakeSaga(3);
  s.state = TxnState::kActive;
  s.steps[0].state = BranchState::kCommitted;  // the last durable progress
  ResumeSaga(s);
  auto fx = Step(s, StepFinished{1, StepResult::kFailed, "insufficient funds"});
  ASSERT_EQ(s.state, TxnState::kAborting);
  fx = Step(s, SagaLogged{SagaLogPoint::kCompensating});
  EXPECT_EQ(Only<SendCompensation>(fx).step, 2u) << "step 2 may have run before the crash";
  fx = Step(s, CompensationFinished{2, StepResult::kDone, ""});
  EXPECT_EQ(Only<SendCompensation>(fx).step, 1u);
  fx = Step(s, CompensationFinished{1, StepResult::kDone, ""});
  EXPECT_EQ(Only<SendCompensation>(fx).step, 0u);
}

TEST(Saga, ResumeOfAnUnloggedCompensationDecisionGoesForward) {
  SagaTxn s = MakeSaga(2);
  s.state = TxnState::kAborting;  // the compensating record never became durable
  s.steps[0].state = BranchState::kCommitted;
  s.steps[1].state = BranchState::kAborted;
  auto fx = ResumeSaga(s);
  EXPECT_EQ(s.state, TxnState::kActive);
  EXPECT_EQ(Only<SendStep>(fx).step, 1u);
}

}  // namespace
}  // namespace txn::core
