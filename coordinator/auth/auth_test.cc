#include <gtest/gtest.h>

#include <grpcpp/test/server_context_test_spouse.h>

#include <cstdio>
#include <fstream>

#include "coordinator/auth/call_authorizer.h"
#include "coordinator/auth/token_table.h"

#include "absl/strings/str_cat.h"

namespace txn::auth {
namespace {

constexpr char kClientToken[] = "client-token-0123456789";
constexpr char kAdminToken[] = "admin-token-0123456789ab";
constexpr char kAgentToken[] = "agent-token-0123456789ab";

std::string TokenFileText() {
  return absl::StrCat("# tokens\n\nclient ", kClientToken, " orders-service\nadmin ", kAdminToken,
                      "\nagent\t", kAgentToken, "\n");
}

TEST(TokenTable, FindsPrincipalsByToken) {
  absl::StatusOr<TokenTable> t = TokenTable::Parse(TokenFileText());
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->size(), 3u);
  std::optional<Principal> client = t->Find(kClientToken);
  ASSERT_TRUE(client.has_value());
  EXPECT_EQ(client->name, "orders-service");
  EXPECT_EQ(client->scope, Scope::kClient);
  std::optional<Principal> admin = t->Find(kAdminToken);
  ASSERT_TRUE(admin.has_value());
  EXPECT_EQ(admin->scope, Scope::kAdmin);
  // Unnamed: the scope and a digest prefix, never the token.
  EXPECT_EQ(admin->name.rfind("admin-", 0), 0u);
  EXPECT_EQ(admin->name.size(), 6u + 12u);
  EXPECT_EQ(admin->name.find("token"), std::string::npos);
  EXPECT_FALSE(t->Find("client-token-012345678").has_value());
  EXPECT_FALSE(t->Find("").has_value());
}

TEST(TokenTable, RefusesMalformedFilesNamingTheLineButNotTheToken) {
  struct Case {
    std::string text;
    std::string message;
  } cases[] = {
      {"client short", "line 1: a token must be at least 16 printable characters"},
      {"root abcdefghijklmnopqrstuvwxyz", "line 1: unknown scope 'root'"},
      {"client", "line 1: expected SCOPE TOKEN [NAME]"},
      {"\nclient abcdefghijklmnopq a b", "line 2: expected SCOPE TOKEN [NAME]"},
      {"client abcdefghijklmnopq\nadmin abcdefghijklmnopq", "line 2: this token is listed twice"},
      {"# nothing\n", "token file has no tokens"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<TokenTable> t = TokenTable::Parse(c.text);
    ASSERT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_NE(t.status().message().find(c.message), absl::string_view::npos)
        << t.status().message();
    EXPECT_EQ(t.status().message().find("abcdefghijklmnopq"), absl::string_view::npos);
  }
}

class Authorizer : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = testing::TempDir() + "/tokens";
    Write(TokenFileText());
    absl::StatusOr<std::unique_ptr<CallAuthorizer>> a = CallAuthorizer::FromFile(path_);
    ASSERT_TRUE(a.ok()) << a.status();
    authorizer_ = std::move(*a);
  }
  void Write(const std::string& text) { std::ofstream(path_) << text; }
  absl::StatusOr<std::string> Call(const std::string& authorization, Needs needs) {
    grpc::ServerContext ctx;
    grpc::testing::ServerContextTestSpouse spouse(&ctx);
    if (!authorization.empty()) spouse.AddClientMetadata("authorization", authorization);
    absl::StatusOr<Principal> p = authorizer_->Authorize(ctx, needs, "Test");
    if (!p.ok()) return p.status();
    return p->name;
  }
  std::string path_;
  std::unique_ptr<CallAuthorizer> authorizer_;
};

TEST_F(Authorizer, ScopesDecideWhoMayCallWhat) {
  const std::string client = absl::StrCat("Bearer ", kClientToken);
  const std::string admin = absl::StrCat("Bearer ", kAdminToken);
  const std::string agent = absl::StrCat("bearer ", kAgentToken);
  EXPECT_EQ(*Call(client, Needs::kClient), "orders-service");
  EXPECT_EQ(Call(client, Needs::kAdmin).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Call(client, Needs::kAgent).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(Call(admin, Needs::kAdmin).ok());
  EXPECT_TRUE(Call(admin, Needs::kClient).ok());
  EXPECT_TRUE(Call(agent, Needs::kAgent).ok());
  EXPECT_EQ(Call(agent, Needs::kClient).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Call("", Needs::kClient).status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(Call("Basic abc", Needs::kClient).status().code(), absl::StatusCode::kUnauthenticated);
  absl::Status unknown = Call("Bearer not-a-token-at-all-xx", Needs::kClient).status();
  EXPECT_EQ(unknown.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(unknown.message().find("not-a-token"), absl::string_view::npos);
}

TEST_F(Authorizer, ReloadSwapsTokensAndKeepsThemWhenTheFileIsBad) {
  const std::string old_client = absl::StrCat("Bearer ", kClientToken);
  Write("client a-brand-new-token-0001\n");
  ASSERT_TRUE(authorizer_->Reload().ok());
  EXPECT_EQ(Call(old_client, Needs::kClient).status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(Call("Bearer a-brand-new-token-0001", Needs::kClient).ok());
  Write("client short\n");
  EXPECT_EQ(authorizer_->Reload().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Call("Bearer a-brand-new-token-0001", Needs::kClient).ok());
}

TEST(OpenAuthorizer, AllowsEveryCallAsAnonymous) {
  CallAuthorizer open;
  grpc::ServerContext ctx;
  EXPECT_EQ(open.Authorize(ctx, Needs::kAdmin, "Test")->name, "");
  EXPECT_FALSE(open.enabled());
}

}  // namespace
}  // namespace txn::auth
