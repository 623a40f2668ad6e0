// Structured, line-oriented logging to stderr: `2026-11-22T09:00:00.123Z I txn=n1-1-7 msg`.
// Callers put `txn=` and `participant=` fields into the message. Never log secrets (DSN
// passwords, tokens): callers pass redacted values. Thread-safe.
#pragma once

#include <string_view>

#include "absl/strings/string_view.h"

namespace txn::common {

enum class Severity { kInfo, kWarning, kError };

void Log(Severity severity, absl::string_view message);
inline void LogInfo(absl::string_view m) { Log(Severity::kInfo, m); }
inline void LogWarning(absl::string_view m) { Log(Severity::kWarning, m); }
inline void LogError(absl::string_view m) { Log(Severity::kError, m); }

}  // namespace txn::common
