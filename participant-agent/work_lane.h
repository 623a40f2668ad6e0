// WorkLane: a bounded queue of tasks served by worker threads of its own.
//
// txagent runs no database work on gRPC's threads: the callback API serves every call of the
// process on a small shared pool, and a handler that waits for a row lock would hold a thread
// that the Commit releasing that lock needs. Each kind of call gets a lane instead (see
// participant_service.h): new work (Begin, Execute, Prepare, ...) on one lane sized by the
// agent's connection budget, Commit/Rollback of decided branches on a lane of its own so that
// they never queue behind work that is waiting for locks, and 3PC termination / in-doubt
// listing on a third.
//
// Written by hand rather than taken from a library: what is needed is small (a FIFO, N threads,
// a bound that refuses instead of blocking) and no thread pool in Debian's archive for C++
// offers "refuse when full" with per-lane metrics.
//
// Thread-safe. The destructor stops taking tasks, runs every task already queued, and joins the
// workers.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "common/metrics.h"

namespace txn::agent {

struct WorkLaneOptions {
  std::string name;        // for metrics and errors, e.g. "work"
  int workers = 1;         // threads serving the lane
  int max_queued = 1;      // tasks that may wait for a worker; one more is refused
  std::string limit_hint;  // names the flags behind the limits, for the refusal's message
};

class WorkLane {
 public:
  explicit WorkLane(WorkLaneOptions options);
  ~WorkLane();
  WorkLane(const WorkLane&) = delete;
  WorkLane& operator=(const WorkLane&) = delete;

  // Queues `task` to run on one of the lane's workers. RESOURCE_EXHAUSTED naming the limit when
  // every worker is busy and `max_queued` tasks already wait (the task is not run then);
  // UNAVAILABLE once the lane is shutting down.
  [[nodiscard]] absl::Status Submit(std::function<void()> task);

  // Records how long a task waited for a worker (txagent_lane_wait_seconds{lane}).
  void RecordWait(double seconds) { wait_->Observe(seconds); }

  // Tasks waiting for a worker, and workers running a task now.
  int queued() const;
  int busy() const;
  const std::string& name() const { return options_.name; }

 private:
  void WorkerLoop();

  const WorkLaneOptions options_;
  common::Histogram* const wait_;
  std::vector<std::thread> workers_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  // Guarded by mu_.
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  int busy_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace txn::agent
