// LoadLoop: runs one transaction function from many client threads for a fixed time, closed or
// open loop, and records what each transaction ended as and how long it took.
//
// Closed loop (rate 0): each client starts its next transaction when the last one answered.
// Open loop (rate R > 0): transactions are scheduled at R per second in all, spread evenly over
// the clients, and latency is measured from the *intended* start, so a stalled system is charged
// for the transactions it delayed (no coordinated omission). Transactions that start during the
// warm-up are run but not counted.
//
// Thread-safe: Run() may be called once at a time; the transaction function is called from the
// client threads concurrently and must be thread-safe (each client gets its own index and rng).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace txn::bench {

// What one transaction ended as, in the words of the report: "committed", "aborted", or an
// error's name (counted as an error).
struct TxnEnd {
  enum Kind { kCommitted, kAborted, kError } kind = kError;
  std::string detail;  // e.g. "TXN_STATE_IN_DOUBT", "rpc UNAVAILABLE: ..."
};

struct LoadOptions {
  int clients = 1;
  double duration_s = 10;
  double warmup_s = 1;
  double rate = 0;  // transactions per second in all; 0 = closed loop
};

struct LoadResult {
  double seconds = 0;  // the measured window (after the warm-up)
  int64_t committed = 0;
  int64_t aborted = 0;
  int64_t errors = 0;
  std::map<std::string, int64_t> details;  // error details, counted
  std::vector<double> latencies_ms;        // of every counted transaction
};

using TxnFunction = std::function<TxnEnd(int client, std::mt19937_64& rng)>;

LoadResult RunLoad(const LoadOptions& options, const TxnFunction& txn);

// The p-th percentile (0..1) of `v` (reorders it); 0 for an empty vector.
double Percentile(std::vector<double>& v, double p);

}  // namespace txn::bench
