#include "participant-agent/adapters/mongodb/mongo_operation.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace txn::agent {
namespace {

bool IsForbiddenOperator(absl::string_view key) {
  return key == "$where" || key == "$function" || key == "$accumulator";
}

// Walks `iter`'s document (recursively). `dollar_keys_allowed` says whether keys at this level may
// start with '$' (query and update operators) or not (stored field names).
absl::Status Check(bson_iter_t* iter, const std::string& field, bool dollar_keys_allowed,
                   bool nested_dollar_keys_allowed) {
  while (bson_iter_next(iter)) {
    absl::string_view key(bson_iter_key(iter), bson_iter_key_len(iter));
    if (IsForbiddenOperator(key)) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": ", key, " (server-side JavaScript) is refused"));
    }
    if (!key.empty() && key[0] == '$' && !dollar_keys_allowed) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": field name '", key, "' starts with '$'"));
    }
    if (BSON_ITER_HOLDS_DOCUMENT(iter) || BSON_ITER_HOLDS_ARRAY(iter)) {
      bson_iter_t child;
      if (!bson_iter_recurse(iter, &child)) continue;
      absl::Status s = Check(&child, field, nested_dollar_keys_allowed, nested_dollar_keys_allowed);
      if (!s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<BsonPtr> ParseDocument(const std::string& json, const std::string& field,
                                      bool allow_empty) {
  if (json.empty()) {
    if (allow_empty) return BsonPtr(bson_new());
    return absl::InvalidArgumentError(absl::StrCat(field, " is empty"));
  }
  bson_error_t error;
  bson_t* doc = bson_new_from_json(reinterpret_cast<const uint8_t*>(json.data()),
                                   static_cast<ssize_t>(json.size()), &error);
  if (doc == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is not a JSON document: ", error.message));
  }
  return BsonPtr(doc);
}

}  // namespace

absl::StatusOr<MongoOperation> BuildMongoOperation(const v1::MongoOp& op) {
  MongoOperation out;
  out.kind = op.kind();
  out.collection = op.collection();
  if (out.collection.empty()) return absl::InvalidArgumentError("mongo.collection is empty");
  if (absl::StartsWith(out.collection, "system.") || absl::StartsWith(out.collection, "txcoord_") ||
      absl::StrContains(out.collection, "$")) {
    return absl::InvalidArgumentError(
        absl::StrCat("mongo.collection '", out.collection, "' is reserved"));
  }
  bson_iter_t iter;
  switch (op.kind()) {
    case v1::MongoOp::KIND_INSERT: {
      auto doc = ParseDocument(op.document_json(), "mongo.document_json", false);
      if (!doc.ok()) return doc.status();
      bson_iter_init(&iter, doc->get());
      absl::Status s = Check(&iter, "mongo.document_json", false, false);
      if (!s.ok()) return s;
      out.document = std::move(*doc);
      return out;
    }
    case v1::MongoOp::KIND_UPDATE: {
      auto update = ParseDocument(op.update_json(), "mongo.update_json", false);
      if (!update.ok()) return update.status();
      bson_iter_init(&iter, update->get());
      bool any = false;
      while (bson_iter_next(&iter)) {
        any = true;
        if (bson_iter_key(&iter)[0] != '$') {
          return absl::InvalidArgumentError(absl::StrCat(
              "mongo.update_json: '", bson_iter_key(&iter),
              "' is not an update operator ($set, $inc, ...); replacement documents are refused"));
        }
      }
      if (!any) return absl::InvalidArgumentError("mongo.update_json has no update operator");
      bson_iter_init(&iter, update->get());
      absl::Status s = Check(&iter, "mongo.update_json", true, false);
      if (!s.ok()) return s;
      out.update = std::move(*update);
      [[fallthrough]];
    }
    case v1::MongoOp::KIND_DELETE:
    case v1::MongoOp::KIND_FIND: {
      auto filter = ParseDocument(op.filter_json(), "mongo.filter_json", true);
      if (!filter.ok()) return filter.status();
      bson_iter_init(&iter, filter->get());
      absl::Status s = Check(&iter, "mongo.filter_json", true, true);
      if (!s.ok()) return s;
      out.filter = std::move(*filter);
      return out;
    }
    default:
      return absl::InvalidArgumentError("mongo.kind must be INSERT, UPDATE, DELETE or FIND");
  }
}

std::string BsonToJson(const bson_t* doc) {
  size_t len = 0;
  char* json = bson_as_relaxed_extended_json(doc, &len);
  std::string out(json, len);
  bson_free(json);
  return out;
}

}  // namespace txn::agent
