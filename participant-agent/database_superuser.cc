#include "participant-agent/database_superuser.h"

#include <atomic>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/metrics.h"

namespace txn::agent {

void NoteDatabaseSuperuser(bool superuser, absl::string_view what, absl::string_view advice) {
  common::DefaultMetrics()
      .GetGauge("txagent_database_superuser",
                "1 when the agent's database user has server-wide privileges (superuser, SUPER, "
                "FILE) that client statements must not reach.")
      ->Set(superuser ? 1 : 0);
  static std::atomic<bool> warned{false};
  if (superuser && !warned.exchange(true)) {
    common::LogWarning(absl::StrCat("the agent's database ", what, ": ", advice));
  }
}

}  // namespace txn::agent
