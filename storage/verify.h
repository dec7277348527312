// File: storage/verify.h
//
// Whole-store consistency check and content digest (`m3serve-admin verify`).
#ifndef M3SERVE_STORAGE_VERIFY_H_
#define M3SERVE_STORAGE_VERIFY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/hash.h"
#include "storage/store.h"

namespace m3serve::storage {

struct VerifyReport {
  uint64_t instances = 0;
  uint64_t groups = 0;
  uint64_t images = 0;
  uint64_t image_refs = 0;
  uint64_t image_bytes = 0;
  // Human-readable problems, at most `max_problems` of them; problem_count is
  // the full number.
  std::vector<std::string> problems;
  uint64_t problem_count = 0;
  // Digest of the store's content (instances, image hashes, catalog). Two
  // stores with equal digests hold the same data; progress records are not
  // part of it.
  Hash128 digest;
  // The image index (the evaluation guard and attribution read it): absent
  // (not a problem: the next ingest builds it, serving refuses those two
  // requests until then), current, or stale / different from the instances
  // (a problem).
  enum class ImageIndexState { kAbsent, kCurrent, kStale } image_index = ImageIndexState::kAbsent;

  bool ok() const { return problem_count == 0; }
};

// Check that every instance's image references exist, that ordinals are dense
// and match the catalog counts, that every image is referenced (no orphans),
// that each image's bytes hash to its key and match its metadata, and that the
// unique image count is right, and that the image index, if any, is the one
// the instances give. Reads every record, including all image bytes.
// Returns an error only when the store cannot be read; problems found go into
// the report.
absl::StatusOr<VerifyReport> VerifyStore(const Store& store, size_t max_problems = 100);

}  // namespace m3serve::storage

#endif  // M3SERVE_STORAGE_VERIFY_H_
