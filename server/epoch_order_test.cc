#include "server/epoch_order.h"

#include <algorithm>
#include <cmath>
#include <map>
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

std::shared_ptr<const ResolvedSelection> Sel(const std::string& task, uint64_t n) {
  auto s = std::make_shared<ResolvedSelection>();
  s->Add({task, "train", "en"}, n);
  s->Seal();
  return s;
}

std::vector<OrderComponent> Components(const std::vector<uint64_t>& sizes, const std::vector<double>& weights) {
  std::vector<OrderComponent> out;
  for (size_t i = 0; i < sizes.size(); ++i) {
    out.push_back({"t" + std::to_string(i), Sel("t" + std::to_string(i), sizes[i]), weights[i]});
  }
  return out;
}

std::shared_ptr<const EpochOrder> Make(std::vector<OrderComponent> c, OrderParams p) {
  auto o = EpochOrder::Create(std::move(c), p);
  EXPECT_THAT(o, IsOk());
  return *o;
}

TEST(EpochOrderTest, PlainSelectionIsAPermutationPerEpoch) {
  for (bool shuffled : {false, true}) {
    auto o = Make(Components({97}, {1}), {shuffled, 5, 3, 0, 0});
    ASSERT_EQ(o->size(), 97u);
    std::set<uint64_t> seen;
    for (uint64_t g = 0; g < o->size(); ++g) seen.insert(o->At(g).position);
    EXPECT_EQ(seen.size(), 97u);
    EXPECT_EQ(*seen.rbegin(), 96u);
  }
}

// Random mixtures: quotas are a Hamilton apportionment of the epoch, every
// sample of the epoch is one of a component's quota, and over epochs each
// component cycles through all of its instances (passes are permutations).
TEST(EpochOrderTest, MixtureQuotasRepeatsAndSubsamplesProperty) {
  std::mt19937_64 rng(1234);
  for (int round = 0; round < 60; ++round) {
    const size_t m = 1 + rng() % 5;
    std::vector<uint64_t> sizes;
    std::vector<double> weights;
    double wsum = 0;
    for (size_t c = 0; c < m; ++c) {
      sizes.push_back(1 + rng() % 40);
      weights.push_back(0.05 + (rng() % 1000) / 100.0);
      wsum += weights.back();
    }
    OrderParams p;
    p.shuffled = rng() % 2;
    p.seed = rng();
    p.epoch_size = 1 + rng() % 150;
    p.stratum = rng() % 3 == 0 ? 1 + rng() % 20 : 0;
    const int epochs = 6;
    std::vector<std::map<uint64_t, int>> seen(m);
    uint64_t quota_sum = 0;
    std::vector<uint64_t> quota(m);
    for (int e = 0; e < epochs; ++e) {
      p.epoch = e;
      auto o = Make(Components(sizes, weights), p);
      ASSERT_EQ(o->size(), p.epoch_size);
      std::vector<uint64_t> count(m, 0);
      EpochOrder::Cursor cur(o.get());
      for (uint64_t g = 0; g < o->size(); ++g) {
        auto s = cur.At(g);
        ASSERT_LT(s.component, m);
        ASSERT_LT(s.position, sizes[s.component]);
        ++count[s.component];
        ++seen[s.component][s.position];
        // Random access agrees with the sequential cursor.
        if (g % 7 == 0) {
          auto r = o->At(g);
          ASSERT_EQ(r.component, s.component);
          ASSERT_EQ(r.position, s.position);
        }
      }
      quota_sum = 0;
      for (size_t c = 0; c < m; ++c) {
        EXPECT_EQ(count[c], o->quota(c)) << "round " << round;
        quota[c] = o->quota(c);
        quota_sum += o->quota(c);
        const double ideal = p.epoch_size * weights[c] / wsum;
        EXPECT_LE(std::abs(static_cast<double>(o->quota(c)) - ideal), p.stratum ? 2.0 : 1.0)
            << "round " << round << " component " << c;
      }
      EXPECT_EQ(quota_sum, p.epoch_size);
    }
    // Over the epochs, component c drew epochs * quota samples in passes of
    // its size: every instance floor or ceil of that many times.
    for (size_t c = 0; c < m; ++c) {
      const uint64_t t = epochs * quota[c];
      for (uint64_t i = 0; i < sizes[c]; ++i) {
        const int n = seen[c].count(i) ? seen[c][i] : 0;
        EXPECT_GE(n, static_cast<int>(t / sizes[c])) << "round " << round << " component " << c;
        EXPECT_LE(n, static_cast<int>((t + sizes[c] - 1) / sizes[c])) << "round " << round;
      }
    }
  }
}

// Stratified: every whole block of S samples holds floor or ceil of
// S * share of each component, and the cumulative counts stay within one
// sample of the shares.
TEST(EpochOrderTest, StratifiedBlocksHoldTheirSharesProperty) {
  std::mt19937_64 rng(99);
  for (int round = 0; round < 80; ++round) {
    const size_t m = 2 + rng() % 6;
    std::vector<uint64_t> sizes;
    std::vector<double> weights;
    for (size_t c = 0; c < m; ++c) {
      sizes.push_back(1 + rng() % 300);
      weights.push_back(rng() % 4 == 0 ? 0.01 * (1 + rng() % 10) : 1 + rng() % 30);
    }
    OrderParams p;
    p.shuffled = rng() % 2;
    p.seed = rng();
    p.epoch = rng() % 4;
    p.epoch_size = 100 + rng() % 3000;
    p.stratum = 1 + rng() % 64;
    auto o = Make(Components(sizes, weights), p);
    const uint64_t s = p.stratum, e = o->size();
    std::vector<uint64_t> cum(m, 0);
    EpochOrder::Cursor cur(o.get());
    for (uint64_t b = 0; (b + 1) * s <= e; ++b) {
      std::vector<uint64_t> in(m, 0);
      for (uint64_t g = b * s; g < (b + 1) * s; ++g) ++in[cur.At(g).component];
      for (size_t c = 0; c < m; ++c) {
        // The block's share of the epoch's (exact) quotas.
        const double share = static_cast<double>(s) * o->quota(c) / e;
        EXPECT_GE(static_cast<double>(in[c]), std::floor(share)) << "round " << round << " block " << b;
        EXPECT_LE(static_cast<double>(in[c]), std::ceil(share)) << "round " << round << " block " << b;
        cum[c] += in[c];
        const double ideal = static_cast<double>((b + 1) * s) * o->quota(c) / e;
        EXPECT_LT(std::abs(cum[c] - ideal), 1.0) << "round " << round << " block " << b;
      }
    }
  }
}

TEST(EpochOrderTest, SameParametersSameOrderOtherSeedOtherOrder) {
  auto seq = [](uint64_t seed, uint64_t epoch, uint64_t stratum) {
    auto o = Make(Components({30, 50, 7}, {1, 2, 3}), {true, seed, epoch, 0, stratum});
    std::vector<std::pair<size_t, uint64_t>> v;
    for (uint64_t g = 0; g < o->size(); ++g) v.emplace_back(o->At(g).component, o->At(g).position);
    return v;
  };
  for (uint64_t stratum : {0, 8}) {
    EXPECT_EQ(seq(1, 0, stratum), seq(1, 0, stratum));
    EXPECT_NE(seq(1, 0, stratum), seq(2, 0, stratum));
    EXPECT_NE(seq(1, 0, stratum), seq(1, 1, stratum));
  }
  auto a = Make(Components({30, 50}, {1, 2}), {true, 1, 0, 0, 0});
  auto b = Make(Components({30, 50}, {1, 2}), {true, 1, 5, 0, 0});
  auto c = Make(Components({30, 50}, {1, 3}), {true, 1, 0, 0, 0});
  EXPECT_EQ(a->digest(), b->digest());  // the epoch is not part of the plan's identity
  EXPECT_NE(a->digest(), c->digest());
}

TEST(EpochOrderTest, LongStratifiedEpochsUseCheckpoints) {
  // More blocks than one checkpoint interval: random access far into the
  // epoch agrees with walking there.
  auto o = Make(Components({1000, 10, 333}, {5, 1, 2}), {true, 3, 1, 20000, 7});
  EpochOrder::Cursor walk(o.get());
  std::vector<EpochOrder::Sample> all;
  for (uint64_t g = 0; g < o->size(); ++g) all.push_back(walk.At(g));
  std::mt19937_64 rng(5);
  for (int i = 0; i < 500; ++i) {
    const uint64_t g = rng() % o->size();
    auto s = o->At(g);
    ASSERT_EQ(s.component, all[g].component) << g;
    ASSERT_EQ(s.position, all[g].position) << g;
  }
}

TEST(EpochOrderTest, BadInputIsInvalidArgument) {
  EXPECT_THAT(EpochOrder::Create({}, {}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(EpochOrder::Create(Components({3, 0}, {1, 1}), {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no instance")));
  EXPECT_THAT(EpochOrder::Create(Components({3, 4}, {1, NAN}), {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("weight")));
  EXPECT_THAT(EpochOrder::Create(Components({3, 4}, {1, 1}), {false, 0, 0, EpochOrder::kMaxEpochSize + 1, 0}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("epoch_size")));
  EXPECT_THAT(EpochOrder::Create(Components({3, 4}, {1, 1}), {false, 0, 0, 1u << 30, 1}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("mixture.stratum")));
  // An empty plain selection is an empty epoch.
  auto empty = EpochOrder::Create(Components({0}, {1}), {});
  ASSERT_THAT(empty, IsOk());
  EXPECT_EQ((*empty)->size(), 0u);
}

}  // namespace
}  // namespace m3serve::server
