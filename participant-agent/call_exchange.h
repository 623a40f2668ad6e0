// CallExchange: the agent's side of Participant.Exchange, one long-lived stream from the
// coordinator carrying batches of Prepare / Commit / Rollback / CommitOnePhase calls of many
// transactions.
//
// Each call read is handed to `dispatch`, which runs it on its lane (as the unary methods do)
// and reports its answer; answers are written back in batches: while one write is in flight,
// answers that complete queue up and leave together in the next. The stream ends (Finish) once
// the coordinator has closed its side and every call it sent has been answered. If the stream
// is cancelled (the coordinator went away), running cancellable calls are cancelled too.
//
// Reactor callbacks run on gRPC threads and never block; `dispatch` must not block either.
// Thread-safe; deletes itself when gRPC is done with it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "participant-agent/call_cancellation.h"
#include "txn/v1/participant.pb.h"

namespace txn::agent {

class CallExchange final : public grpc::ServerBidiReactor<v1::CallBatch, v1::AnswerBatch> {
 public:
  using AnswerFn = std::function<void(v1::StreamedAnswer)>;
  // Runs `call` and calls `answer` exactly once, from any thread, with its id already set.
  // `cancellation` is cancelled when the stream is.
  using DispatchFn = std::function<void(std::shared_ptr<const v1::StreamedCall> call,
                                        std::shared_ptr<CallCancellation> cancellation,
                                        AnswerFn answer)>;

  // `on_done` runs when gRPC is done with the stream, just before it deletes itself.
  CallExchange(DispatchFn dispatch, std::function<void(CallExchange*)> on_done);

  // Ends the stream (UNAVAILABLE: the agent is shutting down) once the calls it runs are
  // answered; the coordinator opens a new stream to the next agent. Calls read after this are
  // answered UNAVAILABLE without running.
  void Close();

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  void Answer(uint64_t id, v1::StreamedAnswer answer);
  // Requires mu_ held. Starts a write of every queued answer if none is in flight, or finishes
  // the stream when nothing is left to do; the gRPC call itself is made by the caller after
  // releasing mu_ (returns what to do).
  enum class Next { kNothing, kWrite, kFinish, kFinishClosing };
  Next NextStepLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Do(Next next);

  const DispatchFn dispatch_;
  const std::function<void(CallExchange*)> on_done_;
  v1::CallBatch in_;

  std::mutex mu_;
  // Guarded by mu_.
  v1::AnswerBatch out_ ABSL_GUARDED_BY(mu_);  // being written
  std::vector<v1::StreamedAnswer> queued_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<uint64_t, std::shared_ptr<CallCancellation>> running_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;  // a write failed or the stream was cancelled
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace txn::agent
