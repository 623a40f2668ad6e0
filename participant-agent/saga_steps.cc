#include "participant-agent/saga_steps.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "participant-agent/branch_registry.h"

namespace txn::agent {
namespace {

constexpr char kAction[] = "action";
constexpr char kCompensation[] = "compensation";

absl::Status CheckOperations(const google::protobuf::RepeatedPtrField<v1::Operation>& ops) {
  if (ops.size() > 1000) return absl::InvalidArgumentError("operations has more than 1000 entries");
  return absl::OkStatus();
}

absl::Status NoSagas() {
  return absl::UnimplementedError("this participant does not run saga steps");
}

// The session's saga capability; UNIMPLEMENTED (and the session rolled back) without one.
absl::StatusOr<SagaSession*> SagaOf(BranchSession& session) {
  SagaSession* saga = session.saga();
  if (saga == nullptr) {
    (void)session.RollbackLocal();
    return NoSagas();
  }
  return saga;
}

}  // namespace

absl::Status SagaSteps::EnsureBarrier() {
  std::lock_guard<std::mutex> lock(barrier_mu_);
  if (barrier_ready_) return absl::OkStatus();
  SagaBarrierStore* store = adapter_->saga_barrier();
  if (store == nullptr) return NoSagas();
  TXN_RETURN_IF_ERROR(store->EnsureSagaBarrier());
  barrier_ready_ = true;
  return absl::OkStatus();
}

absl::StatusOr<std::string> SagaSteps::Run(
    BranchSession& session, const google::protobuf::RepeatedPtrField<v1::Operation>& ops) {
  for (int i = 0; i < ops.size(); ++i) {
    absl::StatusOr<v1::Operation> op = ResolveOperation(statements_, ops[i]);
    if (!op.ok()) return absl::StrCat("operations[", i, "]: ", op.status().message());
    absl::StatusOr<v1::ExecuteResult> r = session.Execute(*op);
    if (!r.ok()) {
      if (r.status().code() == absl::StatusCode::kUnavailable) return r.status();
      return absl::StrCat("operations[", i, "]: ", r.status().message());
    }
    if (std::string why = ExpectationFailure(ops[i], *r); !why.empty()) {
      return absl::StrCat("operations[", i, "]: ", why);
    }
  }
  return std::string();
}

absl::StatusOr<v1::ExecuteLocalResponse> SagaSteps::ExecuteLocal(
    const v1::ExecuteLocalRequest& req) {
  TXN_ASSIGN_OR_RETURN(std::string gid, GidOf(req.ref()));
  TXN_RETURN_IF_ERROR(CheckOperations(req.operations()));
  TXN_RETURN_IF_ERROR(EnsureBarrier());
  TXN_ASSIGN_OR_RETURN(std::unique_ptr<BranchSession> session, adapter_->Begin(gid));
  TXN_ASSIGN_OR_RETURN(SagaSession * saga, SagaOf(*session));
  v1::ExecuteLocalResponse resp;
  TXN_ASSIGN_OR_RETURN(bool first, saga->InsertBarrier(gid, kAction, kAction));
  if (!first) {
    TXN_ASSIGN_OR_RETURN(std::string origin, saga->BarrierOrigin(gid, kAction));
    (void)session->RollbackLocal();
    if (origin == kCompensation) {
      resp.set_result(v1::LOCAL_RESULT_REFUSED);
      resp.set_reason("the step's compensation ran first; the step will not run");
    } else {
      resp.set_result(v1::LOCAL_RESULT_DONE);
      resp.set_already_done(true);
    }
    return resp;
  }
  TXN_ASSIGN_OR_RETURN(std::string failure, Run(*session, req.operations()));
  if (!failure.empty()) {
    (void)session->RollbackLocal();
    resp.set_result(v1::LOCAL_RESULT_FAILED);
    resp.set_reason(failure);
    return resp;
  }
  absl::Status committed = saga->Commit();
  if (committed.code() == absl::StatusCode::kUnavailable) return committed;
  if (!committed.ok()) {
    resp.set_result(v1::LOCAL_RESULT_FAILED);
    resp.set_reason(absl::StrCat("commit: ", committed.message()));
    return resp;
  }
  resp.set_result(v1::LOCAL_RESULT_DONE);
  return resp;
}

absl::StatusOr<v1::CompensateResponse> SagaSteps::Compensate(const v1::CompensateRequest& req) {
  TXN_ASSIGN_OR_RETURN(std::string gid, GidOf(req.ref()));
  TXN_RETURN_IF_ERROR(CheckOperations(req.operations()));
  TXN_RETURN_IF_ERROR(EnsureBarrier());
  TXN_ASSIGN_OR_RETURN(std::unique_ptr<BranchSession> session, adapter_->Begin(gid));
  TXN_ASSIGN_OR_RETURN(SagaSession * saga, SagaOf(*session));
  v1::CompensateResponse resp;
  // First the step's row: if this inserts it, the step never ran here, and now never will.
  TXN_ASSIGN_OR_RETURN(bool step_never_ran, saga->InsertBarrier(gid, kAction, kCompensation));
  TXN_ASSIGN_OR_RETURN(bool first, saga->InsertBarrier(gid, kCompensation, kCompensation));
  if (!first) {
    (void)session->RollbackLocal();
    resp.set_result(v1::LOCAL_RESULT_DONE);
    resp.set_already_done(true);
    return resp;
  }
  if (!step_never_ran) {
    TXN_ASSIGN_OR_RETURN(std::string failure, Run(*session, req.operations()));
    if (!failure.empty()) {
      (void)session->RollbackLocal();
      resp.set_result(v1::LOCAL_RESULT_FAILED);
      resp.set_reason(failure);
      return resp;
    }
  }
  absl::Status committed = saga->Commit();
  if (committed.code() == absl::StatusCode::kUnavailable) return committed;
  if (!committed.ok()) {
    resp.set_result(v1::LOCAL_RESULT_FAILED);
    resp.set_reason(absl::StrCat("commit: ", committed.message()));
    return resp;
  }
  resp.set_result(v1::LOCAL_RESULT_DONE);
  resp.set_null_compensation(step_never_ran);
  return resp;
}

}  // namespace txn::agent
