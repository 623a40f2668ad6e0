#include "coordinator/driver/saga_driver.h"

#include <type_traits>

#include "absl/strings/str_cat.h"
#include "common/failpoint.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "coordinator/driver/proto_mapping.h"

namespace txn::driver {

struct SagaContext {
  std::mutex mu;
  core::SagaTxn saga ABSL_GUARDED_BY(mu);
  std::vector<v1::Branch> steps;  // the request's, fixed
  std::vector<OutcomeReply> waiters ABSL_GUARDED_BY(mu);
  TxnTimes times ABSL_GUARDED_BY(mu);
  RequestIdentity identity;
};

template class ProtocolDriverBase<SagaDriver, SagaContext>;

namespace {

// A call refused before anything ran (bad request, a participant that cannot run saga steps).
bool RefusedBeforeRunning(const absl::Status& s) {
  return s.code() == absl::StatusCode::kInvalidArgument ||
         s.code() == absl::StatusCode::kFailedPrecondition ||
         s.code() == absl::StatusCode::kUnimplemented;
}

}  // namespace

SagaDriver::SagaDriver(ProtocolDriverDeps deps) : ProtocolDriverBase(std::move(deps)) {}

SagaDriver::~SagaDriver() { lifetime_.Close(); }

void SagaDriver::Start(const std::string& txn_id, const v1::RunRequest& req,
                       RequestIdentity identity, OutcomeReply reply) {
  auto ctx = std::make_shared<SagaContext>();
  ctx->steps.assign(req.branches().begin(), req.branches().end());
  ctx->identity = std::move(identity);
  {
    std::lock_guard<std::mutex> lock(ctx->mu);
    ctx->saga.id = txn_id;
    for (const auto& b : req.branches()) {
      ctx->saga.steps.push_back(core::BranchStatus{.participant = b.participant()});
    }
    ctx->times.created_unix_ms = deps_.clock->NowUnixMs();
    ctx->waiters.push_back(std::move(reply));
  }
  active_.Insert(txn_id, ctx);
  Dispatch(ctx, core::SagaStart{});
}

void SagaDriver::Resume(const log::DecisionRecord& record) {
  auto ctx = std::make_shared<SagaContext>();
  ctx->steps.assign(record.saga_steps().begin(), record.saga_steps().end());
  ctx->identity = RequestIdentity::FromRecord(record);
  std::vector<Action> actions;
  {
    std::lock_guard<std::mutex> lock(ctx->mu);
    ctx->saga = SagaFromRecord(record);
    ctx->times = {record.created_unix_ms(), record.decided_unix_ms()};
    active_.Insert(ctx->saga.id, ctx);
    common::LogInfo(
        absl::StrCat("txn=", ctx->saga.id, " recovery: saga ",
                     ctx->saga.state == core::TxnState::kAborting ? "compensating" : "forward",
                     ", taking it up"));
    actions = Plan(ctx, core::ResumeSaga(ctx->saga));
  }
  for (auto& a : actions) a();
}

v1::Transaction SagaDriver::ShownAs(const SagaContext& ctx) {
  v1::Transaction t = TransactionOf(ctx.saga, ctx.times);
  t.set_owner(ctx.identity.owner);
  return t;
}

std::optional<v1::Outcome> SagaDriver::AnsweredWith(const SagaContext& ctx) {
  return ctx.saga.client_answered ? std::optional(OutcomeOf(ctx.saga)) : std::nullopt;
}

void SagaDriver::Dispatch(const std::shared_ptr<SagaContext>& ctx, const core::SagaEvent& event) {
  PlanThenAct(ctx->mu, [&] { return Plan(ctx, core::Step(ctx->saga, event)); });
}

std::vector<Action> SagaDriver::Plan(const std::shared_ptr<SagaContext>& ctx,
                                                 const std::vector<core::SagaEffect>& effects) {
  std::vector<Action> actions;
  core::SagaTxn& saga = ctx->saga;
  for (const auto& effect : effects) {
    std::visit(
        [&](const auto& e) {
          using E = std::decay_t<decltype(e)>;
          if constexpr (std::is_same_v<E, core::LogSaga>) {
            if (e.point == core::SagaLogPoint::kFinal && ctx->times.decided_unix_ms == 0) {
              ctx->times.decided_unix_ms = deps_.clock->NowUnixMs();  // not again on a retry
            }
            log::DecisionRecord record = SagaRecordOf(saga, ctx->steps, ctx->times);
            ctx->identity.WriteTo(&record);
            if (e.point == core::SagaLogPoint::kFinal) {
              record.set_done(true);
              record.set_done_unix_ms(deps_.clock->NowUnixMs());
            }
            const core::SagaLogPoint point = e.point;
            auto on_written = lifetime_.Wrap(
                std::function<void(absl::Status)>([this, ctx, point](absl::Status s) {
                  if (!s.ok()) {
                    if (deps_.on_log_failure) deps_.on_log_failure(s);
                    return Dispatch(ctx, core::SagaLogFailed{point, std::string(s.message())});
                  }
                  Dispatch(ctx, core::SagaLogged{point});
                }));
            // A write that failed is tried again after the retry backoff.
            actions.push_back([this, record = std::move(record), sync = e.sync, on_written,
                               attempt = e.attempt]() mutable {
              Later(0, attempt, [this, record = std::move(record), sync, on_written]() mutable {
                deps_.group_log->Append(std::move(record), sync, on_written);
              });
            });
          } else if constexpr (std::is_same_v<E, core::SendStep>) {
            v1::ExecuteLocalRequest req;
            req.mutable_ref()->set_txn_id(saga.id);
            req.mutable_ref()->set_branch(e.step);
            *req.mutable_operations() = ctx->steps[e.step].operations();
            transport::ParticipantChannel* ch =
                deps_.participants->Find(saga.steps[e.step].participant);
            const uint32_t k = e.step;
            auto on_reply =
                lifetime_.Wrap(std::function<void(absl::StatusOr<v1::ExecuteLocalResponse>)>(
                    [this, ctx, k](absl::StatusOr<v1::ExecuteLocalResponse> r) {
                      if (!r.ok()) {
                        const auto result = RefusedBeforeRunning(r.status())
                                                ? core::StepResult::kFailed
                                                : core::StepResult::kUnknown;
                        return Dispatch(
                            ctx, core::StepFinished{k, result, std::string(r.status().message())});
                      }
                      switch (r->result()) {
                        case v1::LOCAL_RESULT_DONE:
                          return Dispatch(ctx, core::StepFinished{k, core::StepResult::kDone, ""});
                        case v1::LOCAL_RESULT_REFUSED:
                          return Dispatch(
                              ctx, core::StepFinished{k, core::StepResult::kFailed,
                                                      absl::StrCat("refused: ", r->reason())});
                        default:
                          return Dispatch(
                              ctx, core::StepFinished{k, core::StepResult::kFailed, r->reason()});
                      }
                    }));
            const int64_t timeout = deps_.rpc_timeout_ms;
            actions.push_back(
                [this, ch, req = std::move(req), on_reply, timeout, attempt = e.attempt] {
                  Later(0, attempt, [ch, req, on_reply, timeout] {
                    // A crash here: the step may or may not have been sent; recovery re-sends it
                    // and the barrier runs it at most once.
                    (void)common::Failpoint("coord.saga_before_step");
                    ch->ExecuteLocal(req, timeout, on_reply);
                  });
                });
          } else if constexpr (std::is_same_v<E, core::SendCompensation>) {
            v1::CompensateRequest req;
            req.mutable_ref()->set_txn_id(saga.id);
            req.mutable_ref()->set_branch(e.step);
            *req.mutable_operations() = ctx->steps[e.step].compensations();
            transport::ParticipantChannel* ch =
                deps_.participants->Find(saga.steps[e.step].participant);
            const uint32_t j = e.step;
            auto on_reply =
                lifetime_.Wrap(std::function<void(absl::StatusOr<v1::CompensateResponse>)>(
                    [this, ctx, j](absl::StatusOr<v1::CompensateResponse> r) {
                      if (r.status().code() == absl::StatusCode::kUnimplemented) {
                        // The participant runs no saga steps (MongoDB): its step never ran.
                        return Dispatch(ctx,
                                        core::CompensationFinished{
                                            j, core::StepResult::kDone,
                                            "the participant runs no saga steps: nothing to undo"});
                      }
                      if (!r.ok()) {
                        const auto result = RefusedBeforeRunning(r.status())
                                                ? core::StepResult::kFailed
                                                : core::StepResult::kUnknown;
                        return Dispatch(ctx, core::CompensationFinished{
                                                 j, result, std::string(r.status().message())});
                      }
                      if (r->result() == v1::LOCAL_RESULT_DONE) {
                        return Dispatch(ctx, core::CompensationFinished{
                                                 j, core::StepResult::kDone,
                                                 r->null_compensation()
                                                     ? "the step never ran here: nothing to undo"
                                                     : ""});
                      }
                      Dispatch(ctx, core::CompensationFinished{j, core::StepResult::kFailed,
                                                               r->reason()});
                    }));
            const int64_t timeout = deps_.rpc_timeout_ms;
            actions.push_back(
                [this, ch, req = std::move(req), on_reply, timeout, attempt = e.attempt] {
                  Later(0, attempt, [ch, req, on_reply, timeout] {
                    // A crash here: the decision to compensate is durable; recovery goes on
                    // backward.
                    (void)common::Failpoint("coord.saga_before_compensation");
                    ch->Compensate(req, timeout, on_reply);
                  });
                });
          } else if constexpr (std::is_same_v<E, core::ReplyToClient>) {
            actions.push_back(AnswerWaiters(&ctx->waiters, OutcomeOf(saga)));
          } else if constexpr (std::is_same_v<E, core::Forget>) {
            if (saga.state == core::TxnState::kFailedCompensation) {
              common::LogError(
                  absl::StrCat("txn=", saga.id,
                               " FAILED_COMPENSATION: an operator must finish it: ", saga.reason));
            }
            v1::Transaction finished = TransactionOf(saga, ctx->times);
            finished.set_owner(ctx->identity.owner);
            actions.push_back(Forget(std::move(finished)));
          }
        },
        effect);
  }
  return actions;
}

}  // namespace txn::driver
