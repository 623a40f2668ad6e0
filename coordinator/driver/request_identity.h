// RequestIdentity: who started a transaction and with which idempotency key. Every protocol's
// context keeps one and writes it into each of the transaction's log records, and recovery reads
// it back, so that after any number of restarts a retry with the key is still recognised and
// only the owner sees the transaction. (2PC once lost the key on recovery because each driver
// copied these fields by hand.)
#pragma once

#include <string>

#include "coordinator/log/decision_log.h"

namespace txn::driver {

struct RequestIdentity {
  std::string owner;            // the principal; "" without --token-file
  std::string idempotency_key;  // "" if none
  std::string fingerprint;      // of the request without its key; "" if no key

  static RequestIdentity FromRecord(const log::DecisionRecord& r) {
    return RequestIdentity{r.owner(), r.idempotency_key(), r.request_fingerprint()};
  }
  void WriteTo(log::DecisionRecord* r) const {
    r->set_owner(owner);
    r->set_idempotency_key(idempotency_key);
    r->set_request_fingerprint(fingerprint);
  }
};

}  // namespace txn::driver
