// WaitAges: how long a branch has waited for one particular holder, as closely as the agent can
// bound it from the passes it has made.
//
// A cycle of waits exists from the moment its last wait began, and a wait here is a pair: waiter
// W waits for holder H. Under contention W's statement often queues behind several holders one
// after the other (H1 commits, the lock passes to H2, W now waits for H2), so the time W's call
// has been running is not how long it has waited for H2; a cycle through W -> H2 is only as old
// as that pair. The earliest that pair can have begun is the later of the call's start and the
// last pass that looked at W in the same call and did not see H2 blocking it. That bound is
// never later than the truth, so a cycle's age built from it is never understated, as long as
// the snapshot a pass reads is the database's present, taken after the pass's time (MariaDB's
// lock tables are, when nothing else reads them more often than every 100 ms: MysqlAdapter).
//
// Not thread-safe: the lock-wait reporter's one thread makes the passes.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace txn::agent {

class WaitAges {
 public:
  // A waiter the pass looked up in the database: its branch, its current call and when that
  // call started (monotonic ms).
  struct Looked {
    std::string waiter;
    uint64_t call = 0;
    int64_t call_started_ms = 0;
  };
  // A wait the pass found: `holder` is any key that names the holder (its gid, or how the
  // database describes a session that is not a branch).
  struct Found {
    std::string waiter;
    std::string holder;
  };

  // One pass at `now_ms` (taken before the database was asked). Returns, for each of `found` in
  // order, how long that waiter has waited for that holder at most; 0 for a waiter that is not
  // among `looked`.
  std::vector<int64_t> Pass(int64_t now_ms, const std::vector<Looked>& looked,
                            const std::vector<Found>& found);

 private:
  struct Since {
    uint64_t call = 0;
    int64_t since_ms = 0;
  };
  // The pairs the last pass found, and since when each has waited at the earliest.
  std::map<std::pair<std::string, std::string>, Since> pairs_;
  // The waiters the last pass looked at: their call then, and the pass's time.
  std::map<std::string, Since> looked_;
};

}  // namespace txn::agent
