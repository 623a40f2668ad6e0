#include "participant-agent/wait_ages.h"

#include <algorithm>

namespace txn::agent {

std::vector<int64_t> WaitAges::Pass(int64_t pass_ms, const std::vector<Looked>& looked,
                                    const std::vector<Found>& found) {
  std::map<std::string, const Looked*> looked_now;
  for (const Looked& l : looked) looked_now[l.waiter] = &l;
  std::map<std::pair<std::string, std::string>, Since> pairs;
  std::map<std::string, LookedAt> looked_at;
  for (const Looked& l : looked) looked_at[l.waiter] = LookedAt{l.call, pass_ms, kUnknown};
  std::vector<int64_t> began;
  began.reserve(found.size());
  for (const Found& f : found) {
    auto l = looked_now.find(f.waiter);
    if (l == looked_now.end()) {
      began.push_back(kUnknown);
      continue;
    }
    const uint64_t call = l->second->call;
    std::pair<std::string, std::string> key{f.waiter, f.holder};
    int64_t since = l->second->call_started_ms;
    if (auto p = pairs_.find(key); p != pairs_.end() && p->second.call == call) {
      since = p->second.since_ms;  // seen last pass too: the same wait goes on
    } else if (auto before = looked_.find(f.waiter);
               before != looked_.end() && before->second.call == call) {
      // The last pass looked at this very call: this pair had not begun then, unless it was one
      // of the waits that pass could not name.
      since = std::max(since, before->second.pass_ms);
      if (before->second.unnamed_since_ms != kUnknown) {
        since = std::min(since, before->second.unnamed_since_ms);
      }
    }
    pairs.emplace(std::move(key), Since{call, since});
    if (!f.named) {
      int64_t& unnamed = looked_at[f.waiter].unnamed_since_ms;
      unnamed = unnamed == kUnknown ? since : std::min(unnamed, since);
    }
    began.push_back(since);
  }
  pairs_ = std::move(pairs);
  looked_ = std::move(looked_at);
  return began;
}

}  // namespace txn::agent
