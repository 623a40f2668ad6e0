#include "participant-agent/statement_allow_list.h"

#include <gtest/gtest.h>

namespace txn::agent {
namespace {

constexpr char kList[] = R"(
debit:
  sql: UPDATE acct SET bal = bal - $1 WHERE id = $2 AND bal >= $1
  params: 2
balance:
  sql: SELECT bal FROM acct WHERE id = $1
  params: 1
)";

v1::Operation Named(const std::string& name, std::vector<std::string> params) {
  v1::Operation op;
  op.mutable_sql()->set_name(name);
  for (auto& p : params) op.mutable_sql()->add_params(p);
  op.mutable_sql()->set_expect_rows_affected(1);
  return op;
}

TEST(StatementAllowList, ANamedStatementGetsItsTextAndKeepsTheRest) {
  auto list = StatementAllowList::Parse(kList, common::SqlDialect::kPostgres);
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->size(), 2u);
  auto op = list->Resolve(Named("debit", {"5", "7"}));
  ASSERT_TRUE(op.ok()) << op.status();
  EXPECT_EQ(op->sql().text(), "UPDATE acct SET bal = bal - $1 WHERE id = $2 AND bal >= $1");
  EXPECT_TRUE(op->sql().name().empty());
  EXPECT_EQ(op->sql().params_size(), 2);
  EXPECT_EQ(op->sql().expect_rows_affected(), 1);
}

TEST(StatementAllowList, RefusesRawSqlUnknownNamesAndWrongParameterCounts) {
  auto list = StatementAllowList::Parse(kList, common::SqlDialect::kPostgres);
  ASSERT_TRUE(list.ok());
  v1::Operation raw;
  raw.mutable_sql()->set_text("UPDATE acct SET bal = 0");
  EXPECT_EQ(list->Resolve(raw).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(list->Resolve(Named("drop_all", {})).status().code(), absl::StatusCode::kNotFound);
  absl::Status wrong = list->Resolve(Named("debit", {"5"})).status();
  EXPECT_EQ(wrong.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(wrong.message().find("takes 2 parameters, got 1"), absl::string_view::npos);
}

TEST(StatementAllowList, WithoutAListNamesAreRefusedAndTextPasses) {
  EXPECT_EQ(ResolveOperation(nullptr, Named("debit", {"1", "2"})).status().code(),
            absl::StatusCode::kFailedPrecondition);
  v1::Operation raw;
  raw.mutable_sql()->set_text("SELECT 1");
  EXPECT_EQ(ResolveOperation(nullptr, raw)->sql().text(), "SELECT 1");
}

TEST(StatementAllowList, AListedStatementMustPassThePolicy) {
  for (const char* yaml :
       {"evil:\n  sql: COPY (SELECT 1) TO PROGRAM 'id'\n  params: 0\n",
        "x:\n  sql: SELECT 1\n", "[1, 2]", "", "x:\n  sql: SELECT 1\n  params: many\n"}) {
    auto list = StatementAllowList::Parse(yaml, common::SqlDialect::kPostgres);
    EXPECT_EQ(list.status().code(), absl::StatusCode::kInvalidArgument) << yaml;
  }
  auto mysql = StatementAllowList::Parse("f:\n  sql: SELECT LOAD_FILE(?)\n  params: 1\n",
                                         common::SqlDialect::kMysql);
  EXPECT_NE(mysql.status().message().find("LOAD_FILE() reads a server file"),
            absl::string_view::npos)
      << mysql.status();
}

}  // namespace
}  // namespace txn::agent
