// Fuzz target: image header parsing (common/image_probe.h). Ingest and the
// server read the format and dimensions of untrusted image bytes without
// decoding pixels; no header, however malformed or truncated, may read out of
// bounds, hang or report an image without a format.
// Seeds: fuzz/corpus/image_probe_fuzzer (small real JPEG/PNG/GIF/BMP/WebP/TIFF files).
#include <cstddef>
#include <cstdint>

#include "common/image_probe.h"
#include "common/logging.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A copy of exactly `size` bytes, so any read past the end is caught.
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  auto info = m3serve::ProbeImage(bytes);
  if (!info.ok()) {
    M3_CHECK(info.status().code() == absl::StatusCode::kInvalidArgument) << info.status();
    M3_CHECK(!info.status().message().empty());
    return 0;
  }
  M3_CHECK(info->format != m3serve::ImageFormat::kUnknown);
  absl::Status complete = m3serve::CheckImageComplete(*info, bytes);
  M3_CHECK(complete.ok() || complete.code() == absl::StatusCode::kInvalidArgument) << complete;
  return 0;
}
