// Builds the ResourceAdapter named by --backend.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "participant-agent/resource_adapter.h"

namespace txn::agent {

struct AdapterConfig {
  std::string backend;  // postgres | mysql | mongodb | noop
  std::string dsn;
  std::string password;  // from --dsn-password-file; empty if none
  int pool_size = 8;
  int64_t lock_timeout_ms = 0;  // 0: the database's own
  // Take part as a last resource only (never prepare), e.g. a PostgreSQL without
  // max_prepared_transactions.
  bool last_resource = false;
  // PostgreSQL: client statements run as this role (SET LOCAL ROLE); empty = the DSN's user.
  std::string run_as_role;
};

// INVALID_ARGUMENT for an unknown backend, UNIMPLEMENTED for one not built yet.
absl::StatusOr<std::unique_ptr<ResourceAdapter>> MakeAdapter(const AdapterConfig& config);

// Whether `config.dsn` itself holds a password (which then shows in the process list and in
// config files; --dsn-password-file keeps it out of both).
bool DsnCarriesPassword(const AdapterConfig& config);

}  // namespace txn::agent
