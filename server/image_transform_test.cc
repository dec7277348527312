#include "server/image_transform.h"

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "common/status_matchers.h"
#include "gtest/gtest.h"

extern "C" {
#include <jpeglib.h>
}

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

// What a user writes with OpenCV alone: reduced decode, resize, RGB.
std::string OpenCvReference(const std::string& bytes, int flags, const ImageTarget& t, uint32_t src_w,
                            uint32_t src_h) {
  cv::Mat bgr = cv::imdecode(cv::Mat(1, int(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data())), flags);
  uint32_t ow, oh;
  OutputSize(src_w, src_h, t, &ow, &oh);
  cv::Mat scaled;
  if (int(ow) != bgr.cols || int(oh) != bgr.rows) {
    cv::resize(bgr, scaled, cv::Size(int(ow), int(oh)), 0, 0, int(ow) < bgr.cols ? cv::INTER_AREA : cv::INTER_LINEAR);
  } else {
    scaled = bgr;
  }
  cv::Mat rgb;
  cv::cvtColor(scaled, rgb, cv::COLOR_BGR2RGB);
  return std::string(reinterpret_cast<char*>(rgb.data), rgb.total() * 3);
}

// The libjpeg path (DCT-reduced decode straight to RGB, resized into the
// output) gives the same pixels as OpenCV's reduced decode + resize + BGR->RGB,
// for every reduction factor, stretched or scaled to a side.
TEST(ImageTransformTest, ReducedJpegDecodeEqualsOpenCv) {
  for (auto [w, h] : {std::pair{640, 480}, std::pair{333, 517}, std::pair{1024, 96}}) {
    std::string jpeg = Jpeg(w, h);
    storage::ImageMeta meta{ImageFormat::kJpeg, uint32_t(w), uint32_t(h), jpeg.size()};
    for (ImageTarget t : {ImageTarget{224, 224, ResizeMode::kStretch}, ImageTarget{64, 64, ResizeMode::kStretch},
                          ImageTarget{100, 0, ResizeMode::kFit}, ImageTarget{0, 40, ResizeMode::kFit},
                          ImageTarget{uint32_t(w), uint32_t(h), ResizeMode::kStretch}}) {
      const int factor = ReducedDecodeFactor(uint32_t(w), uint32_t(h), t);
      const int flags = factor == 8   ? cv::IMREAD_REDUCED_COLOR_8
                        : factor == 4 ? cv::IMREAD_REDUCED_COLOR_4
                        : factor == 2 ? cv::IMREAD_REDUCED_COLOR_2
                                      : cv::IMREAD_COLOR;
      std::string rgb;
      uint32_t ow, oh;
      ASSERT_THAT(DecodeToRgb(jpeg, meta, t, &rgb, &ow, &oh), IsOk());
      EXPECT_TRUE(rgb == OpenCvReference(jpeg, flags, t, uint32_t(w), uint32_t(h)))
          << w << "x" << h << " -> " << t.width << "x" << t.height << " factor " << factor;
    }
  }
}

TEST(ImageTransformTest, GrayscaleJpegDecodesToRgb) {
  cv::Mat gray(50, 70, CV_8UC1);
  cv::randu(gray, 0, 255);
  std::vector<uchar> buf;
  cv::imencode(".jpg", gray, buf);
  std::string jpeg(buf.begin(), buf.end());
  std::string rgb;
  uint32_t w, h;
  ASSERT_THAT(DecodeToRgb(jpeg, {ImageFormat::kJpeg, 70, 50, jpeg.size()}, {}, &rgb, &w, &h), IsOk());
  EXPECT_TRUE(rgb == OpenCvReference(jpeg, cv::IMREAD_COLOR, {}, 70, 50));
}

// A CMYK JPEG (libjpeg cannot convert it to RGB) goes through OpenCV, which can.
TEST(ImageTransformTest, CmykJpegFallsBackToOpenCv) {
  const int w = 40, h = 30;
  std::vector<uint8_t> cmyk(size_t(w) * h * 4);
  for (size_t i = 0; i < cmyk.size(); ++i) cmyk[i] = static_cast<uint8_t>(i * 37 % 251);
  jpeg_compress_struct c;
  jpeg_error_mgr err;
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char* out = nullptr;
  unsigned long out_size = 0;
  jpeg_mem_dest(&c, &out, &out_size);
  c.image_width = w;
  c.image_height = h;
  c.input_components = 4;
  c.in_color_space = JCS_CMYK;
  jpeg_set_defaults(&c);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = cmyk.data() + size_t(c.next_scanline) * w * 4;
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  std::string jpeg(reinterpret_cast<char*>(out), out_size);
  free(out);
  std::string rgb;
  uint32_t ow, oh;
  ASSERT_THAT(DecodeToRgb(jpeg, {ImageFormat::kJpeg, w, h, jpeg.size()}, {}, &rgb, &ow, &oh), IsOk());
  EXPECT_TRUE(rgb == OpenCvReference(jpeg, cv::IMREAD_COLOR, {}, w, h));
}

// A cut JPEG decodes as far as its data goes, the rest filled (libjpeg's
// behaviour), quietly; bytes that are no JPEG at all are DATA_LOSS. (Stored
// images are checked whole at ingest and by hash before decoding, so a cut
// one only reaches here in tests.)
TEST(ImageTransformTest, TruncatedJpegDecodesWhatItHas) {
  std::string jpeg = Jpeg(120, 80);
  std::string cut = jpeg.substr(0, jpeg.size() / 2);
  std::string rgb, whole;
  uint32_t w, h;
  ASSERT_THAT(DecodeToRgb(cut, {ImageFormat::kJpeg, 120, 80, cut.size()}, {}, &rgb, &w, &h), IsOk());
  ASSERT_EQ(rgb.size(), 120u * 80 * 3);
  ASSERT_THAT(DecodeToRgb(jpeg, {ImageFormat::kJpeg, 120, 80, jpeg.size()}, {}, &whole, &w, &h), IsOk());
  EXPECT_TRUE(rgb.substr(0, 120 * 3 * 8) == whole.substr(0, 120 * 3 * 8)) << "the first rows are decoded";
  std::string header_only = jpeg.substr(0, 20);
  EXPECT_THAT(DecodeToRgb(header_only, {ImageFormat::kJpeg, 120, 80, 20}, {}, &rgb, &w, &h),
              ::m3serve::testing::StatusIs(absl::StatusCode::kDataLoss));
}

}  // namespace
}  // namespace m3serve::server
