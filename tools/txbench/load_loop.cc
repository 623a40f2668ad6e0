#include "tools/txbench/load_loop.h"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <thread>

namespace txn::bench {

using Clock = std::chrono::steady_clock;

LoadResult RunLoad(const LoadOptions& options, const TxnFunction& txn) {
  const auto begin = Clock::now();
  const auto measure_from = begin + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(options.warmup_s));
  const auto end = measure_from + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(options.duration_s));
  // Open loop: client c starts its k-th transaction at begin + (c + k * clients) / rate.
  const Clock::duration interval =
      options.rate > 0 ? std::chrono::duration_cast<Clock::duration>(
                             std::chrono::duration<double>(options.clients / options.rate))
                       : Clock::duration::zero();
  std::mutex mu;
  LoadResult total;
  std::vector<std::thread> threads;
  for (int c = 0; c < options.clients; ++c) {
    threads.emplace_back([&, c] {
      std::mt19937_64 rng(0x9e3779b97f4a7c15ULL * (c + 1));
      LoadResult mine;
      auto intended = begin;
      if (options.rate > 0) {
        intended += std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double>(c / options.rate));
      }
      for (;;) {
        auto now = Clock::now();
        if (options.rate > 0) {
          if (intended >= end) break;
          if (intended > now) std::this_thread::sleep_until(intended);
        } else {
          if (now >= end) break;
          intended = now;
        }
        const TxnEnd outcome = txn(c, rng);
        const auto done = Clock::now();
        if (intended >= measure_from) {
          mine.latencies_ms.push_back(
              std::chrono::duration<double, std::milli>(done - intended).count());
          switch (outcome.kind) {
            case TxnEnd::kCommitted:
              ++mine.committed;
              break;
            case TxnEnd::kAborted:
              ++mine.aborted;
              break;
            case TxnEnd::kError:
              ++mine.errors;
              ++mine.details[outcome.detail];
              break;
          }
        }
        if (options.rate > 0) intended += interval;
      }
      std::lock_guard<std::mutex> lock(mu);
      total.committed += mine.committed;
      total.aborted += mine.aborted;
      total.errors += mine.errors;
      for (const auto& [k, v] : mine.details) total.details[k] += v;
      total.latencies_ms.insert(total.latencies_ms.end(), mine.latencies_ms.begin(),
                                mine.latencies_ms.end());
    });
  }
  for (auto& t : threads) t.join();
  // Transactions are counted by when they were meant to start, so throughput is over the
  // measured window (those still running at its end finish a little later: at most one per
  // client).
  total.seconds = options.duration_s;
  return total;
}

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5));
  std::nth_element(v.begin(), v.begin() + i, v.end());
  return v[i];
}

}  // namespace txn::bench
