#include "common/failpoint.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace txn::common {
namespace {

enum class Action { kCrash, kError, kDelay, kHang };

struct Armed {
  Action action;
  int64_t delay_ms = 0;
  int fire_on_hit = 0;  // 0 = every hit
  int hits = 0;
};

std::atomic<bool> any_armed{false};
std::mutex mu;
std::map<std::string, Armed, std::less<>>& Registry() {
  static auto* r = new std::map<std::string, Armed, std::less<>>();
  return *r;
}

absl::StatusOr<Armed> ParseAction(absl::string_view entry, absl::string_view text) {
  Armed a;
  absl::string_view action = text;
  if (auto at = text.find('@'); at != absl::string_view::npos) {
    action = text.substr(0, at);
    if (!absl::SimpleAtoi(text.substr(at + 1), &a.fire_on_hit) || a.fire_on_hit < 1) {
      return absl::InvalidArgumentError(absl::StrCat("failpoint '", entry, "': bad hit count"));
    }
  }
  if (action == "crash") {
    a.action = Action::kCrash;
  } else if (action == "error") {
    a.action = Action::kError;
  } else if (action == "hang") {
    a.action = Action::kHang;
  } else if (absl::ConsumePrefix(&action, "delay(") && absl::ConsumeSuffix(&action, ")") &&
             absl::SimpleAtoi(action, &a.delay_ms) && a.delay_ms >= 0) {
    a.action = Action::kDelay;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("failpoint '", entry, "': action must be crash, error, delay(MS) or hang"));
  }
  return a;
}

}  // namespace

absl::Status ArmFailpointsFromSpec(absl::string_view spec) {
  std::map<std::string, Armed, std::less<>> parsed;
  for (absl::string_view entry : absl::StrSplit(spec, ';', absl::SkipWhitespace())) {
    entry = absl::StripAsciiWhitespace(entry);
    auto eq = entry.find('=');
    if (eq == absl::string_view::npos || eq == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("failpoint '", entry, "': expected NAME=ACTION"));
    }
    auto armed = ParseAction(entry, entry.substr(eq + 1));
    if (!armed.ok()) return armed.status();
    parsed[std::string(entry.substr(0, eq))] = *armed;
  }
  std::lock_guard<std::mutex> lock(mu);
  Registry() = std::move(parsed);
  any_armed.store(!Registry().empty(), std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::Status ArmFailpointsFromEnvironment() {
  const char* spec = std::getenv("TXN_FAILPOINTS");
  if (spec == nullptr || *spec == '\0') return absl::OkStatus();
  return ArmFailpointsFromSpec(spec);
}

void DisarmAllFailpoints() {
  std::lock_guard<std::mutex> lock(mu);
  Registry().clear();
  any_armed.store(false, std::memory_order_relaxed);
}

namespace internal {

bool AnyFailpointArmed() { return any_armed.load(std::memory_order_relaxed); }

absl::Status HitFailpoint(absl::string_view name) {
  Armed fired;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = Registry().find(name);
    if (it == Registry().end()) return absl::OkStatus();
    ++it->second.hits;
    if (it->second.fire_on_hit != 0 && it->second.hits != it->second.fire_on_hit) {
      return absl::OkStatus();
    }
    fired = it->second;
  }
  std::fprintf(stderr, "failpoint %.*s fired\n", static_cast<int>(name.size()), name.data());
  switch (fired.action) {
    case Action::kCrash:
      std::fflush(stderr);
      kill(getpid(), SIGKILL);
      _exit(137);
    case Action::kError:
      return absl::UnavailableError(absl::StrCat("failpoint ", name));
    case Action::kDelay:
      std::this_thread::sleep_for(std::chrono::milliseconds(fired.delay_ms));
      return absl::OkStatus();
    case Action::kHang:
      for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
  }
  return absl::OkStatus();
}

}  // namespace internal
}  // namespace txn::common
