#include "server/thumbnails.h"

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/image_transform.h"

namespace m3serve::server {

const char* ImageContentType(ImageFormat format) {
  switch (format) {
    case ImageFormat::kJpeg: return "image/jpeg";
    case ImageFormat::kPng: return "image/png";
    case ImageFormat::kGif: return "image/gif";
    case ImageFormat::kBmp: return "image/bmp";
    case ImageFormat::kWebp: return "image/webp";
    case ImageFormat::kTiff: return "image/tiff";
    default: return "application/octet-stream";
  }
}

absl::StatusOr<std::string> MakeThumbnail(absl::string_view bytes, const storage::ImageMeta& meta, uint32_t side,
                                          uint64_t max_decode_pixels) {
  ImageTarget target;  // the longer side to `side`, never enlarged
  if (meta.width > side || meta.height > side || meta.width == 0 || meta.height == 0) {
    (meta.width >= meta.height ? target.width : target.height) = side;
  }
  const uint64_t factor = meta.format == ImageFormat::kJpeg
                              ? static_cast<uint64_t>(ReducedDecodeFactor(meta.width, meta.height, target))
                              : 1;
  const uint64_t decoded = uint64_t{meta.width} * meta.height / (factor * factor);
  if (meta.width == 0 || meta.height == 0 || decoded > max_decode_pixels) {
    return absl::FailedPreconditionError(absl::StrCat(
        "a ", meta.width, "x", meta.height, " image is beyond the thumbnail decoder's limit of ", max_decode_pixels,
        " pixels; fetch the original (size=0)"));
  }
  std::string rgb;
  uint32_t w = 0, h = 0;
  M3SERVE_RETURN_IF_ERROR(DecodeToRgb(bytes, meta, target, &rgb, &w, &h));
  if (w > side || h > side) {  // the header's size was wrong: fit what decoded
    cv::Mat src(static_cast<int>(h), static_cast<int>(w), CV_8UC3, rgb.data());
    const double scale = static_cast<double>(side) / std::max(w, h);
    cv::Mat small;
    cv::resize(src, small, cv::Size(std::max(1, int(w * scale)), std::max(1, int(h * scale))), 0, 0, cv::INTER_AREA);
    w = static_cast<uint32_t>(small.cols);
    h = static_cast<uint32_t>(small.rows);
    rgb.assign(reinterpret_cast<const char*>(small.data), small.total() * 3);
  }
  cv::Mat img(static_cast<int>(h), static_cast<int>(w), CV_8UC3, rgb.data());
  cv::Mat bgr;
  cv::cvtColor(img, bgr, cv::COLOR_RGB2BGR);
  std::vector<uchar> out;
  if (!cv::imencode(".jpg", bgr, out, {cv::IMWRITE_JPEG_QUALITY, 85})) {
    return absl::InternalError("thumbnail: JPEG encoding failed");
  }
  return std::string(out.begin(), out.end());
}

absl::StatusOr<std::shared_ptr<const std::string>> ThumbnailCache::Get(const InstanceReader& reader,
                                                                       const Hash128& hash, uint32_t side) {
  const Key key{hash, side};
  {
    absl::MutexLock lock(&mu_);
    if (auto it = entries_.find(key); it != entries_.end()) {
      ++hits_;
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      return it->second.jpeg;
    }
    ++misses_;
  }
  M3SERVE_ASSIGN_OR_RETURN(storage::ImageMeta meta, reader.GetImageMeta(hash));
  M3SERVE_ASSIGN_OR_RETURN(std::string bytes, reader.GetImage(hash));
  absl::StatusOr<std::string> jpeg = MakeThumbnail(bytes, meta, side, max_decode_pixels_);
  if (!jpeg.ok()) {
    return absl::Status(jpeg.status().code(), absl::StrCat("image ", hash.Hex(), ": ", jpeg.status().message()));
  }
  auto shared = std::make_shared<const std::string>(std::move(*jpeg));
  absl::MutexLock lock(&mu_);
  Insert(key, shared);
  return shared;
}

void ThumbnailCache::Insert(const Key& key, std::shared_ptr<const std::string> jpeg) {
  if (jpeg->size() > capacity_ || entries_.count(key)) return;
  while (bytes_ + jpeg->size() > capacity_ && !lru_.empty()) {
    auto it = entries_.find(lru_.back());
    bytes_ -= it->second.jpeg->size();
    entries_.erase(it);
    lru_.pop_back();
  }
  lru_.push_front(key);
  bytes_ += jpeg->size();
  entries_.emplace(key, Entry{std::move(jpeg), lru_.begin()});
}

uint64_t ThumbnailCache::bytes() const {
  absl::MutexLock lock(&mu_);
  return bytes_;
}
size_t ThumbnailCache::entries() const {
  absl::MutexLock lock(&mu_);
  return entries_.size();
}
uint64_t ThumbnailCache::hits() const {
  absl::MutexLock lock(&mu_);
  return hits_;
}
uint64_t ThumbnailCache::misses() const {
  absl::MutexLock lock(&mu_);
  return misses_;
}

}  // namespace m3serve::server
