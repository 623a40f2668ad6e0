// Structured, line-oriented logging to stderr. Text (the default):
//   2026-11-22T09:00:00.123Z I txn=n1-1-7 msg
// or, after SetLogFormat(kJson) (--log-format json), one JSON object per line:
//   {"ts":"2026-11-22T09:00:00.123Z","level":"info","msg":"txn=n1-1-7 msg","txn_id":"n1-1-7"}
// Callers put `txn=`, `branch=`, `participant=` and `principal=` fields into the message; in
// JSON they also become the fields txn_id, branch, participant and principal. Never log secrets
// (DSN passwords, tokens): callers pass redacted values. Thread-safe.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace txn::common {

enum class Severity { kInfo, kWarning, kError };
enum class LogFormat { kText, kJson };

// Process-wide; call once in main, before other threads log.
void SetLogFormat(LogFormat format);
// The daemons' --log-format flag: the description both share, and applying its value
// (INVALID_ARGUMENT for anything but text or json).
inline constexpr char kLogFormatFlagHelp[] =
    "json: one object per line, with txn_id, branch, participant, principal fields";
absl::Status ApplyLogFormatFlag(absl::string_view value);
// "text" or "json"; false for anything else.
bool ParseLogFormat(absl::string_view name, LogFormat* format);

// Process-wide: every message goes to `sink` instead of stderr (the simulation keeps a run's
// messages and prints them only for a failing seed); an empty function puts stderr back.
// Call before other threads log.
void SetLogSink(std::function<void(Severity, absl::string_view)> sink);

void Log(Severity severity, absl::string_view message);
inline void LogInfo(absl::string_view m) { Log(Severity::kInfo, m); }
inline void LogWarning(absl::string_view m) { Log(Severity::kWarning, m); }
inline void LogError(absl::string_view m) { Log(Severity::kError, m); }

// The JSON line Log writes in kJson format, without the newline (for tests).
std::string JsonLogLine(absl::string_view timestamp, Severity severity, absl::string_view message);

}  // namespace txn::common
