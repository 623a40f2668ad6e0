#include "tools/txbench/log_counters.h"

#include <httplib.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace txn::bench {

LogCounters ParseLogCounters(const std::string& body) {
  LogCounters c;
  for (absl::string_view line : absl::StrSplit(body, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    if (space == absl::string_view::npos) continue;
    double value = 0;
    if (!absl::SimpleAtod(line.substr(space + 1), &value)) continue;
    const absl::string_view name = line.substr(0, space);
    if (name == "txcoord_log_write_seconds_count{sync=\"true\"}") c.synced_writes = value;
    if (name == "txcoord_log_write_seconds_count{sync=\"false\"}") c.unsynced_writes = value;
    if (name == "txcoord_log_batch_records_sum") c.records = value;
  }
  return c;
}

absl::StatusOr<LogCounters> ReadLogCounters(const std::string& host_port) {
  const size_t colon = host_port.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(host_port.substr(colon + 1), &port)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--coordinator-metrics '", host_port, "' is not HOST:PORT"));
  }
  httplib::Client client(host_port.substr(0, colon), port);
  client.set_connection_timeout(2);
  client.set_read_timeout(5);
  httplib::Result res = client.Get("/metrics");
  if (!res || res->status != 200) {
    return absl::UnavailableError(absl::StrCat("cannot read http://", host_port, "/metrics"));
  }
  return ParseLogCounters(res->body);
}

}  // namespace txn::bench
