#include "server/thumbnails.h"

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <random>
#include <vector>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace m3serve::server {
namespace {

using ::m3serve::testing::IsOk;
using ::m3serve::testing::StatusIs;

std::string Encode(int w, int h, const char* ext, int seed) {
  cv::Mat m(h, w, CV_8UC3);
  cv::randu(m, cv::Scalar::all(seed % 50), cv::Scalar::all(200 + seed % 50));
  std::vector<uchar> out;
  cv::imencode(ext, m, out);
  return std::string(out.begin(), out.end());
}

cv::Mat Decode(const std::string& jpeg) {
  return cv::imdecode(cv::Mat(1, static_cast<int>(jpeg.size()), CV_8U, const_cast<char*>(jpeg.data())),
                      cv::IMREAD_COLOR);
}

TEST(ThumbnailTest, LongerSideFitsAndSmallImagesAreNotEnlarged) {
  MemoryReader reader;
  const Hash128 wide = reader.AddImage(Encode(640, 320, ".jpg", 1));
  const Hash128 tall = reader.AddImage(Encode(90, 300, ".png", 2));
  const Hash128 tiny = reader.AddImage(Encode(40, 30, ".png", 3));
  ThumbnailCache cache(1 << 20, 1 << 24);
  auto t = cache.Get(reader, wide, 256);
  ASSERT_THAT(t, IsOk());
  cv::Mat m = Decode(**t);
  EXPECT_EQ(m.cols, 256);
  EXPECT_EQ(m.rows, 128);
  m = Decode(**cache.Get(reader, tall, 100));
  EXPECT_EQ(m.rows, 100);
  EXPECT_EQ(m.cols, 30);
  m = Decode(**cache.Get(reader, tiny, 256));
  EXPECT_EQ(m.cols, 40);
  EXPECT_EQ(m.rows, 30);
  EXPECT_THAT(cache.Get(reader, ContentHash("absent"), 64), StatusIs(absl::StatusCode::kNotFound));
  const Hash128 junk = reader.AddImage("not an image at all");
  EXPECT_FALSE(cache.Get(reader, junk, 64).ok());
}

TEST(ThumbnailTest, RefusesSourcesBeyondTheDecodeLimit) {
  MemoryReader reader;
  const Hash128 png = reader.AddImage(Encode(300, 200, ".png", 4));
  ThumbnailCache cache(1 << 20, 300 * 200 - 1);
  EXPECT_THAT(cache.Get(reader, png, 64), StatusIs(absl::StatusCode::kFailedPrecondition));
  // A JPEG counts at the reduced size libjpeg decodes it at (1/4 here).
  const Hash128 jpeg = reader.AddImage(Encode(400, 400, ".jpg", 5));
  ThumbnailCache reduced(1 << 20, 100 * 100);
  EXPECT_THAT(reduced.Get(reader, jpeg, 64), IsOk());
}

// Property: over random capacities and request sequences the cache never
// holds more than its capacity, a repeated request right after another is a
// hit with the same bytes, and every request is counted once.
TEST(ThumbnailTest, CacheStaysWithinItsCapacity) {
  std::mt19937_64 rng(11);
  MemoryReader reader;
  std::vector<Hash128> images;
  for (int i = 0; i < 12; ++i) {
    images.push_back(reader.AddImage(Encode(64 + static_cast<int>(rng() % 200), 48 + static_cast<int>(rng() % 200), ".png", i)));
  }
  for (int round = 0; round < 20; ++round) {
    const uint64_t capacity = rng() % 40000;
    ThumbnailCache cache(capacity, 1 << 24);
    uint64_t calls = 0;
    for (int k = 0; k < 60; ++k) {
      const Hash128& h = images[rng() % images.size()];
      const uint32_t side = 16 + static_cast<uint32_t>(rng() % 3) * 48;
      auto a = cache.Get(reader, h, side);
      ASSERT_THAT(a, IsOk());
      ++calls;
      EXPECT_LE(cache.bytes(), capacity);
      if ((*a)->size() <= capacity) {
        const uint64_t hits = cache.hits();
        auto b = cache.Get(reader, h, side);
        ++calls;
        ASSERT_THAT(b, IsOk());
        EXPECT_EQ(cache.hits(), hits + 1);
        EXPECT_EQ(**a, **b);
      }
    }
    EXPECT_EQ(cache.hits() + cache.misses(), calls);
  }
}

}  // namespace
}  // namespace m3serve::server
