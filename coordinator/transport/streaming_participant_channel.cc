#include "coordinator/transport/streaming_participant_channel.h"

#include <algorithm>
#include <chrono>
#include <unordered_map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"

namespace txn::transport {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Calls larger than this go unary: a batch stays well under gRPC's default 4 MiB message limit.
constexpr size_t kMaxStreamedCallBytes = 256 * 1024;
// A batch holds at most this many bytes of calls (the rest waits for the next write).
constexpr size_t kMaxBatchBytes = 1024 * 1024;
constexpr auto kSweepInterval = std::chrono::milliseconds(10);

}  // namespace

class StreamingParticipantChannel::Stream final
    : public grpc::ClientBidiReactor<v1::CallBatch, v1::AnswerBatch>,
      public std::enable_shared_from_this<Stream> {
 public:
  explicit Stream(std::string participant) : participant_(std::move(participant)) {}

  // Opens the Exchange call. The stream keeps itself alive until gRPC is done with it.
  // Calls come from outside reactions (Add), so the stream holds itself open (AddHold) until
  // its read fails; only then may gRPC end it (OnDone), never while an Add may still write.
  void Start(v1::Participant::Stub* stub) {
    self_ = shared_from_this();
    ctx_.set_wait_for_ready(true);
    stub->async()->Exchange(&ctx_, this);
    AddHold();
    StartRead(&in_);
    StartCall();
  }

  // Queues `call` (its id set) with its reply. False when the stream has ended (the caller
  // opens a new one).
  bool Add(v1::StreamedCall call, SteadyClock::time_point deadline, AnswerReply done) {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return false;
    pending_.emplace(call.id(), Pending{deadline, SteadyClock::now(), std::move(done)});
    outbox_.push_back(std::move(call));
    // Under mu_, so that the write is started before a failed read can release the hold (a
    // write's completion is never run inline from StartWrite).
    if (NextBatchLocked()) StartWrite(&out_);
    return true;
  }

  // Fails the calls past their deadline with DEADLINE_EXCEEDED. If one of them was queued
  // after the last answer the stream delivered, nothing came back for a whole timeout: the
  // stream is presumed dead and cancelled.
  void Expire(SteadyClock::time_point now) {
    std::vector<AnswerReply> expired;
    bool silent = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto it = pending_.begin(); it != pending_.end();) {
        if (it->second.deadline <= now) {
          silent = silent || it->second.queued > last_answer_;
          expired.push_back(std::move(it->second.done));
          it = pending_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& done : expired) {
      done(absl::DeadlineExceededError(
          absl::StrCat("participant ", participant_, ": no answer before the call's deadline")));
    }
    if (silent) ctx_.TryCancel();
  }

  void Cancel() { ctx_.TryCancel(); }

  // Waits until gRPC is done with the stream (at most `timeout`).
  void WaitEnded(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    ended_cv_.wait_for(lock, timeout, [this] { return done_; });
  }

  bool ended() {
    std::lock_guard<std::mutex> lock(mu_);
    return closed_;
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the stream is ending: no more Adds, then let gRPC finish it (OnDone)
      {
        std::lock_guard<std::mutex> lock(mu_);
        closed_ = true;
      }
      RemoveHold();
      return;
    }
    std::vector<std::pair<AnswerReply, v1::StreamedAnswer>> answered;
    {
      std::lock_guard<std::mutex> lock(mu_);
      last_answer_ = SteadyClock::now();
      for (v1::StreamedAnswer& a : *in_.mutable_answers()) {
        auto it = pending_.find(a.id());
        if (it == pending_.end()) continue;  // expired already
        answered.emplace_back(std::move(it->second.done), std::move(a));
        pending_.erase(it);
      }
    }
    in_.Clear();
    StartRead(&in_);
    for (auto& [done, a] : answered) {
      if (a.code() != 0) {
        done(absl::Status(static_cast<absl::StatusCode>(a.code()),
                          absl::StrCat("participant ", participant_, ": ", a.message())));
      } else {
        done(std::move(a));
      }
    }
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    if (ok && NextBatchLocked()) StartWrite(&out_);
  }

  void OnDone(const grpc::Status& status) override {
    std::shared_ptr<Stream> keep = std::move(self_);  // `this` lives until the end of OnDone
    std::unordered_map<uint64_t, Pending> failed;
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
      ended_ = true;
      done_status_ = status;
      failed.swap(pending_);
      outbox_.clear();
    }
    const absl::Status s = status.error_code() == grpc::StatusCode::UNIMPLEMENTED
                               ? absl::UnimplementedError("the agent has no Exchange stream")
                               : absl::UnavailableError(absl::StrCat(
                                     "participant ", participant_, ": stream ended: ",
                                     status.ok() ? "closed" : status.error_message()));
    for (auto& [id, p] : failed) p.done(s);
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    ended_cv_.notify_all();
  }

  grpc::StatusCode final_code() {
    std::lock_guard<std::mutex> lock(mu_);
    return done_status_.error_code();
  }

 private:
  struct Pending {
    SteadyClock::time_point deadline;
    SteadyClock::time_point queued;
    AnswerReply done;
  };

  // Requires mu_. Moves queued calls (still awaited) into out_ if no write is in flight; true
  // when the caller must StartWrite(&out_) after releasing mu_.
  bool NextBatchLocked() {
    if (writing_ || closed_ || outbox_.empty()) return false;
    out_.Clear();
    size_t bytes = 0;
    size_t taken = 0;
    for (; taken < outbox_.size(); ++taken) {
      v1::StreamedCall& c = outbox_[taken];
      if (pending_.find(c.id()) == pending_.end()) continue;  // expired: not worth sending
      // The agent is told the time left now, not the call's whole timeout.
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          pending_.find(c.id())->second.deadline - SteadyClock::now());
      c.set_timeout_ms(std::max<int64_t>(1, left.count()));
      const size_t size = c.ByteSizeLong();
      if (out_.calls_size() > 0 && bytes + size > kMaxBatchBytes) break;
      bytes += size;
      *out_.add_calls() = std::move(c);
    }
    outbox_.erase(outbox_.begin(), outbox_.begin() + static_cast<std::ptrdiff_t>(taken));
    if (out_.calls_size() == 0) return false;
    writing_ = true;
    return true;
  }

  const std::string participant_;
  grpc::ClientContext ctx_;
  v1::AnswerBatch in_;
  v1::CallBatch out_;  // being written; touched only when no write is in flight
  std::shared_ptr<Stream> self_;

  std::mutex mu_;
  std::condition_variable ended_cv_;
  // Guarded by mu_.
  std::unordered_map<uint64_t, Pending> pending_;
  std::vector<v1::StreamedCall> outbox_;
  SteadyClock::time_point last_answer_ = SteadyClock::now();
  bool writing_ = false;
  bool closed_ = false;  // the read failed: the stream is ending and takes no more calls
  bool ended_ = false;
  bool done_ = false;
  grpc::Status done_status_;
};

StreamingParticipantChannel::StreamingParticipantChannel(
    std::string name, std::string address, const std::optional<common::TlsConfig>& tls)
    : channel_(GrpcParticipantChannel::Connect(address, tls, name)),
      unary_(std::move(name), std::move(address), channel_),
      stub_(v1::Participant::NewStub(channel_)) {
  sweeper_ = std::thread([this] { SweepLoop(); });
}

StreamingParticipantChannel::~StreamingParticipantChannel() {
  std::shared_ptr<Stream> stream;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    stream = stream_;
  }
  cv_.notify_all();
  sweeper_.join();
  if (stream) {
    stream->Cancel();
    stream->WaitEnded(std::chrono::seconds(5));
  }
}

void StreamingParticipantChannel::SweepLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, kSweepInterval, [this] { return stopping_; });
    std::shared_ptr<Stream> stream = stream_;
    lock.unlock();
    if (stream) stream->Expire(SteadyClock::now());
    lock.lock();
  }
}

bool StreamingParticipantChannel::Streamable(const google::protobuf::Message& req) const {
  return !unsupported_.load() && req.ByteSizeLong() <= kMaxStreamedCallBytes;
}

void StreamingParticipantChannel::Send(v1::StreamedCall call, int64_t timeout_ms,
                                       AnswerReply done) {
  call.set_timeout_ms(timeout_ms);
  const auto deadline = SteadyClock::now() + std::chrono::milliseconds(timeout_ms);
  // Learns, from a stream's end, that the agent has no Exchange: later calls go unary.
  AnswerReply reply = [this, done = std::move(done)](absl::StatusOr<v1::StreamedAnswer> a) {
    if (a.status().code() == absl::StatusCode::kUnimplemented &&
        a.status().message() == "the agent has no Exchange stream") {
      unsupported_.store(true);
      done(absl::UnavailableError(absl::StrCat("participant ", unary_.name(),
                                               ": retry as a unary call (no Exchange stream)")));
      return;
    }
    done(std::move(a));
  };
  for (;;) {
    std::shared_ptr<Stream> stream;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!stream_ || stream_->ended()) {
        stream_ = std::make_shared<Stream>(unary_.name());
        stream_->Start(stub_.get());
      }
      stream = stream_;
      call.set_id(next_id_++);
    }
    if (stream->Add(call, deadline, reply)) return;
    // It ended between the check and Add: try the next one.
  }
}

namespace {

// The typed answer inside a StreamedAnswer, or the call's status.
template <typename Resp>
Reply<v1::StreamedAnswer> Typed(Reply<Resp> done, Resp* (v1::StreamedAnswer::*field)()) {
  return [done = std::move(done), field](absl::StatusOr<v1::StreamedAnswer> a) {
    if (!a.ok()) return done(a.status());
    done(std::move(*((*a).*field)()));
  };
}

}  // namespace

void StreamingParticipantChannel::Prepare(const v1::PrepareBranchRequest& req, int64_t timeout_ms,
                                          Reply<v1::PrepareBranchResponse> done) {
  if (!Streamable(req)) return unary_.Prepare(req, timeout_ms, std::move(done));
  v1::StreamedCall call;
  *call.mutable_prepare() = req;
  Send(std::move(call), timeout_ms,
       Typed<v1::PrepareBranchResponse>(std::move(done), &v1::StreamedAnswer::mutable_prepare));
}

void StreamingParticipantChannel::Commit(const v1::CommitBranchRequest& req, int64_t timeout_ms,
                                         Reply<v1::CommitBranchResponse> done) {
  if (!Streamable(req)) return unary_.Commit(req, timeout_ms, std::move(done));
  v1::StreamedCall call;
  *call.mutable_commit() = req;
  Send(std::move(call), timeout_ms,
       Typed<v1::CommitBranchResponse>(std::move(done), &v1::StreamedAnswer::mutable_commit));
}

void StreamingParticipantChannel::Rollback(const v1::RollbackBranchRequest& req,
                                           int64_t timeout_ms,
                                           Reply<v1::RollbackBranchResponse> done) {
  if (!Streamable(req)) return unary_.Rollback(req, timeout_ms, std::move(done));
  v1::StreamedCall call;
  *call.mutable_rollback() = req;
  Send(std::move(call), timeout_ms,
       Typed<v1::RollbackBranchResponse>(std::move(done), &v1::StreamedAnswer::mutable_rollback));
}

void StreamingParticipantChannel::CommitOnePhase(const v1::CommitOnePhaseRequest& req,
                                                 int64_t timeout_ms,
                                                 Reply<v1::CommitOnePhaseResponse> done) {
  if (!Streamable(req)) return unary_.CommitOnePhase(req, timeout_ms, std::move(done));
  v1::StreamedCall call;
  *call.mutable_commit_one_phase() = req;
  Send(std::move(call), timeout_ms,
       Typed<v1::CommitOnePhaseResponse>(
           std::move(done), &v1::StreamedAnswer::mutable_commit_one_phase));
}

}  // namespace txn::transport
