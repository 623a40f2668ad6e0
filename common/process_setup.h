// Process-wide settings every binary of ours makes first thing in main().
#pragma once

#include "absl/synchronization/mutex.h"

namespace txn::common {

// Turns off absl::Mutex deadlock detection. Debian's Abseil is built with it on, and gRPC takes
// absl::Mutex locks on every call: the detector's lock-order graph (GraphCycles) showed up in
// profiles of txcoord and txagent under load. Our own locks are std::mutex and are not
// affected; the tests' ThreadSanitizer-free design does not rely on the detector.
inline void SetUpProcess() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace txn::common
