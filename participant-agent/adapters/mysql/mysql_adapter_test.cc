// What can be checked without a server: DSN parsing, xid literals, version gates.
#include "participant-agent/adapters/mysql/mysql_adapter.h"

#include <gtest/gtest.h>

#include "participant-agent/adapters/mysql/mysql_dsn.h"

namespace txn::agent {
namespace {

TEST(MysqlDsn, KeyValueForm) {
  auto d = ParseMysqlDsn("host=db.local port=3307 user=app password='p w\\'x' dbname=ledger");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->host, "db.local");
  EXPECT_EQ(d->port, 3307u);
  EXPECT_EQ(d->user, "app");
  EXPECT_EQ(d->password, "p w'x");
  EXPECT_EQ(d->dbname, "ledger");
}

TEST(MysqlDsn, UriForm) {
  auto d = ParseMysqlDsn("mysql://app:s%40cret@10.0.0.5:3308/ledger?x=1");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->host, "10.0.0.5");
  EXPECT_EQ(d->port, 3308u);
  EXPECT_EQ(d->user, "app");
  EXPECT_EQ(d->password, "s@cret");
  EXPECT_EQ(d->dbname, "ledger");
}

TEST(MysqlDsn, ErrorsNameTheProblemButNotThePassword) {
  auto d = ParseMysqlDsn("host=x colour=blue password=hunter2");
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(d.status().message().find("colour"), std::string::npos);
  EXPECT_EQ(d.status().message().find("hunter2"), std::string::npos);
  EXPECT_FALSE(ParseMysqlDsn("port=99999").ok());
  EXPECT_FALSE(ParseMysqlDsn("password='open").ok());
  EXPECT_FALSE(ParseMysqlDsn("justaword").ok());
  // A password pasted without its key, or a port that is one: never echoed.
  for (const char* dsn : {"host=x user=app hunter2-secret", "mysql://app:hunter2@x:hunter2/db",
                          "host=x port=hunter2"}) {
    absl::StatusOr<MysqlDsn> bad = ParseMysqlDsn(dsn);
    ASSERT_FALSE(bad.ok()) << dsn;
    EXPECT_EQ(bad.status().message().find("hunter2"), absl::string_view::npos)
        << bad.status().message();
  }
}

TEST(Xid, IsHexLiteralWithOurFormatId) {
  EXPECT_EQ(XidLiteral("txc_n1-1-1_0"), "X'7478635f6e312d312d315f30',X'',7868");
}

TEST(ServerVersion, GatesXaSupport) {
  ServerVersion v;
  ASSERT_TRUE(ParseServerVersion("10.11.19-MariaDB-0+deb12u1", &v));
  EXPECT_TRUE(v.mariadb);
  EXPECT_TRUE(CheckXaSupport(v).ok());
  ASSERT_TRUE(ParseServerVersion("10.4.30-MariaDB", &v));
  EXPECT_EQ(CheckXaSupport(v).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(ParseServerVersion("10.5.1-MariaDB", &v));
  EXPECT_FALSE(CheckXaSupport(v).ok());
  ASSERT_TRUE(ParseServerVersion("10.5.2-MariaDB", &v));
  EXPECT_TRUE(CheckXaSupport(v).ok());
  ASSERT_TRUE(ParseServerVersion("8.0.36", &v));
  EXPECT_FALSE(v.mariadb);
  EXPECT_TRUE(CheckXaSupport(v).ok());
  ASSERT_TRUE(ParseServerVersion("5.7.6-log", &v));
  EXPECT_FALSE(CheckXaSupport(v).ok());
  EXPECT_FALSE(ParseServerVersion("garbage", &v));
}

}  // namespace
}  // namespace txn::agent
