// WaitForGraph: the global wait-for graph over transactions, for cross-database deadlocks that
// no single database can see (T1 holds a row in PostgreSQL and waits for one in MariaDB that T2
// holds, while T2 waits for T1's row in PostgreSQL). Pure: no I/O, clock or threads; time
// arrives as `now_ms`, and what a transaction is doing now is asked through a callback.
//
// Edges come from agents as snapshots: each report replaces everything that agent said before
// (an empty report clears it), reports older than one already taken from the same agent are
// ignored, and a report not renewed within `edge_ttl_ms` is dropped. So a lost report can only
// delay detection, and a late one changes nothing.
//
// Breaking deadlocks (BreakDeadlocks), the rule:
//   - find a cycle among the current edges, skipping excluded transactions;
//   - ask each member's standing as the waiter of its edge on the cycle. If any member is not
//     known or no longer executes (it has a decision, or the call that waited has returned), the
//     cycle is not a deadlock now: an edge on it is stale. No victim; those members are skipped
//     this pass.
//   - otherwise abort the youngest member (the one started last: it has done the least work);
//     once the abort is taken, exclude it: its edges go, and reports naming it are ignored for
//     `exclude_ms`, so the same cycle never yields a second victim while the first one's locks
//     are being released.
//   - repeat until no cycle is left.
// The abort itself re-checks, atomically with the transaction's own state, that it has no
// decision (the standing asked here may be stale by then); an abort refused is not a victim.
// The SPIN model of this rule is tests/model/deadlock_detector.pml.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace txn::core {

struct WaitEdge {
  std::string waiter;       // txn id
  std::string holder;       // txn id; "" when the holder is not a transaction of ours
  std::string participant;  // where the wait is
  std::string holder_description;
  int64_t waited_ms = 0;    // how long the waiter had waited when the agent looked
  uint64_t waiter_call = 0; // the coordinator's number of the call that waits
};

// What a cycle member is doing now, as the driver knows it.
struct MemberStanding {
  // It has no decision, and the call the edge names (edge.waiter_call at edge.participant) is
  // still in flight: the wait may still be going on, and is not a wait of an earlier call.
  bool executing = false;
  // Larger = started later (younger).
  uint64_t start_order = 0;
};

struct DeadlockVictim {
  std::string txn_id;
  // The cycle it was on, starting with the victim: victim waits for cycle[1], ... waits for it.
  std::vector<std::string> cycle;
  // participants[i]: where cycle[i] waits for cycle[i + 1] (the last for the first).
  std::vector<std::string> participants;
  // How long the cycle had existed when it was broken: the shortest wait on it, as of now.
  int64_t cycle_age_ms = 0;
};

class WaitForGraph {
 public:
  // The standing of `edge.waiter` as the waiter of `edge`.
  using StandingFn = std::function<std::optional<MemberStanding>(const WaitEdge& edge)>;
  // Tries to abort `txn_id` as a deadlock victim (reason names the cycle); false when it could
  // not (it got a decision meanwhile, or is gone).
  using AbortFn = std::function<bool(const DeadlockVictim& victim)>;

  WaitForGraph(int64_t edge_ttl_ms, int64_t exclude_ms)
      : edge_ttl_ms_(edge_ttl_ms), exclude_ms_(exclude_ms) {}

  // Takes `reporter`'s snapshot unless a report with the same or a higher sequence was taken
  // already. Edges naming an excluded transaction are dropped. Returns whether it was taken.
  bool Report(const std::string& reporter, uint64_t sequence, std::vector<WaitEdge> edges,
              int64_t now_ms);
  // Drops snapshots not renewed within the TTL and exclusions past their time.
  void Expire(int64_t now_ms);
  // Finds and breaks every deadlock among the current edges (see the rule above). Returns the
  // victims whose abort was taken.
  std::vector<DeadlockVictim> BreakDeadlocks(int64_t now_ms, const StandingFn& standing,
                                             const AbortFn& abort);

  // The current edges, each with its wait as of now_ms.
  std::vector<WaitEdge> Edges(int64_t now_ms) const;
  bool excluded(const std::string& txn_id) const { return excluded_until_.count(txn_id) > 0; }

 private:
  struct Snapshot {
    uint64_t sequence = 0;
    int64_t received_ms = 0;
    std::vector<WaitEdge> edges;
  };
  // A cycle among the current edges that avoids `skip` and excluded transactions: the members in
  // wait order, or empty.
  std::vector<std::string> FindCycle(const std::set<std::string>& skip) const;
  // The victim on `cycle` (rotated so that it is first), with where each wait is and the
  // shortest wait on the cycle as of now_ms.
  DeadlockVictim Describe(std::vector<std::string> cycle, int64_t now_ms) const;
  // The standing of `waiter` as the waiter of one of its edges to `holder`: the first whose call
  // is still executing, else the last answer.
  std::optional<MemberStanding> StandingOn(const std::string& waiter, const std::string& holder,
                                           const StandingFn& standing) const;
  void Exclude(const std::string& txn_id, int64_t now_ms);

  const int64_t edge_ttl_ms_;
  const int64_t exclude_ms_;
  std::map<std::string, Snapshot> snapshots_;  // by reporter
  // Sequences are kept after a snapshot expires, so a late report cannot bring it back.
  std::map<std::string, uint64_t> last_sequence_;
  std::map<std::string, int64_t> excluded_until_;
};

}  // namespace txn::core
