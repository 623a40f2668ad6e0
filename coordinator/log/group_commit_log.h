// GroupCommitLog: the real DecisionWriter. It lets many transactions wait for their decision
// record without blocking a thread each, and makes records that arrive together share one synced
// write (group commit).
//
// Append() queues a record and returns at once; a single writer thread takes everything queued,
// writes it as one batch (synced if any record in it asked for sync), then runs each record's
// callback with the batch's status. Callbacks run on the writer thread and must not block.
// Thread-safe. The destructor writes what is queued, then stops.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "coordinator/log/decision_log.h"
#include "coordinator/log/decision_writer.h"

namespace txn::log {

class GroupCommitLog final : public DecisionWriter {
 public:
  explicit GroupCommitLog(DecisionLog* log);
  ~GroupCommitLog() override;
  GroupCommitLog(const GroupCommitLog&) = delete;
  GroupCommitLog& operator=(const GroupCommitLog&) = delete;

  void Append(DecisionRecord record, bool sync, Done done) override;

  // Number of batches written so far.
  int64_t batches() const;

 private:
  struct Pending {
    DecisionRecord record;
    bool sync;
    Done done;
  };
  void WriterLoop();

  DecisionLog* const log_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;  // guarded by mu_
  bool stopping_ = false;      // guarded by mu_
  int64_t batches_ = 0;        // guarded by mu_
  std::thread writer_;
};

}  // namespace txn::log
