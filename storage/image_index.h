// File: storage/image_index.h
//
// Building the image-reference index (storage/types.h, ImageIndex) from the
// instances of a store: one pass in key order, every distinct content hash
// numbered in order of first use.
#ifndef M3SERVE_STORAGE_IMAGE_INDEX_H_
#define M3SERVE_STORAGE_IMAGE_INDEX_H_

#include <functional>

#include "absl/status/statusor.h"
#include "common/hash.h"
#include "storage/types.h"

namespace m3serve::storage {

// Visits every instance in key order until the callback returns false
// (Store::ForEachInstance, or a test's reader).
using InstanceScan = std::function<absl::Status(const std::function<bool(Instance&&)>&)>;

// The index of the instances `scan` visits, for a catalog with fingerprint
// `basis`. DataLoss when a group's ordinals are not dense 0..n-1 in key order
// (the index could not say which instance an image belongs to); errors of
// the scan as they are. Memory: about 24 bytes per distinct image during the
// build, 4 bytes per instance and per image reference in the result.
absl::StatusOr<ImageIndex> BuildImageIndex(const InstanceScan& scan, const Hash128& basis);

}  // namespace m3serve::storage

#endif  // M3SERVE_STORAGE_IMAGE_INDEX_H_
