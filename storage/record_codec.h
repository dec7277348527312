// File: storage/record_codec.h
//
// Binary encodings of store values: instances, image metadata, task info,
// instruction pools and file progress. Each record starts with a version byte;
// strings are varint-length-prefixed. Decoders return DataLoss on malformed
// bytes (a corrupt record), never crash.
#ifndef M3SERVE_STORAGE_RECORD_CODEC_H_
#define M3SERVE_STORAGE_RECORD_CODEC_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "storage/types.h"

namespace m3serve::storage {

// The group and ordinal live in the key; they are not part of the value.
std::string EncodeInstance(const Instance& instance);
absl::Status DecodeInstance(absl::string_view value, Instance* instance);

std::string EncodeImageMeta(const ImageMeta& meta);
absl::Status DecodeImageMeta(absl::string_view value, ImageMeta* meta);

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
