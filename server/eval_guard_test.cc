#include "server/eval_guard.h"

#include <map>
#include <random>
#include <set>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/dataset.h"
#include "server/stream_plan.h"
#include "server/test_world.h"

namespace m3serve::server {
namespace {

using ::m3serve::testing::IsOk;
using ::m3serve::testing::StatusIs;
using ::testing::HasSubstr;
using storage::GroupKey;
using testing::MakeWorld;
using testing::Subset;
using testing::World;

TEST(GroupExclusionTest, RunsMapKeptPositionsToOrdinals) {
  GroupExclusion ex;  // group of 10: 2,3 and 7 left out
  ex.AddRun(2, 4);
  ex.AddRun(7, 8);
  EXPECT_EQ(ex.excluded(), 3u);
  std::vector<uint64_t> kept;
  for (uint64_t i = 0; i < 7; ++i) kept.push_back(ex.KeptOrdinal(i));
  EXPECT_EQ(kept, (std::vector<uint64_t>{0, 1, 4, 5, 6, 8, 9}));
  for (uint64_t o = 0; o < 10; ++o) EXPECT_EQ(ex.Excludes(o), o == 2 || o == 3 || o == 7) << o;
}

std::string Id(const GroupKey& g, uint64_t o) { return g.ToString() + "/" + std::to_string(o); }

// The guard against a brute-force computation over every instance, for random
// stores, evaluation sets and selections: Resolve keeps exactly the instances
// that share no image with the evaluation set, Count's losses per task are
// the instances it leaves out, WhyNot names the guard for exactly those, and
// a shuffled, sharded stream of the selection serves each kept instance once.
TEST(EvalGuardTest, KeepsExactlyTheInstancesSharingNoImageWithTheEvaluationSet) {
  for (uint64_t seed = 0; seed < 150; ++seed) {
    SCOPED_TRACE(seed);
    std::mt19937_64 rng(seed);
    World w = MakeWorld(rng);
    if (w.catalog.counts.empty()) continue;
    auto dataset = testing::IndexedDataset(w);

    SelectionSpec spec;
    spec.exclude_eval_images = true;
    std::set<std::string> known_splits;
    for (const auto& [g, n] : w.catalog.counts) known_splits.insert(g.split);
    spec.eval_splits = Subset(rng, std::vector<std::string>(known_splits.begin(), known_splits.end()));
    spec.eval_tasks = Subset(rng, std::vector<std::string>{"coco", "okvqa", "vist", "vqa-v2"});
    if (rng() % 2) spec.splits = {"train"};
    if (!known_splits.count("train")) spec.splits.clear();
    if (rng() % 3 == 0) spec.languages = {"zh"};
    bool has_zh = false;
    for (const auto& [g, n] : w.catalog.counts) has_zh = has_zh || g.lang == "zh";
    if (!has_zh) spec.languages.clear();

    // Brute force.
    std::set<std::string> eval_splits(spec.eval_splits.begin(), spec.eval_splits.end());
    if (eval_splits.empty()) eval_splits = {"test", "validation"};
    std::set<std::string> eval_tasks(spec.eval_tasks.begin(), spec.eval_tasks.end());
    std::set<Hash128> eval_images;
    for (const auto& x : w.instances) {
      if (eval_splits.count(x.group.split) && (eval_tasks.empty() || eval_tasks.count(x.group.task))) {
        eval_images.insert(x.images.begin(), x.images.end());
      }
    }
    std::vector<std::string> expected;
    std::set<std::string> excluded;
    std::map<std::string, uint64_t> losses;
    for (const auto& x : w.instances) {
      if (!spec.splits.empty() && x.group.split != spec.splits[0]) continue;
      if (!spec.languages.empty() && x.group.lang != spec.languages[0]) continue;
      bool shared = false;
      for (const auto& h : x.images) shared = shared || eval_images.count(h);
      if (shared) {
        excluded.insert(Id(x.group, x.ordinal));
        ++losses[x.group.task];
      } else {
        expected.push_back(Id(x.group, x.ordinal));
      }
    }

    auto r = dataset->Resolve(spec);
    ASSERT_THAT(r, IsOk());
    std::vector<std::string> got;
    for (uint64_t p = 0; p < r->total(); ++p) {
      auto [g, o] = r->Locate(p);
      got.push_back(Id(r->groups[g], o));
    }
    EXPECT_EQ(got, expected);
    std::map<std::string, uint64_t> got_losses;
    for (const auto& [g, n] : r->guard_losses) got_losses[g.task] += n;
    EXPECT_EQ(got_losses, losses);
    for (const auto& x : w.instances) {
      const std::string why = r->WhyNot(x.group, x.ordinal);
      const std::string id = Id(x.group, x.ordinal);
      if (excluded.count(id)) {
        EXPECT_THAT(why, HasSubstr("shares an image with the evaluation set")) << id;
      } else if (std::find(expected.begin(), expected.end(), id) != expected.end()) {
        EXPECT_EQ(why, "") << id;
      } else {
        EXPECT_THAT(why, HasSubstr("is not in the selection")) << id;
      }
    }

    // Shuffled and sharded: each kept instance exactly once over the shards.
    if (r->total() == 0) continue;
    auto sel = std::make_shared<const ResolvedSelection>(*r);
    const uint32_t shards = 1 + static_cast<uint32_t>(rng() % 4);
    std::multiset<std::string> streamed;
    for (uint32_t s = 0; s < shards; ++s) {
      PlanParams params;
      params.shard_index = s;
      params.shard_count = shards;
      params.order.shuffled = true;
      params.order.seed = seed;
      auto plan = StreamPlan::Create(sel, params, "00112233445566778899aabbccddeeff", "key");
      ASSERT_THAT(plan, IsOk());
      for (uint64_t j = 0; j < plan->shard_size(); ++j) {
        StreamPlan::Located at = plan->Locate(j);
        streamed.insert(Id(*at.group, at.ordinal));
      }
    }
    EXPECT_EQ(streamed, std::multiset<std::string>(expected.begin(), expected.end()));
  }
}

TEST(EvalGuardTest, TheGuardIsPartOfTheSelectionsIdentity) {
  std::mt19937_64 rng(7);
  World w = MakeWorld(rng);
  auto dataset = testing::IndexedDataset(w);
  SelectionSpec plain, guarded, train_only;
  guarded.exclude_eval_images = true;
  train_only.exclude_eval_images = true;
  train_only.eval_splits = {"train"};
  auto a = dataset->Resolve(plain), b = dataset->Resolve(guarded), c = dataset->Resolve(train_only);
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  ASSERT_THAT(c, IsOk());
  EXPECT_NE(a->digest, b->digest);
  EXPECT_NE(b->digest, c->digest);
  EXPECT_EQ(b->guard, "test+validation of every task");
}

// The exclusion cache keeps the evaluation sets in use: one asked for between
// every other is never evicted, however many others pass through.
TEST(EvalGuardTest, TheCacheKeepsTheSetsInUse) {
  std::mt19937_64 rng(8);
  World w = MakeWorld(rng);
  auto dataset = Dataset::FromCatalog(w.catalog, LicensePolicy{});
  dataset->SetImageIndex(std::make_shared<const storage::ImageIndex>(w.index));
  // The set in use sorts before every other ("test of coco" < "test+validation
  // of ..."), so evicting in key order would drop it first.
  const std::string split = "test";
  ASSERT_TRUE(std::any_of(w.catalog.counts.begin(), w.catalog.counts.end(),
                          [&](const auto& c) { return c.first.split == split; }));
  SelectionSpec in_use;
  in_use.exclude_eval_images = true;
  in_use.eval_splits = {split};
  in_use.eval_tasks = {"coco"};
  auto first = dataset->EvalGuard(in_use, "");
  ASSERT_THAT(first, IsOk());
  const std::vector<std::string> tasks = {"coco", "okvqa", "vist", "vqa-v2"};
  int others = 0;
  for (int with_split = 0; with_split < 2; ++with_split) {
    for (int mask = 1; mask < 16; ++mask) {
      SelectionSpec other;
      other.exclude_eval_images = true;
      for (int t = 0; t < 4; ++t) {
        if (mask & (1 << t)) other.eval_tasks.push_back(tasks[static_cast<size_t>(t)]);
      }
      if (with_split) other.eval_splits = {split};
      ASSERT_THAT(dataset->EvalGuard(other, ""), IsOk());
      ++others;
      auto again = dataset->EvalGuard(in_use, "");
      ASSERT_THAT(again, IsOk());
      EXPECT_EQ(again->get(), first->get()) << "evicted after " << others << " other sets";
    }
  }
  EXPECT_GT(others, 16);
}

TEST(EvalGuardTest, BadEvaluationSetsAreInvalidArguments) {
  std::mt19937_64 rng(3);
  World w = MakeWorld(rng);
  auto dataset = Dataset::FromCatalog(w.catalog, LicensePolicy{});
  SelectionSpec spec;
  spec.exclude_eval_images = true;
  // No index: the guard cannot be served, and says how to get one.
  EXPECT_THAT(dataset->Resolve(spec),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("m3serve-admin ingest")));
  dataset->SetImageIndex(std::make_shared<const storage::ImageIndex>(w.index));
  spec.eval_splits = {"dev"};
  EXPECT_THAT(dataset->Resolve(spec),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("selection.eval_splits: unknown split 'dev' (known: ")));
  spec.eval_splits = {};
  spec.eval_tasks = {"imagenet"};
  EXPECT_THAT(dataset->Resolve(spec),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("selection.eval_tasks: unknown task 'imagenet' (known: coco, okvqa")));
  spec.exclude_eval_images = false;
  spec.eval_tasks = {"coco"};
  EXPECT_THAT(dataset->Resolve(spec),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("without selection.exclude_eval_images")));
}

}  // namespace
}  // namespace m3serve::server
