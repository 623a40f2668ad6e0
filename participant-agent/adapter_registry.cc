#include "participant-agent/adapter_registry.h"

#include <libpq-fe.h>

#include "absl/strings/str_cat.h"
#include "participant-agent/adapters/mongodb/mongodb_adapter.h"
#include "participant-agent/adapters/mysql/mysql_adapter.h"
#include "participant-agent/adapters/noop/noop_adapter.h"
#include "participant-agent/adapters/postgres/postgres_adapter.h"

namespace txn::agent {

absl::StatusOr<std::unique_ptr<ResourceAdapter>> MakeAdapter(const AdapterConfig& config) {
  if (config.backend == "noop") return std::make_unique<NoopAdapter>();
  if (config.backend == "postgres") {
    if (config.dsn.empty()) return absl::InvalidArgumentError("--dsn is required for postgres");
    auto adapter = std::make_unique<PostgresAdapter>(config.dsn, config.password, config.pool_size,
                                                     config.lock_timeout_ms);
    adapter->set_last_resource_only(config.last_resource);
    if (!config.run_as_role.empty()) {
      if (absl::Status s = adapter->SetRunAsRole(config.run_as_role); !s.ok()) return s;
    }
    return adapter;
  }
  if (!config.run_as_role.empty()) {
    return absl::InvalidArgumentError(
        "--run-as-role is for PostgreSQL (a MySQL role adds privileges, it cannot take away the "
        "user's): give the agent's MySQL user privileges on its database only");
  }
  if (config.backend == "mysql") {
    if (config.dsn.empty()) return absl::InvalidArgumentError("--dsn is required for mysql");
    absl::StatusOr<MysqlDsn> dsn = ParseMysqlDsn(config.dsn);
    if (!dsn.ok()) return dsn.status();
    if (!config.password.empty()) dsn->password = config.password;
    auto adapter = std::make_unique<MysqlAdapter>(*dsn, config.pool_size, config.lock_timeout_ms);
    adapter->set_last_resource_only(config.last_resource);
    return adapter;
  }
  if (config.backend == "mongodb") {
    if (config.dsn.empty()) return absl::InvalidArgumentError("--dsn is required for mongodb");
    auto adapter = MongoAdapter::Create(config.dsn, config.password);
    if (!adapter.ok()) return adapter.status();
    return std::unique_ptr<ResourceAdapter>(std::move(*adapter));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "--backend must be postgres, mysql, mongodb or noop, got '", config.backend, "'"));
}

bool DsnCarriesPassword(const AdapterConfig& config) {
  if (config.backend == "postgres") {
    bool found = false;
    if (PQconninfoOption* parsed = PQconninfoParse(config.dsn.c_str(), nullptr)) {
      for (PQconninfoOption* o = parsed; o->keyword != nullptr; ++o) {
        if (std::string(o->keyword) == "password" && o->val != nullptr && *o->val != '\0') {
          found = true;
        }
      }
      PQconninfoFree(parsed);
    }
    return found;
  }
  if (config.backend == "mysql") {
    absl::StatusOr<MysqlDsn> dsn = ParseMysqlDsn(config.dsn);
    return dsn.ok() && !dsn->password.empty();
  }
  if (config.backend == "mongodb") {
    // mongodb://USER:PASSWORD@HOST/...
    const size_t scheme = config.dsn.find("://");
    const size_t at = config.dsn.find('@');
    if (scheme == std::string::npos || at == std::string::npos || at < scheme) return false;
    return config.dsn.substr(scheme + 3, at - scheme - 3).find(':') != std::string::npos;
  }
  return false;
}

}  // namespace txn::agent
