// MongoOperation: a client's MongoOp checked and turned into BSON, without a server.
//
// Refused with INVALID_ARGUMENT naming the field: an unknown kind, an empty collection or one
// starting with "system." or "txcoord_", JSON that does not parse to a document, server-side
// JavaScript and code operators anywhere ($where, $function, $accumulator), field names starting
// with '$' in an inserted document or under an update operator, and an update whose top-level keys
// are not update operators ($set, $inc, ...: a replacement document is refused). Thread-compatible.
#pragma once

#include <bson/bson.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "txn/v1/common.pb.h"

namespace txn::agent {

struct BsonDeleter {
  void operator()(bson_t* b) const { bson_destroy(b); }
};
using BsonPtr = std::unique_ptr<bson_t, BsonDeleter>;

struct MongoOperation {
  v1::MongoOp::Kind kind = v1::MongoOp::KIND_UNSPECIFIED;
  std::string collection;
  BsonPtr filter;    // FIND, UPDATE, DELETE (empty document when not given)
  BsonPtr update;    // UPDATE
  BsonPtr document;  // INSERT
};

absl::StatusOr<MongoOperation> BuildMongoOperation(const v1::MongoOp& op);

// `doc` as relaxed extended JSON (how FIND rows are returned).
std::string BsonToJson(const bson_t* doc);

}  // namespace txn::agent
