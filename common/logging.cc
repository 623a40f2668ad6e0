#include "common/logging.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace txn::common {
namespace {

std::atomic<LogFormat> g_format{LogFormat::kText};
std::function<void(Severity, absl::string_view)> g_sink;  // set before threads log

const char* LevelName(Severity s) {
  return s == Severity::kInfo ? "info" : s == Severity::kWarning ? "warning" : "error";
}

}  // namespace

void SetLogFormat(LogFormat format) { g_format.store(format); }

void SetLogSink(std::function<void(Severity, absl::string_view)> sink) { g_sink = std::move(sink); }

bool ParseLogFormat(absl::string_view name, LogFormat* format) {
  if (name == "text") *format = LogFormat::kText;
  else if (name == "json") *format = LogFormat::kJson;
  else return false;
  return true;
}

absl::Status ApplyLogFormatFlag(absl::string_view value) {
  LogFormat format;
  if (!ParseLogFormat(value, &format)) {
    return absl::InvalidArgumentError("--log-format must be text or json");
  }
  SetLogFormat(format);
  return absl::OkStatus();
}

std::string JsonLogLine(absl::string_view timestamp, Severity severity,
                        absl::string_view message) {
  // protobuf's JSON printer does the escaping (a Struct is a JSON object).
  google::protobuf::Struct line;
  auto& fields = *line.mutable_fields();
  fields["ts"].set_string_value(std::string(timestamp));
  fields["level"].set_string_value(LevelName(severity));
  fields["msg"].set_string_value(std::string(message));
  for (absl::string_view word : absl::StrSplit(message, ' ', absl::SkipEmpty())) {
    const size_t eq = word.find('=');
    if (eq == absl::string_view::npos || eq == 0 || eq + 1 == word.size()) continue;
    const absl::string_view key = word.substr(0, eq);
    const char* field = key == "txn"           ? "txn_id"
                        : key == "branch"      ? "branch"
                        : key == "participant" ? "participant"
                        : key == "principal"   ? "principal"
                                               : nullptr;
    if (field != nullptr && !fields.contains(field)) {
      fields[field].set_string_value(std::string(word.substr(eq + 1)));
    }
  }
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(line, &out);
  return out;
}

void Log(Severity severity, absl::string_view message) {
  if (g_sink) {
    g_sink(severity, message);
    return;
  }
  static std::mutex mu;
  std::string ts = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  if (g_format.load() == LogFormat::kJson) {
    const std::string line = JsonLogLine(ts, severity, message);
    std::lock_guard<std::mutex> lock(mu);
    std::fprintf(stderr, "%s\n", line.c_str());
    std::fflush(stderr);
    return;
  }
  const char level = severity == Severity::kInfo ? 'I' : severity == Severity::kWarning ? 'W' : 'E';
  std::lock_guard<std::mutex> lock(mu);
  std::fprintf(stderr, "%s %c %.*s\n", ts.c_str(), level, static_cast<int>(message.size()),
               message.data());
  std::fflush(stderr);
}

}  // namespace txn::common
