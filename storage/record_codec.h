// File: storage/record_codec.h
//
// Binary encodings of store values: instances, image metadata, task info,
// instruction pools and file progress. Each record starts with a version byte;
// strings are varint-length-prefixed. Decoders return DataLoss on malformed
// bytes (a corrupt record), never crash.
#ifndef M3SERVE_STORAGE_RECORD_CODEC_H_
#define M3SERVE_STORAGE_RECORD_CODEC_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "storage/types.h"

namespace m3serve::storage {

// The group and ordinal live in the key; they are not part of the value.
std::string EncodeInstance(const Instance& instance);
absl::Status DecodeInstance(absl::string_view value, Instance* instance);

// Where an image's bytes are: in the store's image pack files (written by
// Store::NewImageWriter), or, without a location, in the images column
// family (stores of schema 1, and StoreWriteBatch::PutImage).
struct PackLocation {
  uint64_t pack = 0;    // pack file number
  uint64_t offset = 0;  // of the record (its header) in that file
  bool operator==(const PackLocation&) const = default;
};

std::string EncodeImageMeta(const ImageMeta& meta, const PackLocation* where = nullptr);
// `where` (optional) is set when the record names a pack location, else reset.
absl::Status DecodeImageMeta(absl::string_view value, ImageMeta* meta,
                             std::optional<PackLocation>* where = nullptr);

std::string EncodeTaskInfo(const TaskInfo& task);
absl::Status DecodeTaskInfo(absl::string_view value, TaskInfo* task);

std::string EncodeStringList(const std::vector<std::string>& list);
absl::Status DecodeStringList(absl::string_view value, std::vector<std::string>* list);

std::string EncodeFileProgress(const FileProgress& p);
absl::Status DecodeFileProgress(absl::string_view value, FileProgress* p);

// One group of the image index; image numbers must be below `images`.
std::string EncodeImageRefs(const ImageRefs& refs);
absl::Status DecodeImageRefs(absl::string_view value, uint32_t images, ImageRefs* refs);
// The index header: basis fingerprint, image count and group count.
std::string EncodeImageIndexHeader(const ImageIndex& index);
absl::Status DecodeImageIndexHeader(absl::string_view value, ImageIndex* index, uint64_t* groups);

}  // namespace m3serve::storage

#endif  // M3SERVE_STORAGE_RECORD_CODEC_H_
