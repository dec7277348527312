#include "common/hash.h"

#include <algorithm>
#include <random>
#include <string>

#include "gtest/gtest.h"

namespace m3serve {
namespace {

TEST(HashTest, HexRoundTripAndOrder) {
  Hash128 a = ContentHash("a"), b = ContentHash("b");
  EXPECT_NE(a, b);
  EXPECT_EQ(Hash128::FromHex(a.Hex()), a);
  EXPECT_EQ(Hash128::FromRaw(a.Raw()), a);
  EXPECT_EQ(a.Hex().size(), 32u);
  // Byte order is numeric order, so raw keys sort like the hex strings.
  EXPECT_EQ(a < b, a.Hex() < b.Hex());
  EXPECT_FALSE(Hash128::FromHex("zz").has_value());
}

TEST(HashTest, StableValue) {
  // Pin the function: stores written by one build must be readable by the next.
  EXPECT_EQ(ContentHash("").Hex(), "99aa06d3014798d86001c324468d497f");
}

TEST(HashTest, StreamingHashSeparatesRecords) {
  StreamingHash x, y;
  x.AddRecord("ab");
  x.AddRecord("c");
  y.AddRecord("a");
  y.AddRecord("bc");
  EXPECT_NE(x.Finish(), y.Finish());
}

// The chained hash depends only on the bytes: random ways of feeding them,
// and saving the state at a block boundary and continuing in a fresh hasher
// (as a resumed ingest does), all give the same digest.
TEST(HashTest, ChainedContentHashIsIndependentOfFeedingAndResume) {
  std::mt19937_64 rng(7);
  for (int round = 0; round < 12; ++round) {
    const size_t size = std::uniform_int_distribution<size_t>(0, 3 * ChainedContentHash::kBlockBytes + 999)(rng);
    std::string data(size, '\0');
    for (auto& c : data) c = static_cast<char>(rng());
    ChainedContentHash whole;
    whole.Update(data);
    ASSERT_EQ(whole.offset(), size);

    ChainedContentHash pieces;
    Hash128 saved_chain;
    uint64_t saved_at = 0, fed = 0;
    const uint64_t save_after = std::uniform_int_distribution<uint64_t>(0, size)(rng);
    while (fed < size) {
      size_t n = std::min<size_t>(size - fed, std::uniform_int_distribution<size_t>(1, 400000)(rng));
      pieces.Update(absl::string_view(data).substr(fed, n));
      fed += n;
      if (saved_at == 0 && fed >= save_after) {
        saved_chain = pieces.chain();
        saved_at = pieces.chain_offset();
        ASSERT_EQ(saved_at % ChainedContentHash::kBlockBytes, 0u);
        ASSERT_LE(saved_at, fed);
      }
    }
    EXPECT_EQ(pieces.Digest(), whole.Digest()) << round;

    ChainedContentHash resumed;
    resumed.Restore(saved_chain, saved_at);
    resumed.Update(absl::string_view(data).substr(saved_at));
    EXPECT_EQ(resumed.Digest(), whole.Digest()) << round;

    if (size > 0) {
      std::string changed = data;
      changed[std::uniform_int_distribution<size_t>(0, size - 1)(rng)] ^= 1;
      ChainedContentHash other;
      other.Update(changed);
      EXPECT_NE(other.Digest(), whole.Digest());
      ChainedContentHash shorter;
      shorter.Update(absl::string_view(data).substr(0, size - 1));
      EXPECT_NE(shorter.Digest(), whole.Digest());
    }
  }
  // Trailing zero bytes are part of the content.
  ChainedContentHash a, b;
  a.Update(std::string(ChainedContentHash::kBlockBytes, '\0'));
  b.Update(std::string(ChainedContentHash::kBlockBytes + 1, '\0'));
  EXPECT_NE(a.Digest(), b.Digest());
}

}  // namespace
}  // namespace m3serve
