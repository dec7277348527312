#include "server/image_transform.h"

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "common/status_matchers.h"
#include "gtest/gtest.h"

namespace m3serve::server {
namespace {

using ::m3serve::testing::IsOk;

std::string Jpeg(int w, int h) {
  cv::Mat m(h, w, CV_8UC3);
  cv::randu(m, 0, 255);
  cv::GaussianBlur(m, m, cv::Size(5, 5), 2);
  std::vector<uchar> buf;
  cv::imencode(".jpg", m, buf);
  return std::string(buf.begin(), buf.end());
}

TEST(ImageTransformTest, OutputSizes) {
  uint32_t w, h;
  OutputSize(640, 480, {224, 224, ResizeMode::kFit}, &w, &h);
  EXPECT_EQ(w, 224u);
  EXPECT_EQ(h, 224u);
  OutputSize(640, 480, {320, 0, ResizeMode::kFit}, &w, &h);
  EXPECT_EQ(w, 320u);
  EXPECT_EQ(h, 240u);
  OutputSize(640, 480, {0, 0, ResizeMode::kFit}, &w, &h);
  EXPECT_EQ(w, 640u);
  EXPECT_EQ(h, 480u);
}

TEST(ImageTransformTest, ReducedDecodeNeverUndershootsTheTarget) {
  EXPECT_EQ(ReducedDecodeFactor(640, 480, {224, 224, ResizeMode::kFit}), 2);    // needs 224x168
  EXPECT_EQ(ReducedDecodeFactor(640, 480, {224, 224, ResizeMode::kFill}), 2);   // needs 299x224
  EXPECT_EQ(ReducedDecodeFactor(640, 480, {224, 224, ResizeMode::kStretch}), 2);
  EXPECT_EQ(ReducedDecodeFactor(640, 480, {64, 64, ResizeMode::kFit}), 8);
  EXPECT_EQ(ReducedDecodeFactor(640, 480, {640, 480, ResizeMode::kFit}), 1);
  EXPECT_EQ(ReducedDecodeFactor(640, 480, {0, 0, ResizeMode::kFit}), 1);
}

TEST(ImageTransformTest, UnresizedDecodeEqualsOpenCv) {
  std::string jpeg = Jpeg(97, 61);
  std::string rgb;
  uint32_t w, h;
  ASSERT_THAT(DecodeToRgb(jpeg, {ImageFormat::kJpeg, 97, 61, jpeg.size()}, {}, &rgb, &w, &h), IsOk());
  cv::Mat bgr = cv::imdecode(cv::Mat(1, int(jpeg.size()), CV_8UC1, jpeg.data()), cv::IMREAD_COLOR), want;
  cv::cvtColor(bgr, want, cv::COLOR_BGR2RGB);
  ASSERT_EQ(w, 97u);
  ASSERT_EQ(h, 61u);
  EXPECT_EQ(rgb, std::string(reinterpret_cast<char*>(want.data), want.total() * 3));
}

TEST(ImageTransformTest, FitLetterboxesAndFillCovers) {
  std::string jpeg = Jpeg(200, 100);
  std::string rgb;
  uint32_t w, h;
  storage::ImageMeta meta{ImageFormat::kJpeg, 200, 100, jpeg.size()};
  ASSERT_THAT(DecodeToRgb(jpeg, meta, {64, 64, ResizeMode::kFit}, &rgb, &w, &h), IsOk());
  ASSERT_EQ(rgb.size(), 64u * 64 * 3);
  // Rows above and below the 64x32 image are black.
  EXPECT_EQ(rgb.substr(0, 64 * 3 * 15), std::string(64 * 3 * 15, '\0'));
  EXPECT_NE(rgb.substr(64 * 3 * 30, 64 * 3), std::string(64 * 3, '\0'));
  ASSERT_THAT(DecodeToRgb(jpeg, meta, {64, 64, ResizeMode::kFill}, &rgb, &w, &h), IsOk());
  EXPECT_NE(rgb.substr(0, 64 * 3), std::string(64 * 3, '\0'));
  EXPECT_THAT(DecodeToRgb("junk", {ImageFormat::kJpeg, 1, 1, 4}, {}, &rgb, &w, &h),
              ::m3serve::testing::StatusIs(absl::StatusCode::kDataLoss));
}

}  // namespace
}  // namespace m3serve::server
