// DecisionWriter: how the drivers write decision records without blocking a thread: Append
// returns at once and `done` runs later, once, with the write's status. A record with `sync` is
// on stable storage when `done` sees OK; the drivers act on a decision only after that.
// GroupCommitLog (group_commit_log.h) is the real one; the simulation (tests/sim) has its own, so
// that writes finish, and are lost in crashes, where its seed says. Thread-safe.
#pragma once

#include <functional>

#include "absl/status/status.h"
#include "coordinator/log/decision_log.h"

namespace txn::log {

class DecisionWriter {
 public:
  using Done = std::function<void(absl::Status)>;
  virtual ~DecisionWriter() = default;
  virtual void Append(DecisionRecord record, bool sync, Done done) = 0;
};

}  // namespace txn::log
