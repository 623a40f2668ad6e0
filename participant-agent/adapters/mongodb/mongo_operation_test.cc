// The MongoDB request building and checks, without a server.
#include "participant-agent/adapters/mongodb/mongo_operation.h"

#include <gtest/gtest.h>

namespace txn::agent {
namespace {

v1::MongoOp Op(v1::MongoOp::Kind kind, const std::string& filter = "",
               const std::string& update = "", const std::string& document = "") {
  v1::MongoOp op;
  op.set_collection("accounts");
  op.set_kind(kind);
  op.set_filter_json(filter);
  op.set_update_json(update);
  op.set_document_json(document);
  return op;
}

TEST(MongoOperation, BuildsEachKind) {
  auto ins =
      BuildMongoOperation(Op(v1::MongoOp::KIND_INSERT, "", "", R"({"_id": 1, "a": {"b": 2}})"));
  ASSERT_TRUE(ins.ok()) << ins.status();
  EXPECT_EQ(BsonToJson(ins->document.get()), R"({ "_id" : 1, "a" : { "b" : 2 } })");
  auto upd = BuildMongoOperation(Op(v1::MongoOp::KIND_UPDATE,
                                    R"({"_id": "alice", "balance": {"$gte": 30}})",
                                    R"({"$inc": {"balance": -30}})"));
  ASSERT_TRUE(upd.ok()) << upd.status();
  EXPECT_NE(upd->filter, nullptr);
  EXPECT_NE(upd->update, nullptr);
  auto del = BuildMongoOperation(Op(v1::MongoOp::KIND_DELETE, R"({"_id": 3})"));
  ASSERT_TRUE(del.ok());
  auto find = BuildMongoOperation(Op(v1::MongoOp::KIND_FIND));
  ASSERT_TRUE(find.ok());
  EXPECT_EQ(BsonToJson(find->filter.get()), "{ }");
}

TEST(MongoOperation, RefusesServerSideJavaScriptAnywhere) {
  for (const char* filter : {R"({"$where": "this.a > 1"})",
                             R"({"$expr": {"$function": {"body": "x", "args": [], "lang": "js"}}})",
                             R"({"a": {"$elemMatch": {"$where": "1"}}})"}) {
    auto r = BuildMongoOperation(Op(v1::MongoOp::KIND_FIND, filter));
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << filter;
    EXPECT_NE(r.status().message().find("JavaScript"), std::string::npos);
  }
  auto acc = BuildMongoOperation(
      Op(v1::MongoOp::KIND_UPDATE, "{}", R"({"$set": {"x": {"$accumulator": {}}}})"));
  EXPECT_FALSE(acc.ok());
}

TEST(MongoOperation, RefusesDollarFieldNamesAndReplacements) {
  EXPECT_FALSE(BuildMongoOperation(Op(v1::MongoOp::KIND_INSERT, "", "", R"({"$set": 1})")).ok());
  EXPECT_FALSE(
      BuildMongoOperation(Op(v1::MongoOp::KIND_INSERT, "", "", R"({"a": {"$b": 1}})")).ok());
  EXPECT_FALSE(
      BuildMongoOperation(Op(v1::MongoOp::KIND_UPDATE, "{}", R"({"$set": {"$x": 1}})")).ok());
  auto replacement = BuildMongoOperation(Op(v1::MongoOp::KIND_UPDATE, "{}", R"({"balance": 1})"));
  EXPECT_EQ(replacement.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(replacement.status().message().find("replacement"), std::string::npos);
}

TEST(MongoOperation, RefusesBadInput) {
  EXPECT_FALSE(BuildMongoOperation(Op(v1::MongoOp::KIND_UNSPECIFIED)).ok());
  EXPECT_FALSE(BuildMongoOperation(Op(v1::MongoOp::KIND_FIND, "{not json")).ok());
  EXPECT_FALSE(BuildMongoOperation(Op(v1::MongoOp::KIND_INSERT)).ok());
  EXPECT_FALSE(BuildMongoOperation(Op(v1::MongoOp::KIND_UPDATE, "{}", "{}")).ok());
  v1::MongoOp sys = Op(v1::MongoOp::KIND_FIND);
  sys.set_collection("system.users");
  EXPECT_FALSE(BuildMongoOperation(sys).ok());
  sys.set_collection("txcoord_markers");
  EXPECT_FALSE(BuildMongoOperation(sys).ok());
  sys.set_collection("");
  EXPECT_FALSE(BuildMongoOperation(sys).ok());
}

}  // namespace
}  // namespace txn::agent
