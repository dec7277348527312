#include "storage/key_codec.h"

#include <algorithm>
#include <vector>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace m3serve::storage {
namespace {

using ::m3serve::testing::IsOk;
using ::m3serve::testing::StatusIs;
using ::testing::HasSubstr;

TEST(KeyCodecTest, InstanceKeyRoundTrips) {
  GroupKey g{"vqa-v2", "train", "fuv"};
  for (uint64_t ord : {0ull, 1ull, 255ull, 256ull, 1ull << 40, ~0ull}) {
    GroupKey out;
    uint64_t o = 0;
    ASSERT_THAT(ParseInstanceKey(InstanceKey(g, ord), &out, &o), IsOk());
    EXPECT_EQ(out, g);
    EXPECT_EQ(o, ord);
  }
}

TEST(KeyCodecTest, KeysSortByTaskSplitLangOrdinal) {
  // Tuples in the intended order, including names that are prefixes of others
  // ("coco" < "coco-cn") and ordinals crossing byte boundaries.
  std::vector<std::pair<GroupKey, uint64_t>> ordered = {
      {{"coco", "test", "en"}, 5},         {{"coco", "train", "en"}, 0},
      {{"coco", "train", "en"}, 1},        {{"coco", "train", "en"}, 256},
      {{"coco", "train", "en"}, 1ull << 33}, {{"coco", "train", "zh"}, 0},
      {{"coco", "validation", "en"}, 0},   {{"coco-cn", "train", "zh"}, 0},
      {{"vqa-v2", "train", "af"}, 0},      {{"vqa-v2", "train", "fr"}, 0},
  };
  std::vector<std::string> keys;
  for (const auto& [g, o] : ordered) keys.push_back(InstanceKey(g, o));
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
}

TEST(KeyCodecTest, GroupRangeContainsExactlyItsKeys) {
  GroupKey g{"coco", "train", "en"};
  std::string lo = GroupPrefix(g), hi = GroupUpperBound(g);
  EXPECT_LE(lo, InstanceKey(g, 0));
  EXPECT_LT(InstanceKey(g, ~0ull), hi);
  // A task whose name extends this one sorts outside the range.
  EXPECT_GE(InstanceKey({"coco-cn", "train", "en"}, 0), hi);
  EXPECT_GE(InstanceKey({"coco", "train", "en-x"}, 0), hi);
  EXPECT_LT(InstanceKey({"coco", "test", "en"}, ~0ull), lo);
}

TEST(KeyCodecTest, InstanceIdRoundTripsAndRejectsGarbage) {
  GroupKey g;
  uint64_t o;
  ASSERT_THAT(ParseInstanceId(FormatInstanceId({"okvqa", "validation", "zh"}, 42), &g, &o), IsOk());
  EXPECT_EQ(g, (GroupKey{"okvqa", "validation", "zh"}));
  EXPECT_EQ(o, 42u);
  EXPECT_THAT(ParseInstanceId("okvqa/validation/42", &g, &o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("task/split/lang/ordinal")));
  EXPECT_THAT(ParseInstanceId("okvqa/validation/zh/x1", &g, &o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a canonical decimal")));
  // Only the canonical spelling names an instance: no aliases of "1".
  for (const char* alias : {"01", " 1", "1 ", "+1", "00", "", "1e0", "18446744073709551616"}) {
    EXPECT_THAT(ParseInstanceId(std::string("okvqa/validation/zh/") + alias, &g, &o),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("canonical"))) << "'" << alias << "'";
  }
  ASSERT_THAT(ParseInstanceId("okvqa/validation/zh/0", &g, &o), IsOk());
  EXPECT_EQ(o, 0u);
  ASSERT_THAT(ParseInstanceId("okvqa/validation/zh/18446744073709551615", &g, &o), IsOk());
  EXPECT_EQ(o, ~0ull);
  EXPECT_THAT(ParseInstanceId("ok vqa/validation/zh/1", &g, &o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("task")));
}

TEST(KeyCodecTest, ValidateNameRejectsSeparators) {
  EXPECT_THAT(ValidateName("vqa-v2", "task"), IsOk());
  EXPECT_THAT(ValidateName(std::string("a\0b", 3), "task"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidateName("a/b", "split"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("split")));
  EXPECT_THAT(ValidateName("", "language"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
}

}  // namespace
}  // namespace m3serve::storage
