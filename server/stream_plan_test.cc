#include "server/stream_plan.h"

#include <algorithm>
#include <random>
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
    s->Add({"task" + std::to_string(i), "train", "en"}, sizes[i]);
  }
  s->digest = ContentHash(std::to_string(sizes.size()) + "/" + std::to_string(s->total()));
  return s;
}

StreamPlan Plan(std::shared_ptr<const ResolvedSelection> sel, PlanParams p) {
  auto plan = StreamPlan::Create(std::move(sel), p, kVersion, "secret-key-0123456789");
  EXPECT_THAT(plan, IsOk());
  return std::move(*plan);
}

// The selection position of view position j (one-component plans).
uint64_t Position(const StreamPlan& plan, uint64_t j) { return plan.order().At(plan.Sample(j)).position; }

TEST(StreamPlanTest, ShardsAreDisjointCompleteAndBalanced) {
  auto sel = Selection({7, 0, 13, 5});  // 25 instances, one empty group
  for (bool shuffled : {false, true}) {
    for (uint32_t count : {1u, 3u, 8u}) {
      std::multiset<uint64_t> all;
      uint64_t min_size = ~0ull, max_size = 0;
      for (uint32_t i = 0; i < count; ++i) {
        StreamPlan plan = Plan(sel, {i, count, false, {shuffled, 17, 2}});
        min_size = std::min(min_size, plan.shard_size());
        max_size = std::max(max_size, plan.shard_size());
        for (uint64_t j = 0; j < plan.shard_size(); ++j) all.insert(Position(plan, j));
      }
      EXPECT_EQ(all.size(), 25u);
      EXPECT_EQ(std::set<uint64_t>(all.begin(), all.end()).size(), 25u) << "duplicates";
      EXPECT_LE(max_size - min_size, 1u);
    }
  }
}

TEST(StreamPlanTest, DropRemainderGivesEqualShards) {
  auto sel = Selection({25});
  for (uint32_t i = 0; i < 8; ++i) EXPECT_EQ(Plan(sel, {i, 8, true, {true, 1, 0}}).shard_size(), 3u);
}

TEST(StreamPlanTest, ShuffleDependsOnSeedAndEpoch) {
  auto sel = Selection({100});
  auto order = [&](uint64_t seed, uint64_t epoch, bool shuffled) {
    StreamPlan p = Plan(sel, {0, 1, false, {shuffled, seed, epoch}});
    std::vector<uint64_t> v;
    for (uint64_t j = 0; j < p.shard_size(); ++j) v.push_back(Position(p, j));
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
  StreamPlan plan = Plan(sel, {1, 4, false, {true, 17, 2}});
  auto next = plan.Resume(plan.Token(7));
  ASSERT_THAT(next, IsOk());
  EXPECT_EQ(*next, 7u);

  EXPECT_THAT(Plan(sel, {2, 4, false, {true, 17, 2}}).Resume(plan.Token(7)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("sharding 1 of 4")));
  EXPECT_THAT(Plan(sel, {1, 4, false, {true, 17, 3}}).Resume(plan.Token(7)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("epoch 2")));
  EXPECT_THAT(Plan(Selection({51}), {1, 4, false, {true, 17, 2}}).Resume(plan.Token(7)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("different selection")));
  auto other_version = StreamPlan::Create(sel, {1, 4, false, {true, 17, 2}},
                                          "ffeeddccbbaa99887766554433221100", "secret-key-0123456789");
  EXPECT_THAT(other_version->Resume(plan.Token(7)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dataset version")));
  std::string tampered = plan.Token(7);
  tampered[tampered.size() - 20] ^= 1;  // flip a bit of the position
  EXPECT_THAT(plan.Resume(tampered),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("authentication failed")));
  auto other_key = StreamPlan::Create(sel, {1, 4, false, {true, 17, 2}}, kVersion, "another-key-0123456789");
  EXPECT_THAT(other_key->Resume(plan.Token(7)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("authentication failed")));
  EXPECT_THAT(plan.Resume("garbage"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not an m3serve resume token")));
  EXPECT_THAT(plan.Resume(plan.Token(99)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("beyond the shard size")));
}

// What one rank's DataLoader yields: worker k streams its view and cuts it
// into batches of B; the loader takes one batch from each worker in turn.
std::vector<std::vector<uint64_t>> RankBatches(const std::vector<OrderComponent>& comps, PlanParams p) {
  std::vector<std::vector<std::vector<uint64_t>>> per_worker(p.num_workers);
  for (uint32_t k = 0; k < p.num_workers; ++k) {
    p.worker = k;
    auto plan = StreamPlan::Create(comps, p, kVersion, "key");
    EXPECT_THAT(plan, IsOk());
    for (uint64_t j = 0; j < plan->shard_size(); ++j) {
      if (j % p.batch_size == 0) per_worker[k].emplace_back();
      per_worker[k].back().push_back(plan->Sample(j));
    }
  }
  std::vector<std::vector<uint64_t>> out;
  for (size_t i = 0;; ++i) {
    bool any = false;
    for (auto& w : per_worker) {
      if (i < w.size()) out.push_back(w[i]), any = true;
    }
    if (!any) break;
  }
  return out;
}

// A training job over random epochs (plain or mixed), checkpointed and
// resumed up to five times with a new world size, batch size and worker
// count each time: the samples consumed are exactly [0, end) once each,
// where only a dropped last step is left out.
TEST(StreamPlanTest, ElasticResumeConsumesEverySampleOnceProperty) {
  std::mt19937_64 rng(77);
  for (int round = 0; round < 300; ++round) {
    std::vector<OrderComponent> comps;
    const size_t m = 1 + rng() % 3;
    for (size_t c = 0; c < m; ++c) {
      comps.push_back({m == 1 ? "" : "t" + std::to_string(c), Selection({1 + rng() % 120}),
                       0.5 + rng() % 5});
    }
    PlanParams p;
    p.schedule = true;
    p.order.shuffled = rng() % 2;
    p.order.seed = rng();
    p.order.epoch = rng() % 3;
    p.drop_remainder = rng() % 2;
    if (m > 1 && rng() % 2) p.order.stratum = 1 + rng() % 16;
    const uint64_t epoch = StreamPlan::Create(comps, p, kVersion, "key")->epoch_samples();
    std::vector<int> consumed(epoch, 0);
    uint64_t g = 0;
    const int resumes = static_cast<int>(rng() % 6);
    for (int seg = 0; seg <= resumes; ++seg) {
      p.world_size = 1 + rng() % 4;
      p.batch_size = 1 + rng() % 8;
      p.num_workers = 1 + rng() % 3;
      p.start_sample = g;
      const uint64_t step = uint64_t{p.world_size} * p.batch_size;
      std::vector<std::vector<std::vector<uint64_t>>> ranks;
      for (uint32_t r = 0; r < p.world_size; ++r) {
        p.rank = r;
        ranks.push_back(RankBatches(comps, p));
      }
      size_t steps = ranks[0].size();
      for (const auto& b : ranks) steps = std::max(steps, b.size());
      if (p.drop_remainder) {
        for (const auto& b : ranks) ASSERT_EQ(b.size(), steps) << "round " << round;  // equal steps
      }
      // Batch i of every rank is step i's slice of the global sequence.
      for (uint32_t r = 0; r < p.world_size; ++r) {
        for (size_t i = 0; i < ranks[r].size(); ++i) {
          for (size_t o = 0; o < ranks[r][i].size(); ++o) {
            ASSERT_EQ(ranks[r][i][o], g + i * step + r * p.batch_size + o) << "round " << round;
          }
        }
      }
      // Consume a random number of steps (all of them in the last segment).
      const size_t take = seg == resumes ? steps : rng() % (steps + 1);
      for (const auto& b : ranks) {
        for (size_t i = 0; i < std::min(take, b.size()); ++i) {
          for (uint64_t x : b[i]) ++consumed[x];
        }
      }
      g += take * step;  // the job's data position: one number
    }
    // Everything before the dropped tail once, nothing after it.
    uint64_t end = epoch;
    if (p.drop_remainder && g < epoch) end = g;
    for (uint64_t x = 0; x < epoch; ++x) {
      ASSERT_EQ(consumed[x], x < end ? 1 : 0) << "round " << round << " sample " << x << " of " << epoch;
    }
    if (p.drop_remainder) EXPECT_LT(epoch - end, uint64_t{p.world_size} * p.batch_size);
  }
}

TEST(StreamPlanTest, ScheduleStartAtOrPastTheEndIsEmpty) {
  auto sel = Selection({40});
  PlanParams p;
  p.schedule = true;
  p.world_size = 2;
  p.batch_size = 4;
  for (uint64_t start : {40, 41, 1000}) {
    p.start_sample = start;
    EXPECT_EQ(Plan(sel, p).shard_size(), 0u);
  }
  p.start_sample = 36;  // a tail of 4: rank 0 takes it, rank 1 nothing
  EXPECT_EQ(Plan(sel, p).shard_size(), 4u);
  p.rank = 1;
  EXPECT_EQ(Plan(sel, p).shard_size(), 0u);
  p.drop_remainder = true;
  p.rank = 0;
  EXPECT_EQ(Plan(sel, p).shard_size(), 0u);
}

TEST(StreamPlanTest, BadScheduleNamesTheField) {
  auto sel = Selection({5});
  auto bad = [&](PlanParams p, const char* field) {
    p.schedule = true;
    EXPECT_THAT(StreamPlan::Create(sel, p, kVersion, "k"),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(field)));
  };
  PlanParams p;
  p.world_size = 0;
  bad(p, "schedule.world_size");
  p = {};
  p.world_size = 2, p.rank = 2;
  bad(p, "schedule.rank");
  p = {};
  p.batch_size = 0;
  bad(p, "schedule.batch_size");
  p = {};
  p.num_workers = 0;
  bad(p, "schedule.num_workers");
  p = {};
  p.num_workers = 2, p.worker = 2;
  bad(p, "schedule.worker");
}

TEST(StreamPlanTest, ScheduleTokensNameTheGeometry) {
  auto sel = Selection({50});
  PlanParams p;
  p.schedule = true;
  p.world_size = 2;
  p.batch_size = 4;
  StreamPlan plan = Plan(sel, p);
  PlanParams q = p;
  q.world_size = 3;
  EXPECT_THAT(Plan(sel, q).Resume(plan.Token(3)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rank 0 of world 2")));
  EXPECT_EQ(plan.fingerprint(), Plan(sel, q).fingerprint());  // the view is not the plan
  q = p;
  q.order.seed = 9;
  q.order.shuffled = true;
  EXPECT_NE(plan.fingerprint(), Plan(sel, q).fingerprint());
}

TEST(StreamPlanTest, BadShardingIsInvalidArgument) {
  auto sel = Selection({5});
  EXPECT_THAT(StreamPlan::Create(sel, {0, 0, false, {false, 0, 0}}, kVersion, "k"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("sharding.count")));
  EXPECT_THAT(StreamPlan::Create(sel, {3, 3, false, {false, 0, 0}}, kVersion, "k"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("sharding.index")));
}

}  // namespace
}  // namespace m3serve::server
