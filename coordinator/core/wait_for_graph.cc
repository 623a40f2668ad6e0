#include "coordinator/core/wait_for_graph.h"

#include <algorithm>
#include <limits>
#include <unordered_map>

namespace txn::core {

bool WaitForGraph::Report(const std::string& reporter, uint64_t sequence,
                          std::vector<WaitEdge> edges, int64_t now_ms) {
  auto last = last_sequence_.find(reporter);
  if (last != last_sequence_.end() && sequence <= last->second) return false;
  last_sequence_[reporter] = sequence;
  std::erase_if(edges, [this](const WaitEdge& e) {
    return e.waiter.empty() || excluded(e.waiter) || (!e.holder.empty() && excluded(e.holder));
  });
  if (edges.empty()) {
    snapshots_.erase(reporter);
  } else {
    snapshots_[reporter] = Snapshot{sequence, now_ms, std::move(edges)};
  }
  return true;
}

void WaitForGraph::Expire(int64_t now_ms) {
  std::erase_if(snapshots_,
                [&](const auto& kv) { return now_ms - kv.second.received_ms > edge_ttl_ms_; });
  std::erase_if(excluded_until_, [&](const auto& kv) { return now_ms >= kv.second; });
}

std::vector<WaitEdge> WaitForGraph::Edges(int64_t now_ms) const {
  std::vector<WaitEdge> out;
  for (const auto& [reporter, snap] : snapshots_) {
    for (WaitEdge e : snap.edges) {
      e.waited_ms += std::max<int64_t>(0, now_ms - snap.received_ms);
      out.push_back(std::move(e));
    }
  }
  return out;
}

std::vector<std::string> WaitForGraph::FindCycle(const std::set<std::string>& skip) const {
  std::map<std::string, std::vector<std::string>> next;  // ordered: the same graph, same answer
  for (const auto& [reporter, snap] : snapshots_) {
    for (const WaitEdge& e : snap.edges) {
      // A self-edge is a cycle too: two branches of one transaction on one database.
      if (e.holder.empty()) continue;
      if (skip.count(e.waiter) || skip.count(e.holder)) continue;
      if (excluded(e.waiter) || excluded(e.holder)) continue;
      next[e.waiter].push_back(e.holder);
    }
  }
  // Depth-first search with colours; the graph is small (at most one edge per waiting branch),
  // so an iterative search over every start is cheap enough.
  enum Colour { kWhite, kGrey, kBlack };
  std::unordered_map<std::string, Colour> colour;
  for (const auto& [start, unused] : next) {
    if (colour[start] != kWhite) continue;
    // Stack of (node, index of the next successor to visit); `path` mirrors the grey nodes.
    std::vector<std::pair<std::string, size_t>> stack{{start, 0}};
    colour[start] = kGrey;
    while (!stack.empty()) {
      auto& [node, index] = stack.back();
      auto it = next.find(node);
      if (it == next.end() || index >= it->second.size()) {
        colour[node] = kBlack;
        stack.pop_back();
        continue;
      }
      const std::string succ = it->second[index++];
      Colour& c = colour[succ];
      if (c == kGrey) {
        std::vector<std::string> cycle;
        auto from = std::find_if(stack.begin(), stack.end(),
                                 [&](const auto& frame) { return frame.first == succ; });
        for (; from != stack.end(); ++from) cycle.push_back(from->first);
        return cycle;
      }
      if (c == kWhite) {
        c = kGrey;
        stack.emplace_back(succ, 0);
      }
    }
  }
  return {};
}

DeadlockVictim WaitForGraph::Describe(std::vector<std::string> cycle, int64_t now_ms) const {
  DeadlockVictim v;
  int64_t age = std::numeric_limits<int64_t>::max();
  for (size_t i = 0; i < cycle.size(); ++i) {
    const std::string& waiter = cycle[i];
    const std::string& holder = cycle[(i + 1) % cycle.size()];
    std::string where;
    for (const auto& [reporter, snap] : snapshots_) {
      for (const WaitEdge& e : snap.edges) {
        if (e.waiter == waiter && e.holder == holder) {
          age = std::min(age, e.waited_ms + std::max<int64_t>(0, now_ms - snap.received_ms));
          if (where.empty()) where = e.participant;
        }
      }
    }
    v.participants.push_back(std::move(where));
  }
  v.txn_id = cycle.front();
  v.cycle = std::move(cycle);
  v.cycle_age_ms = age == std::numeric_limits<int64_t>::max() ? 0 : age;
  return v;
}

std::optional<MemberStanding> WaitForGraph::StandingOn(const std::string& waiter,
                                                      const std::string& holder,
                                                      const StandingFn& standing) const {
  std::optional<MemberStanding> last;
  for (const auto& [reporter, snap] : snapshots_) {
    for (const WaitEdge& e : snap.edges) {
      if (e.waiter != waiter || e.holder != holder) continue;
      last = standing(e);
      if (last && last->executing) return last;
    }
  }
  return last;
}

void WaitForGraph::Exclude(const std::string& txn_id, int64_t now_ms) {
  excluded_until_[txn_id] = now_ms + exclude_ms_;
  for (auto it = snapshots_.begin(); it != snapshots_.end();) {
    std::erase_if(it->second.edges, [&](const WaitEdge& e) {
      return e.waiter == txn_id || e.holder == txn_id;
    });
    it = it->second.edges.empty() ? snapshots_.erase(it) : std::next(it);
  }
}

std::vector<DeadlockVictim> WaitForGraph::BreakDeadlocks(int64_t now_ms,
                                                         const StandingFn& standing,
                                                         const AbortFn& abort) {
  std::vector<DeadlockVictim> victims;
  std::set<std::string> skip;
  for (;;) {
    std::vector<std::string> cycle = FindCycle(skip);
    if (cycle.empty()) return victims;
    std::optional<size_t> youngest;
    uint64_t youngest_order = 0;
    bool stale = false;
    for (size_t i = 0; i < cycle.size(); ++i) {
      std::optional<MemberStanding> s =
          StandingOn(cycle[i], cycle[(i + 1) % cycle.size()], standing);
      if (!s || !s->executing) {
        skip.insert(cycle[i]);
        stale = true;
        continue;
      }
      if (!youngest || s->start_order > youngest_order) {
        youngest = i;
        youngest_order = s->start_order;
      }
    }
    if (stale) continue;
    std::rotate(cycle.begin(), cycle.begin() + static_cast<std::ptrdiff_t>(*youngest), cycle.end());
    DeadlockVictim victim = Describe(std::move(cycle), now_ms);
    if (abort(victim)) {
      Exclude(victim.txn_id, now_ms);
      victims.push_back(std::move(victim));
    } else {
      skip.insert(victim.txn_id);
    }
  }
}

}  // namespace txn::core
