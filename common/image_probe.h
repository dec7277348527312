// File: common/image_probe.h
//
// Identify an encoded image and read its dimensions from the header, without
// decoding pixels. Used by ingest to reject bytes that are not an image,
// truncated files and decompression bombs cheaply, and by the server to plan
// reduced JPEG decodes.
#ifndef M3SERVE_COMMON_IMAGE_PROBE_H_
#define M3SERVE_COMMON_IMAGE_PROBE_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace m3serve {

enum class ImageFormat : uint8_t {
  kUnknown = 0,
  kJpeg = 1,
  kPng = 2,
  kGif = 3,
  kBmp = 4,
  kWebp = 5,
  kTiff = 6,
};

// "jpeg", "png", ... ("unknown" for kUnknown).
const char* ImageFormatName(ImageFormat format);

struct ImageInfo {
  ImageFormat format = ImageFormat::kUnknown;
  // 0 when the header does not carry dimensions in a place we parse (TIFF).
  uint32_t width = 0;
  uint32_t height = 0;
};

// Read the format and dimensions. InvalidArgument with a reason when the bytes
// are not a recognised image or the header is malformed or truncated.
absl::StatusOr<ImageInfo> ProbeImage(absl::string_view bytes);

// Check that the file is not cut short: a JPEG ends with an EOI marker, a PNG
// with its IEND chunk, a GIF with its trailer. InvalidArgument otherwise.
// Formats without a trailer (BMP, WebP, TIFF) pass.
absl::Status CheckImageComplete(const ImageInfo& info, absl::string_view bytes);

}  // namespace m3serve

#endif  // M3SERVE_COMMON_IMAGE_PROBE_H_
