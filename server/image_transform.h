// File: server/image_transform.h
//
// Decode stored image bytes to uint8 RGB and resize them, using libjpeg's
// reduced-size decode (OpenCV IMREAD_REDUCED_COLOR_{2,4,8}) when the target
// is small enough, so a 640x480 JPEG bound for 224x224 is decoded at 320x240.
#ifndef M3SERVE_SERVER_IMAGE_TRANSFORM_H_
#define M3SERVE_SERVER_IMAGE_TRANSFORM_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "storage/types.h"

namespace m3serve::server {

enum class ResizeMode { kFit, kFill, kStretch };

struct ImageTarget {
  uint32_t width = 0;   // 0 and 0: keep the decoded size
  uint32_t height = 0;  // one 0: scale to the other, keeping the aspect ratio
  ResizeMode mode = ResizeMode::kFit;
};

// Size of the output for an image of src_w x src_h.
void OutputSize(uint32_t src_w, uint32_t src_h, const ImageTarget& target, uint32_t* out_w,
                uint32_t* out_h);

// The largest libjpeg reduction (1, 2, 4 or 8) that still decodes at least
// the pixels the resize needs.
int ReducedDecodeFactor(uint32_t src_w, uint32_t src_h, const ImageTarget& target);

// Decode `bytes` (described by `meta`) into `*rgb` (uint8 RGB, row-major HWC,
// resized per `target`), setting *width / *height. DataLoss when the bytes do
// not decode.
absl::Status DecodeToRgb(absl::string_view bytes, const storage::ImageMeta& meta,
                         const ImageTarget& target, std::string* rgb, uint32_t* width,
                         uint32_t* height);

}  // namespace m3serve::server

#endif  // M3SERVE_SERVER_IMAGE_TRANSFORM_H_
