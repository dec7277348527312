// File: server/thumbnails.h
//
// Small JPEG renderings of stored images for the dataset browser, made on
// first request and kept in a least-recently-used cache bounded in bytes.
#ifndef M3SERVE_SERVER_THUMBNAILS_H_
#define M3SERVE_SERVER_THUMBNAILS_H_

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/hash.h"
#include "server/instance_reader.h"

namespace m3serve::server {

// Thumbnail sides the API accepts (pixels, the longer side).
inline constexpr uint32_t kMinThumbnailSide = 16;
inline constexpr uint32_t kMaxThumbnailSide = 1024;

// The MIME type of a stored image format ("application/octet-stream" when unknown).
const char* ImageContentType(ImageFormat format);

// `bytes` (described by `meta`) as a JPEG whose longer side is at most `side`
// (never enlarged). DataLoss when the bytes do not decode; FailedPrecondition
// when decoding would take more than `max_decode_pixels` (JPEGs count at the
// reduced size libjpeg decodes them at).
absl::StatusOr<std::string> MakeThumbnail(absl::string_view bytes, const storage::ImageMeta& meta, uint32_t side,
                                          uint64_t max_decode_pixels);

class ThumbnailCache {
 public:
  // Hold at most `capacity_bytes` of thumbnails (0: keep none); decode at
  // most `max_decode_pixels` per image (see MakeThumbnail).
  ThumbnailCache(uint64_t capacity_bytes, uint64_t max_decode_pixels)
      : capacity_(capacity_bytes), max_decode_pixels_(max_decode_pixels) {}

  // The thumbnail of image `hash` at `side`: from the cache, else read from
  // `reader`, made and kept. NotFound for an image the store does not have;
  // DataLoss when it does not decode. Thread-safe; concurrent misses of the
  // same key may both render it.
  absl::StatusOr<std::shared_ptr<const std::string>> Get(const InstanceReader& reader, const Hash128& hash,
                                                         uint32_t side);

  uint64_t bytes() const;
  size_t entries() const;
  uint64_t hits() const;
  uint64_t misses() const;

 private:
  using Key = std::pair<Hash128, uint32_t>;
  struct Entry {
    std::shared_ptr<const std::string> jpeg;
    std::list<Key>::iterator lru;
  };
  void Insert(const Key& key, std::shared_ptr<const std::string> jpeg) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const uint64_t capacity_;
  const uint64_t max_decode_pixels_;
  mutable absl::Mutex mu_;
  std::map<Key, Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::list<Key> lru_ ABSL_GUARDED_BY(mu_);  // front: most recently used
  uint64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t hits_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t misses_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace m3serve::server

#endif  // M3SERVE_SERVER_THUMBNAILS_H_
