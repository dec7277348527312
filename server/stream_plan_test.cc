#include "server/stream_plan.h"

#include <algorithm>
#include <set>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace m3serve::server {
namespace {

using ::m3serve::testing::IsOk;
using ::m3serve::testing::StatusIs;
using ::testing::HasSubstr;

const std::string kVersion = "00112233445566778899aabbccddeeff";

std::shared_ptr<const ResolvedSelection> Selection(std::vector<uint64_t> sizes) {
  auto s = std::make_shared<ResolvedSelection>();
  for (size_t i = 0; i < sizes.size(); ++i) {
    s->groups.push_back({"task" + std::to_string(i), "train", "en"});
    s->prefix.push_back(s->prefix.back() + sizes[i]);
  }
  s->digest = ContentHash(std::to_string(sizes.size()) + "/" + std::to_string(s->total()));
  return s;
}

StreamPlan Plan(std::shared_ptr<const ResolvedSelection> sel, PlanParams p) {
  auto plan = StreamPlan::Create(std::move(sel), p, kVersion, "secret-key-0123456789");
  EXPECT_THAT(plan, IsOk());
  return std::move(*plan);
}

TEST(StreamPlanTest, ShardsAreDisjointCompleteAndBalanced) {
  auto sel = Selection({7, 0, 13, 5});  // 25 instances, one empty group
  for (bool shuffled : {false, true}) {
    for (uint32_t count : {1u, 3u, 8u}) {
      std::multiset<uint64_t> all;
      uint64_t min_size = ~0ull, max_size = 0;
      for (uint32_t i = 0; i < count; ++i) {
        StreamPlan plan = Plan(sel, {i, count, false, shuffled, 17, 2});
        min_size = std::min(min_size, plan.shard_size());
        max_size = std::max(max_size, plan.shard_size());
        for (uint64_t j = 0; j < plan.shard_size(); ++j) all.insert(plan.SelectionPosition(j));
      }
      EXPECT_EQ(all.size(), 25u);
      EXPECT_EQ(std::set<uint64_t>(all.begin(), all.end()).size(), 25u) << "duplicates";
      EXPECT_LE(max_size - min_size, 1u);
    }
  }
}

TEST(StreamPlanTest, DropRemainderGivesEqualShards) {
  auto sel = Selection({25});
  for (uint32_t i = 0; i < 8; ++i) EXPECT_EQ(Plan(sel, {i, 8, true, true, 1, 0}).shard_size(), 3u);
}

TEST(StreamPlanTest, ShuffleDependsOnSeedAndEpoch) {
  auto sel = Selection({100});
  auto order = [&](uint64_t seed, uint64_t epoch, bool shuffled) {
    StreamPlan p = Plan(sel, {0, 1, false, shuffled, seed, epoch});
    std::vector<uint64_t> v;
    for (uint64_t j = 0; j < p.shard_size(); ++j) v.push_back(p.SelectionPosition(j));
    return v;
  };
  EXPECT_EQ(order(17, 2, true), order(17, 2, true));
  EXPECT_NE(order(17, 2, true), order(17, 3, true));
  EXPECT_NE(order(17, 2, true), order(18, 2, true));
  std::vector<uint64_t> seq = order(0, 0, false);
  EXPECT_TRUE(std::is_sorted(seq.begin(), seq.end()));
}

TEST(StreamPlanTest, LocateMapsPositionsToGroups) {
  auto sel = Selection({3, 0, 2});
  EXPECT_EQ(sel->Locate(0), std::make_pair(size_t{0}, uint64_t{0}));
  EXPECT_EQ(sel->Locate(2), std::make_pair(size_t{0}, uint64_t{2}));
  EXPECT_EQ(sel->Locate(3), std::make_pair(size_t{2}, uint64_t{0}));
  EXPECT_EQ(sel->Locate(4), std::make_pair(size_t{2}, uint64_t{1}));
}

TEST(StreamPlanTest, TokensRoundTripAndNameMismatches) {
  auto sel = Selection({50});
  StreamPlan plan = Plan(sel, {1, 4, false, true, 17, 2});
  auto next = plan.Resume(plan.Token(7));
  ASSERT_THAT(next, IsOk());
  EXPECT_EQ(*next, 7u);

  EXPECT_THAT(Plan(sel, {2, 4, false, true, 17, 2}).Resume(plan.Token(7)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("sharding 1 of 4")));
  EXPECT_THAT(Plan(sel, {1, 4, false, true, 17, 3}).Resume(plan.Token(7)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("epoch 2")));
  EXPECT_THAT(Plan(Selection({51}), {1, 4, false, true, 17, 2}).Resume(plan.Token(7)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("different selection")));
  auto other_version = StreamPlan::Create(sel, {1, 4, false, true, 17, 2},
                                          "ffeeddccbbaa99887766554433221100", "secret-key-0123456789");
  EXPECT_THAT(other_version->Resume(plan.Token(7)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dataset version")));
  std::string tampered = plan.Token(7);
  tampered[tampered.size() - 20] ^= 1;  // flip a bit of the position
  EXPECT_THAT(plan.Resume(tampered),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("authentication failed")));
  auto other_key = StreamPlan::Create(sel, {1, 4, false, true, 17, 2}, kVersion, "another-key-0123456789");
  EXPECT_THAT(other_key->Resume(plan.Token(7)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("authentication failed")));
  EXPECT_THAT(plan.Resume("garbage"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not an m3serve resume token")));
  EXPECT_THAT(plan.Resume(plan.Token(99)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("beyond the shard size")));
}

TEST(StreamPlanTest, BadShardingIsInvalidArgument) {
  auto sel = Selection({5});
  EXPECT_THAT(StreamPlan::Create(sel, {0, 0, false, false, 0, 0}, kVersion, "k"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("sharding.count")));
  EXPECT_THAT(StreamPlan::Create(sel, {3, 3, false, false, 0, 0}, kVersion, "k"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("sharding.index")));
}

}  // namespace
}  // namespace m3serve::server
