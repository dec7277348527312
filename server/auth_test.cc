#include "server/auth.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/test_files.h"

namespace m3serve::server {
namespace {

using ::m3serve::testing::IsOk;
using ::m3serve::testing::StatusIs;
using ::testing::HasSubstr;

using ::m3serve::server::testing::WriteTempFile;

TEST(TokenTableTest, AuthenticatesKnownTokensOnly) {
  auto t = TokenTable::Load(WriteTempFile("tokens_ok", R"({"tokens": [
      {"token": "aaaaaaaaaaaaaaaa-team-a", "identity": "team-a", "allowed_commercial_use": ["yes"], "max_streams": 2},
      {"token": "bbbbbbbbbbbbbbbb-team-b", "identity": "team-b"}]})"));
  ASSERT_THAT(t, IsOk());
  const Identity* a = t->Authenticate("aaaaaaaaaaaaaaaa-team-a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->name, "team-a");
  EXPECT_EQ(a->max_streams, 2);
  EXPECT_EQ(a->entitlement.allowed_commercial_use.size(), 1u);
  EXPECT_EQ(t->Authenticate("bbbbbbbbbbbbbbbb-team-b")->name, "team-b");
  EXPECT_EQ(t->Authenticate("aaaaaaaaaaaaaaaa-team-"), nullptr);
  EXPECT_EQ(t->Authenticate(""), nullptr);
}

TEST(TokenTableTest, RejectsWeakOrDuplicateEntries) {
  EXPECT_THAT(TokenTable::Load(WriteTempFile("tokens_short", R"({"tokens": [{"token": "short", "identity": "x"}]})")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at least 16")));
  EXPECT_THAT(TokenTable::Load(WriteTempFile("tokens_dup", R"({"tokens": [
      {"token": "aaaaaaaaaaaaaaaaaaaa", "identity": "x"}, {"token": "aaaaaaaaaaaaaaaaaaaa", "identity": "y"}]})")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("same token")));
  EXPECT_THAT(TokenTable::Load(WriteTempFile("tokens_key", R"({"tokens": [{"token": "aaaaaaaaaaaaaaaaaaaa", "identity": "x", "role": "admin"}]})")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown key 'role'")));
}

TEST(TokenTableTest, BearerHeader) {
  EXPECT_EQ(BearerToken("Bearer abc"), "abc");
  EXPECT_EQ(BearerToken("bearer   abc "), "abc");
  EXPECT_EQ(BearerToken("Basic abc"), "");
  EXPECT_EQ(BearerToken("abc"), "");
}

}  // namespace
}  // namespace m3serve::server
