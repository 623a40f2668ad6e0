#include "participant-agent/call_exchange.h"

#include "absl/status/status.h"

namespace txn::agent {

CallExchange::CallExchange(DispatchFn dispatch, std::function<void(CallExchange*)> on_done)
    : dispatch_(std::move(dispatch)), on_done_(std::move(on_done)) {
  StartRead(&in_);
}

void CallExchange::Close() {
  Next next;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closing_ = true;
    next = NextStepLocked();
  }
  Do(next);
}

void CallExchange::OnReadDone(bool ok) {
  if (!ok) {  // the coordinator closed its side, or the stream broke
    Next next;
    {
      std::lock_guard<std::mutex> lock(mu_);
      reads_done_ = true;
      next = NextStepLocked();
    }
    Do(next);
    return;
  }
  std::vector<std::pair<std::shared_ptr<const v1::StreamedCall>, std::shared_ptr<CallCancellation>>>
      calls;
  Next next = Next::kNothing;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_) {
      // Finish was called (Close) while this read was pending: nothing more is read or run;
      // the coordinator fails these calls when the stream ends.
      in_.Clear();
      return;
    }
    if (closing_) {
      // Shutting down: answered at once, not run (the coordinator retries elsewhere or later).
      for (const v1::StreamedCall& c : in_.calls()) {
        v1::StreamedAnswer a;
        a.set_id(c.id());
        a.set_code(static_cast<int>(absl::StatusCode::kUnavailable));
        a.set_message("the agent is shutting down");
        if (!broken_) queued_.push_back(std::move(a));
      }
      in_.Clear();
      next = NextStepLocked();
    }
    for (v1::StreamedCall& c : *in_.mutable_calls()) {
      auto call = std::make_shared<v1::StreamedCall>(std::move(c));
      auto cancellation = std::make_shared<CallCancellation>();
      if (broken_ || closing_) cancellation->Cancel();
      running_[call->id()] = cancellation;
      calls.emplace_back(std::move(call), std::move(cancellation));
    }
  }
  in_.Clear();
  if (next == Next::kFinish || next == Next::kFinishClosing) {
    Do(next);  // no read after Finish
    return;
  }
  // Reading on before dispatching would let in_ be overwritten; calls are already moved out.
  StartRead(&in_);
  Do(next);
  for (auto& [call, cancellation] : calls) {
    const uint64_t id = call->id();
    dispatch_(call, cancellation, [this, id](v1::StreamedAnswer a) { Answer(id, std::move(a)); });
  }
}

void CallExchange::Answer(uint64_t id, v1::StreamedAnswer answer) {
  answer.set_id(id);
  Next next;
  {
    std::lock_guard<std::mutex> lock(mu_);
    running_.erase(id);
    if (!broken_) queued_.push_back(std::move(answer));
    next = NextStepLocked();
  }
  Do(next);
}

void CallExchange::OnWriteDone(bool ok) {
  Next next;
  {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    if (!ok) {
      broken_ = true;
      queued_.clear();
    }
    next = NextStepLocked();
  }
  Do(next);
}

void CallExchange::OnCancel() {
  std::vector<std::shared_ptr<CallCancellation>> running;
  {
    std::lock_guard<std::mutex> lock(mu_);
    broken_ = true;
    queued_.clear();
    for (auto& [id, c] : running_) running.push_back(c);
  }
  for (auto& c : running) c->Cancel();
}

void CallExchange::OnDone() {
  if (on_done_) on_done_(this);
  delete this;
}

CallExchange::Next CallExchange::NextStepLocked() {
  if (finished_ || writing_) return Next::kNothing;
  if (!queued_.empty() && !broken_) {
    out_.Clear();
    for (auto& a : queued_) *out_.add_answers() = std::move(a);
    queued_.clear();
    writing_ = true;
    return Next::kWrite;
  }
  if ((reads_done_ || closing_) && running_.empty()) {
    finished_ = true;
    return closing_ && !reads_done_ ? Next::kFinishClosing : Next::kFinish;
  }
  return Next::kNothing;
}

void CallExchange::Do(Next next) {
  // out_ is only touched again after OnWriteDone, so it may be passed without mu_.
  if (next == Next::kWrite) StartWrite(&out_);
  if (next == Next::kFinish) Finish(grpc::Status::OK);
  if (next == Next::kFinishClosing) {
    Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the agent is shutting down"));
  }
}

}  // namespace txn::agent
