#include "server/policy.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

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

TEST(PolicyTest, LoadsAndAdmits) {
  auto p = LoadPolicy(WriteTempFile("policy_ok", R"({"allowed_licenses": ["CC BY 4.0", "Custom"],
      "allowed_commercial_use": ["yes", "unknown"], "excluded_tasks": ["winoground"]})"));
  ASSERT_THAT(p, IsOk());
  // The file's spellings become SPDX ids, the form task licenses take.
  EXPECT_EQ(p->allowed_licenses, (std::set<std::string>{"CC-BY-4.0", "LicenseRef-Custom"}));
  storage::TaskInfo t{"gqa", "vqa", "GQA", "CC-BY-4.0", storage::CommercialUse::kUnknown};
  EXPECT_TRUE(p->Admits(t));
  t.license = "LicenseRef-NonCommercial";
  EXPECT_FALSE(p->Admits(t));
  t.license = "LicenseRef-Custom";
  t.commercial_use = storage::CommercialUse::kNo;
  EXPECT_FALSE(p->Admits(t));
  t.commercial_use = storage::CommercialUse::kYes;
  t.name = "winoground";
  EXPECT_FALSE(p->Admits(t));
  EXPECT_TRUE(LicensePolicy{}.Admits(t));
}

TEST(PolicyTest, ErrorsNameTheKey) {
  EXPECT_THAT(LoadPolicy(WriteTempFile("policy_bad1", R"({"allowed_commercial_use": ["maybe"]})")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'maybe'")));
  EXPECT_THAT(LoadPolicy(WriteTempFile("policy_bad2", R"({"allow_licenses": ["x"]})")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown key 'allow_licenses'")));
  EXPECT_THAT(LoadPolicy(WriteTempFile("policy_bad4", R"({"allowed_licenses": ["CC BY 5.0"]})")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("'allowed_licenses': 'CC BY 5.0' is not a known license (known: ")));
  EXPECT_THAT(LoadPolicy(WriteTempFile("policy_bad3", R"({"excluded_tasks": "x"})")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("list of strings")));
  EXPECT_THAT(LoadPolicy("/nonexistent/policy.json"), StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace m3serve::server
