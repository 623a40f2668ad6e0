// The MongoDB adapter against a real replica set, when TXCOORD_TEST_MONGO_URI names one (e.g.
// mongodb://127.0.0.1:27017/txcoord_test?replicaSet=rs0). No MongoDB server can be installed on
// the development machines, so without it these tests are skipped with a line saying so.
#include "participant-agent/adapters/mongodb/mongodb_adapter.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace txn::agent {
namespace {

// Without a server: what Create accepts (no connection is made until the adapter is used).
TEST(MongoAdapterConfig, PasswordFileNeedsAUserInTheUri) {
  EXPECT_EQ(
      MongoAdapter::Create("mongodb://127.0.0.1:1/db?replicaSet=rs0", "secret").status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(MongoAdapter::Create("mongodb://app@127.0.0.1:1/db?replicaSet=rs0", "secret").ok());
  EXPECT_EQ(MongoAdapter::Create("mongodb://127.0.0.1:1/?replicaSet=rs0").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MongoAdapter::Create("not a uri").status().code(), absl::StatusCode::kInvalidArgument);
}

class MongoAdapterTest : public testing::Test {
 protected:
  void SetUp() override {
    const char* uri = std::getenv("TXCOORD_TEST_MONGO_URI");
    if (uri == nullptr || *uri == '\0') {
      GTEST_SKIP() << "MongoDB tests skipped: TXCOORD_TEST_MONGO_URI is not set (no MongoDB "
                      "replica set to test against; none can be installed on this machine)";
    }
    auto adapter = MongoAdapter::Create(uri);
    ASSERT_TRUE(adapter.ok()) << adapter.status();
    adapter_ = std::move(*adapter);
    ASSERT_TRUE(adapter_->CheckReady().ok());
  }

  static v1::Operation Mongo(v1::MongoOp::Kind kind, const std::string& filter,
                             const std::string& update = "", const std::string& doc = "") {
    v1::Operation op;
    v1::MongoOp* m = op.mutable_mongo();
    m->set_collection("wallets");
    m->set_kind(kind);
    m->set_filter_json(filter);
    m->set_update_json(update);
    m->set_document_json(doc);
    return op;
  }

  std::string Gid(int n) {
    return "txc_n9-" + std::to_string(::getpid()) + "-" + std::to_string(n) + "_0";
  }

  std::unique_ptr<MongoAdapter> adapter_;
};

TEST_F(MongoAdapterTest, CannotPrepareAndReportsALifetimeLimit) {
  EXPECT_FALSE(adapter_->supports_prepare());
  EXPECT_GT(adapter_->max_txn_lifetime_ms(), 0);
}

TEST_F(MongoAdapterTest, OnePhaseCommitWritesTheMarker) {
  const std::string id = "w-" + std::to_string(::getpid());
  auto s = adapter_->Begin(Gid(1));
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_TRUE((*s)->Execute(Mongo(v1::MongoOp::KIND_INSERT, "", "",
                                  R"({"_id": ")" + id + R"(", "balance": 10})"))
                  .ok());
  auto upd = (*s)->Execute(Mongo(v1::MongoOp::KIND_UPDATE, R"({"_id": ")" + id + R"("})",
                                 R"({"$inc": {"balance": -3}})"));
  ASSERT_TRUE(upd.ok()) << upd.status();
  EXPECT_EQ(upd->rows_affected(), 1);
  ASSERT_TRUE((*s)->CommitLocal(Gid(1)).ok());
  EXPECT_EQ(*adapter_->ProveOnePhase(Gid(1)), FinishedAs::kCommitted);
  auto check = adapter_->Begin(Gid(2));
  auto found = (*check)->Execute(Mongo(v1::MongoOp::KIND_FIND, R"({"_id": ")" + id + R"("})"));
  ASSERT_TRUE(found.ok());
  ASSERT_EQ(found->rows_size(), 1);
  EXPECT_NE(found->rows(0).values(0).find("\"balance\" : 7"), std::string::npos);
  ASSERT_TRUE((*check)->RollbackLocal().ok());
}

TEST_F(MongoAdapterTest, RollbackLeavesNoMarkerAndNoWrite) {
  auto s = adapter_->Begin(Gid(3));
  ASSERT_TRUE((*s)->Execute(Mongo(v1::MongoOp::KIND_INSERT, "", "", R"({"balance": 1})")).ok());
  ASSERT_TRUE((*s)->RollbackLocal().ok());
  EXPECT_EQ(*adapter_->ProveOnePhase(Gid(3)), FinishedAs::kAborted);
}

}  // namespace
}  // namespace txn::agent
