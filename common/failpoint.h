// Named failpoints compiled into every build, armed by the TXN_FAILPOINTS environment variable
// (read once at start) or by ArmFailpointsFromSpec in tests. Cost when nothing is armed: one
// relaxed atomic load.
//
// Spec: `name=action[@N][;name=action...]`, action one of
//   crash       the process kills itself with SIGKILL (no destructors, no flush: like kill -9)
//   error       the failpoint returns an UNAVAILABLE status "failpoint NAME"
//   delay(MS)   sleeps MS milliseconds, then continues
//   hang        sleeps forever
// `@N` fires on the N-th hit only (1-based); without it, on every hit.
//
// Like RocksDB's sync points and LIXA_CRASH, the registry is process-wide: failpoints mark places
// in production code, so they cannot be passed in as dependencies. Thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace txn::common {

// Replaces the armed set. Returns INVALID_ARGUMENT naming the bad entry.
absl::Status ArmFailpointsFromSpec(absl::string_view spec);
// Reads TXN_FAILPOINTS; a malformed value is reported and ignored.
absl::Status ArmFailpointsFromEnvironment();
void DisarmAllFailpoints();

namespace internal {
bool AnyFailpointArmed();
absl::Status HitFailpoint(absl::string_view name);
}  // namespace internal

// Evaluates the failpoint `name`. Returns OK unless it is armed with `error`.
inline absl::Status Failpoint(absl::string_view name) {
  if (!internal::AnyFailpointArmed()) return absl::OkStatus();
  return internal::HitFailpoint(name);
}

}  // namespace txn::common
