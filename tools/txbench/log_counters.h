// What the coordinator's decision log did during a run, read from its /metrics
// (txbench --coordinator-metrics HOST:PORT): synced writes (fsyncs) and records written, so a
// run can show that one-phase and read-only transactions cost no fsync, and how many decisions
// share one (group commit).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace txn::bench {

struct LogCounters {
  double synced_writes = 0;    // txcoord_log_write_seconds_count{sync="true"}
  double unsynced_writes = 0;  // txcoord_log_write_seconds_count{sync="false"}
  double records = 0;          // txcoord_log_batch_records_sum
};

// GETs http://HOST:PORT/metrics. UNAVAILABLE when it cannot be read.
absl::StatusOr<LogCounters> ReadLogCounters(const std::string& host_port);

// The counters' values in the Prometheus text `body` (missing ones are 0).
LogCounters ParseLogCounters(const std::string& body);

}  // namespace txn::bench
