#include "common/image_probe.h"

#include <string>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace m3serve {
namespace {

using ::m3serve::testing::IsOk;
using ::m3serve::testing::StatusIs;
using ::testing::HasSubstr;

// A minimal JPEG skeleton: SOI, APP0, SOF0 (h=48, w=64), SOS, data, EOI.
std::string TinyJpeg(bool with_eoi) {
  std::string j = "\xFF\xD8";
  j += std::string("\xFF\xE0\x00\x04\x00\x00", 6);
  j += std::string("\xFF\xC0\x00\x0B\x08\x00\x30\x00\x40\x01\x01\x11\x00", 13);
  j += std::string("\xFF\xDA\x00\x02", 4);
  j += "scan";
  if (with_eoi) j += "\xFF\xD9";
  return j;
}

TEST(ImageProbeTest, ReadsJpegDimensions) {
  auto info = ProbeImage(TinyJpeg(true));
  ASSERT_THAT(info, IsOk());
  EXPECT_EQ(info->format, ImageFormat::kJpeg);
  EXPECT_EQ(info->width, 64u);
  EXPECT_EQ(info->height, 48u);
  EXPECT_THAT(CheckImageComplete(*info, TinyJpeg(true)), IsOk());
  EXPECT_THAT(CheckImageComplete(*info, TinyJpeg(false)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("truncated")));
}

TEST(ImageProbeTest, ReadsPngDimensions) {
  std::string png("\x89PNG\r\n\x1a\n\x00\x00\x00\x0DIHDR\x00\x00\x01\x00\x00\x00\x00\x80", 24);
  auto info = ProbeImage(png);
  ASSERT_THAT(info, IsOk());
  EXPECT_EQ(info->format, ImageFormat::kPng);
  EXPECT_EQ(info->width, 256u);
  EXPECT_EQ(info->height, 128u);
  EXPECT_THAT(CheckImageComplete(*info, png), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(CheckImageComplete(*info, png + std::string("\0\0\0\0IEND\xAE\x42\x60\x82", 12)),
              IsOk());
}

TEST(ImageProbeTest, RejectsNonImages) {
  EXPECT_THAT(ProbeImage(""), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("zero bytes")));
  EXPECT_THAT(ProbeImage("hello world"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unrecognised format")));
  EXPECT_THAT(ProbeImage("\xFF\xD8\xFF"), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace m3serve
