// OtherIncarnations: transactions of this coordinator's node whose ids carry another incarnation
// (a data folder that was lost or replaced, or ids from before incarnations existed) and that an
// agent asked about. This coordinator cannot know their decision: one of them may have been
// committed by the earlier incarnation while a branch is still prepared, so presuming abort could
// roll back a commit a client was told about. GetDecision answers UNKNOWN for them; this keeps
// them visible (Admin.ListTransactions as IN_DOUBT, a metric) until an operator resolves them.
//
// Bounded: past `capacity` ids the one asked about least recently is dropped (the agent that holds
// it asks again on its next reconcile pass, which brings it back). Thread-safe.
#pragma once

#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "txn/v1/coordinator.pb.h"

namespace txn::driver {

class OtherIncarnations {
 public:
  // `node` and `incarnation` are this coordinator's, for the reason text.
  OtherIncarnations(std::string node, std::string incarnation, size_t capacity = 10'000);

  // An agent asked for `txn_id`, an id of this node with `its_incarnation` ("" = from before
  // incarnations). True the first time (so the caller logs it once).
  bool NoteAsked(const std::string& txn_id, const std::string& its_incarnation,
                 int64_t now_unix_ms);
  // An operator resolved it: no longer listed.
  void Forget(const std::string& txn_id);
  // IN_DOUBT transactions with a reason naming both incarnations and what to do.
  std::vector<v1::Transaction> Snapshot() const;
  size_t size() const;
  bool Contains(const std::string& txn_id) const;

 private:
  struct Entry {
    std::string incarnation;
    int64_t first_asked_unix_ms = 0;
    int64_t last_asked_unix_ms = 0;
    uint64_t asks = 0;
    std::list<std::string>::iterator recency;
  };
  const std::string node_;
  const std::string incarnation_;
  const size_t capacity_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::list<std::string> recency_ ABSL_GUARDED_BY(mu_);  // most recently asked first
};

}  // namespace txn::driver
