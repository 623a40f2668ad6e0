#include "participant-agent/work_lane.h"

#include "absl/strings/str_cat.h"
#include "common/metrics.h"

namespace txn::agent {

WorkLane::WorkLane(WorkLaneOptions options)
    : options_(std::move(options)),
      wait_(common::DefaultMetrics().GetHistogram(
          "txagent_lane_wait_seconds", "How long calls waited for a worker, by lane.",
          {{"lane", options_.name}},
          {0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 1, 10})) {
  const int n = options_.workers < 1 ? 1 : options_.workers;
  workers_.reserve(n);
  for (int i = 0; i < n; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

WorkLane::~WorkLane() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

absl::Status WorkLane::Submit(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      return absl::UnavailableError(absl::StrCat("the agent is shutting down (", options_.name,
                                                 " lane closed)"));
    }
    const bool worker_free = busy_ + static_cast<int>(queue_.size()) <
                             static_cast<int>(workers_.size());
    if (!worker_free && static_cast<int>(queue_.size()) >= options_.max_queued) {
      common::DefaultMetrics()
          .GetCounter("txagent_lane_refused_total",
                      "Calls refused because their lane's workers and queue were full.",
                      {{"lane", options_.name}})
          ->Inc();
      return absl::ResourceExhaustedError(absl::StrCat(
          "the agent's ", options_.name, " lane is full: ", workers_.size(),
          " calls running and ", queue_.size(), " queued (", options_.limit_hint, ")"));
    }
    queue_.push_back(std::move(task));
  }
  cv_.notify_one();
  return absl::OkStatus();
}

int WorkLane::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(queue_.size());
}

int WorkLane::busy() const {
  std::lock_guard<std::mutex> lock(mu_);
  return busy_;
}

void WorkLane::WorkerLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and everything queued has run
    std::function<void()> task = std::move(queue_.front());
    queue_.pop_front();
    ++busy_;
    lock.unlock();
    task();
    lock.lock();
    --busy_;
  }
}

}  // namespace txn::agent
