// WaitAges: since when a branch has waited for one particular holder, as closely as the agent can
// bound it from the passes it has made.
//
// A cycle of waits exists from the moment its last wait began, and a wait here is a pair: waiter
// W waits for holder H. Under contention W's statement often queues behind several holders one
// after the other (H1 commits, the lock passes to H2, W now waits for H2), so the time W's call
// has been running is not how long it has waited for H2; a cycle through W -> H2 is only as old
// as that pair. The earliest that pair can have begun is the later of the call's start and the
// last pass that looked at W in the same call and saw it blocked by others only, all of them
// named (a holder the database showed without a branch to map it to may have been H2 under
// another name, so such a look proves nothing of H2: the pair then keeps the beginning of that
// unnamed wait). The bound is never later than the truth as long as each pass reads the
// database's present, taken after the pass's time: so the cycle's age built from it is never
// understated, except by the time a report takes to reach the coordinator. (MariaDB's lock tables
// are the present when nothing else reads them more often than every 100 ms: MysqlAdapter.)
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
  // A wait the pass found. `holder` names the holder: its branch's gid when `named`, otherwise
  // how the database described it (which need not stay the same from pass to pass).
  struct Found {
    std::string waiter;
    std::string holder;
    bool named = true;
  };

  static constexpr int64_t kUnknown = -1;
  // One pass that began at `pass_ms` (before the database was asked). Returns, for each of
  // `found` in order, the earliest time (monotonic ms) that wait can have begun; kUnknown for a
  // waiter that is not among `looked`.
  std::vector<int64_t> Pass(int64_t pass_ms, const std::vector<Looked>& looked,
                            const std::vector<Found>& found);

 private:
  struct Since {
    uint64_t call = 0;
    int64_t since_ms = 0;
  };
  struct LookedAt {
    uint64_t call = 0;
    int64_t pass_ms = 0;
    // The earliest beginning among the unnamed waits that pass found for this waiter, or
    // kUnknown when it found none.
    int64_t unnamed_since_ms = kUnknown;
  };
  // The pairs the last pass found, and since when each has waited at the earliest.
  std::map<std::pair<std::string, std::string>, Since> pairs_;
  // The waiters the last pass looked at.
  std::map<std::string, LookedAt> looked_;
};

}  // namespace txn::agent
