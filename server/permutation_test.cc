#include "server/permutation.h"

#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace m3serve::server {
namespace {

TEST(PermutationTest, IsABijectionForManySizes) {
  for (uint64_t n : {1ull, 2ull, 3ull, 5ull, 16ull, 17ull, 255ull, 1000ull, 4097ull, 65537ull}) {
    Permutation p(n, 42);
    std::vector<bool> seen(n, false);
    for (uint64_t i = 0; i < n; ++i) {
      uint64_t y = p(i);
      ASSERT_LT(y, n);
      ASSERT_FALSE(seen[y]) << "n=" << n << " i=" << i;
      seen[y] = true;
    }
  }
}

TEST(PermutationTest, DeterministicPerKeyAndDifferentAcrossKeys) {
  Permutation a(1000, 7), b(1000, 7), c(1000, 8);
  int same = 0, fixed_points = 0;
  for (uint64_t i = 0; i < 1000; ++i) {
    EXPECT_EQ(a(i), b(i));
    same += a(i) == c(i);
    fixed_points += a(i) == i;
  }
  EXPECT_LT(same, 20);
  EXPECT_LT(fixed_points, 20);  // actually shuffles
}

TEST(PermutationTest, WorksAtLargeSizesWithoutMemory) {
  Permutation p(3'000'000'000ull, 1);
  std::set<uint64_t> ys;
  for (uint64_t i = 0; i < 1000; ++i) {
    uint64_t y = p(i * 2999999);
    EXPECT_LT(y, 3'000'000'000ull);
    ys.insert(y);
  }
  EXPECT_EQ(ys.size(), 1000u);
}

}  // namespace
}  // namespace m3serve::server
