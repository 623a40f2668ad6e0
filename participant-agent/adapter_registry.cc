#include "participant-agent/adapter_registry.h"

#include "absl/strings/str_cat.h"
#include "participant-agent/adapters/noop/noop_adapter.h"
#include "participant-agent/adapters/postgres/postgres_adapter.h"

namespace txn::agent {

absl::StatusOr<std::unique_ptr<ResourceAdapter>> MakeAdapter(const AdapterConfig& config) {
  if (config.backend == "noop") return std::make_unique<NoopAdapter>();
  if (config.backend == "postgres") {
    if (config.dsn.empty()) return absl::InvalidArgumentError("--dsn is required for postgres");
    return std::make_unique<PostgresAdapter>(config.dsn, config.password, config.pool_size);
  }
  if (config.backend == "mysql" || config.backend == "mongodb") {
    return absl::UnimplementedError(
        absl::StrCat("--backend ", config.backend, " is not available in this build yet"));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "--backend must be postgres, mysql, mongodb or noop, got '", config.backend, "'"));
}

}  // namespace txn::agent
