// Metrics in the Prometheus text exposition format (version 0.0.4): counters, gauges and
// histograms with labels, rendered for GET /metrics (see metrics_server.h).
//
// Written here because Debian 12 packages no Prometheus client library for C++
// (prometheus-cpp is not in the archive) and what is needed is small: lock-free updates on the
// hot path (atomics), a mutex only when a new label set first appears and when rendering.
//
// One process-wide registry, DefaultMetrics(): metrics are output only, and plumbing a registry
// through every layer would buy nothing. Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace txn::common {

using Labels = std::map<std::string, std::string>;

class Counter {
 public:
  void Inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void Observe(double v);
  const std::vector<double>& upper_bounds() const { return bounds_; }
  // Cumulative counts per bucket (the last is +Inf = count), and the sum.
  std::vector<uint64_t> CumulativeCounts() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // bounds_.size() + 1
  std::atomic<double> sum_{0};
};

// Bucket bounds for latencies in seconds, 0.5 ms to 10 s.
std::vector<double> LatencyBuckets();

// Elapsed time for latency metrics. It reads std::chrono::steady_clock directly, the one
// exception to "time comes from common::Clock": what it measures is reported, never acted on.
class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  double Seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_;
};

class MetricsRegistry {
 public:
  // The metric named `name` with `labels`, created on first use. The pointer stays valid for the
  // registry's life. A name is one kind only; `help` is taken from its first use.
  Counter* GetCounter(const std::string& name, const std::string& help, const Labels& labels = {});
  Gauge* GetGauge(const std::string& name, const std::string& help, const Labels& labels = {});
  Histogram* GetHistogram(const std::string& name, const std::string& help,
                          const Labels& labels = {}, std::vector<double> bounds = LatencyBuckets());

  // Runs before each Render(), to refresh gauges computed on demand.
  void AddRefresher(std::function<void()> refresh);

  std::string Render();

 private:
  enum class Kind { kCounter, kGauge, kHistogram };
  struct Family {
    Kind kind;
    std::string help;
    std::map<Labels, std::unique_ptr<Counter>> counters;
    std::map<Labels, std::unique_ptr<Gauge>> gauges;
    std::map<Labels, std::unique_ptr<Histogram>> histograms;
  };
  Family& FamilyOf(const std::string& name, const std::string& help, Kind kind);

  std::mutex mu_;
  std::map<std::string, Family> families_;         // guarded by mu_
  std::vector<std::function<void()>> refreshers_;  // guarded by mu_
};

MetricsRegistry& DefaultMetrics();

}  // namespace txn::common
