#include "coordinator/log/group_commit_log.h"

#include "common/metrics.h"

namespace txn::log {

GroupCommitLog::GroupCommitLog(DecisionLog* log) : log_(log) {
  writer_ = std::thread([this] { WriterLoop(); });
}

GroupCommitLog::~GroupCommitLog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  writer_.join();
}

void GroupCommitLog::Append(DecisionRecord record, bool sync, Done done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(Pending{std::move(record), sync, std::move(done)});
  }
  cv_.notify_one();
}

int64_t GroupCommitLog::batches() const {
  std::lock_guard<std::mutex> lock(mu_);
  return batches_;
}

void GroupCommitLog::WriterLoop() {
  for (;;) {
    std::deque<Pending> batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      batch.swap(queue_);
      ++batches_;
    }
    std::vector<DecisionRecord> records;
    records.reserve(batch.size());
    bool sync = false;
    for (auto& p : batch) {
      records.push_back(std::move(p.record));
      sync = sync || p.sync;
    }
    common::Stopwatch watch;
    absl::Status status = log_->Write(records, sync);
    common::DefaultMetrics()
        .GetHistogram("txcoord_log_write_seconds",
                      "Decision log writes (one batch each; sync=true waits for fsync).",
                      {{"sync", sync ? "true" : "false"}})
        ->Observe(watch.Seconds());
    common::DefaultMetrics()
        .GetHistogram("txcoord_log_batch_records", "Records per decision log write (group commit).",
                      {}, {1, 2, 4, 8, 16, 32, 64, 128, 256, 512})
        ->Observe(static_cast<double>(records.size()));
    if (!status.ok()) {
      common::DefaultMetrics()
          .GetCounter("txcoord_log_write_failures_total", "Decision log writes that failed.")
          ->Inc();
    }
    for (auto& p : batch) p.done(status);
  }
}

}  // namespace txn::log
