// Serves GET /metrics (Prometheus text format) from a registry on its own thread, with
// cpp-httplib (Debian's libcpp-httplib). Any other path is 404.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "common/metrics.h"

namespace httplib {
class Server;
}

namespace txn::common {

class MetricsServer {
 public:
  // Listens on `host_port` ("127.0.0.1:9100"; port 0 picks one). INVALID_ARGUMENT for a
  // malformed address, UNAVAILABLE when it cannot listen.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(const std::string& host_port,
                                                              MetricsRegistry* registry);
  ~MetricsServer();
  int port() const { return port_; }

 private:
  MetricsServer() = default;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace txn::common
