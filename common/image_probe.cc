#include "common/image_probe.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace m3serve {
namespace {

uint32_t Be16(const unsigned char* p) { return (uint32_t(p[0]) << 8) | p[1]; }
uint32_t Be32(const unsigned char* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}
uint32_t Le16(const unsigned char* p) { return (uint32_t(p[1]) << 8) | p[0]; }
uint32_t Le24(const unsigned char* p) { return (uint32_t(p[2]) << 16) | (uint32_t(p[1]) << 8) | p[0]; }
int32_t Le32s(const unsigned char* p) {
  return static_cast<int32_t>((uint32_t(p[3]) << 24) | (uint32_t(p[2]) << 16) |
                              (uint32_t(p[1]) << 8) | p[0]);
}

absl::Status Bad(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("not a decodable image: ", what));
}

absl::StatusOr<ImageInfo> ProbeJpeg(const unsigned char* p, size_t n) {
  size_t i = 2;
  while (i < n) {
    if (p[i] != 0xFF) {
      return Bad(absl::StrFormat("JPEG: expected a marker at offset %d", i));
    }
    while (i < n && p[i] == 0xFF) ++i;  // fill bytes
    if (i >= n) break;
    unsigned char m = p[i++];
    if (m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) continue;  // no length
    if (m == 0xD9) return Bad("JPEG: end of image before a frame header");
    if (i + 2 > n) break;
    uint32_t len = Be16(p + i);
    if (len < 2) return Bad(absl::StrFormat("JPEG: marker 0x%02X with length %d", m, len));
    bool sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
    if (sof) {
      if (i + 7 > n) break;
      ImageInfo info{ImageFormat::kJpeg, Be16(p + i + 5), Be16(p + i + 3)};
      if (info.width == 0 || info.height == 0) {
        return Bad(absl::StrFormat("JPEG: frame header says %dx%d", info.width, info.height));
      }
      return info;
    }
    if (m == 0xDA) return Bad("JPEG: scan data before a frame header");
    i += len;
  }
  return Bad("JPEG: truncated before the frame header");
}

absl::StatusOr<ImageInfo> ProbeWebp(const unsigned char* p, size_t n) {
  if (n < 30) return Bad("WebP: truncated header");
  if (std::memcmp(p + 12, "VP8 ", 4) == 0) {
    if (p[23] != 0x9d || p[24] != 0x01 || p[25] != 0x2a) return Bad("WebP: bad VP8 start code");
    return ImageInfo{ImageFormat::kWebp, Le16(p + 26) & 0x3FFF, Le16(p + 28) & 0x3FFF};
  }
  if (std::memcmp(p + 12, "VP8L", 4) == 0) {
    if (p[20] != 0x2f) return Bad("WebP: bad VP8L signature");
    uint32_t bits = p[21] | (uint32_t(p[22]) << 8) | (uint32_t(p[23]) << 16) | (uint32_t(p[24]) << 24);
    return ImageInfo{ImageFormat::kWebp, (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1};
  }
  if (std::memcmp(p + 12, "VP8X", 4) == 0) {
    return ImageInfo{ImageFormat::kWebp, Le24(p + 24) + 1, Le24(p + 27) + 1};
  }
  return Bad("WebP: unknown chunk");
}

}  // namespace

const char* ImageFormatName(ImageFormat format) {
  switch (format) {
    case ImageFormat::kJpeg: return "jpeg";
    case ImageFormat::kPng: return "png";
    case ImageFormat::kGif: return "gif";
    case ImageFormat::kBmp: return "bmp";
    case ImageFormat::kWebp: return "webp";
    case ImageFormat::kTiff: return "tiff";
    default: return "unknown";
  }
}

absl::StatusOr<ImageInfo> ProbeImage(absl::string_view bytes) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  if (n == 0) return Bad("zero bytes");
  if (n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return ProbeJpeg(p, n);
  static const unsigned char kPngSig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (n >= 8 && std::memcmp(p, kPngSig, 8) == 0) {
    if (n < 24 || std::memcmp(p + 12, "IHDR", 4) != 0) return Bad("PNG: missing IHDR chunk");
    ImageInfo info{ImageFormat::kPng, Be32(p + 16), Be32(p + 20)};
    if (info.width == 0 || info.height == 0 || info.width > 0x7FFFFFFF || info.height > 0x7FFFFFFF) {
      return Bad(absl::StrFormat("PNG: IHDR says %dx%d", info.width, info.height));
    }
    return info;
  }
  if (n >= 10 && (std::memcmp(p, "GIF87a", 6) == 0 || std::memcmp(p, "GIF89a", 6) == 0)) {
    ImageInfo info{ImageFormat::kGif, Le16(p + 6), Le16(p + 8)};
    if (info.width == 0 || info.height == 0) return Bad("GIF: zero dimensions");
    return info;
  }
  if (n >= 26 && p[0] == 'B' && p[1] == 'M') {
    int32_t w = Le32s(p + 18), h = Le32s(p + 22);
    if (w <= 0 || h == 0 || h == INT32_MIN) return Bad("BMP: bad dimensions");
    return ImageInfo{ImageFormat::kBmp, uint32_t(w), uint32_t(h < 0 ? -h : h)};
  }
  if (n >= 12 && std::memcmp(p, "RIFF", 4) == 0 && std::memcmp(p + 8, "WEBP", 4) == 0) {
    return ProbeWebp(p, n);
  }
  if (n >= 8 && (std::memcmp(p, "II*\0", 4) == 0 || std::memcmp(p, "MM\0*", 4) == 0)) {
    return ImageInfo{ImageFormat::kTiff, 0, 0};
  }
  return Bad(absl::StrFormat("unrecognised format (first bytes %02x %02x %02x %02x)", p[0],
                             n > 1 ? p[1] : 0, n > 2 ? p[2] : 0, n > 3 ? p[3] : 0));
}

absl::Status CheckImageComplete(const ImageInfo& info, absl::string_view bytes) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  switch (info.format) {
    case ImageFormat::kJpeg: {
      // EOI may be followed by a little padding; look in the tail.
      size_t from = n > 4096 ? n - 4096 : 2;
      for (size_t i = n - 1; i > from; --i) {
        if (p[i] == 0xD9 && p[i - 1] == 0xFF) return absl::OkStatus();
      }
      return Bad("JPEG: truncated (no end-of-image marker)");
    }
    case ImageFormat::kPng: {
      size_t from = n > 64 ? n - 64 : 8;
      for (size_t i = from; i + 4 <= n; ++i) {
        if (std::memcmp(p + i, "IEND", 4) == 0) return absl::OkStatus();
      }
      return Bad("PNG: truncated (no IEND chunk)");
    }
    case ImageFormat::kGif:
      if (n > 0 && p[n - 1] == 0x3B) return absl::OkStatus();
      return Bad("GIF: truncated (no trailer)");
    default:
      return absl::OkStatus();
  }
}

}  // namespace m3serve
