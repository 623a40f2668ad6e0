#include "participant-agent/wait_ages.h"

#include <algorithm>

namespace txn::agent {

std::vector<int64_t> WaitAges::Pass(int64_t now_ms, const std::vector<Looked>& looked,
                                    const std::vector<Found>& found) {
  std::map<std::string, const Looked*> looked_now;
  for (const Looked& l : looked) looked_now[l.waiter] = &l;
  std::map<std::pair<std::string, std::string>, Since> pairs;
  std::vector<int64_t> waited;
  waited.reserve(found.size());
  for (const Found& f : found) {
    auto l = looked_now.find(f.waiter);
    if (l == looked_now.end()) {
      waited.push_back(0);
      continue;
    }
    const uint64_t call = l->second->call;
    std::pair<std::string, std::string> key{f.waiter, f.holder};
    int64_t since = l->second->call_started_ms;
    if (auto p = pairs_.find(key); p != pairs_.end() && p->second.call == call) {
      since = p->second.since_ms;  // seen last pass too: the same wait goes on
    } else if (auto before = looked_.find(f.waiter);
               before != looked_.end() && before->second.call == call) {
      // The last pass looked at this very call and this holder did not block it then.
      since = std::max(since, before->second.since_ms);
    }
    pairs.emplace(std::move(key), Since{call, since});
    waited.push_back(std::max<int64_t>(0, now_ms - since));
  }
  pairs_ = std::move(pairs);
  looked_.clear();
  for (const Looked& l : looked) looked_[l.waiter] = Since{l.call, now_ms};
  return waited;
}

}  // namespace txn::agent
