#include "common/logging.h"

#include <cstdio>
#include <mutex>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace txn::common {

void Log(Severity severity, absl::string_view message) {
  static std::mutex mu;
  const char level = severity == Severity::kInfo ? 'I' : severity == Severity::kWarning ? 'W' : 'E';
  std::string ts = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  std::lock_guard<std::mutex> lock(mu);
  std::fprintf(stderr, "%s %c %.*s\n", ts.c_str(), level, static_cast<int>(message.size()),
               message.data());
  std::fflush(stderr);
}

}  // namespace txn::common
