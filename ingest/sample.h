// File: ingest/sample.h
//
// A deterministic synthetic dataset in the real M3IT and M3IT-80 file layouts,
// with real JPEG and PNG images drawn with OpenCV. It is the embedded default
// of the README's run command and the data of the tests and benchmarks. The
// generator records what a correct ingest must produce (expected.json).
#ifndef M3SERVE_INGEST_SAMPLE_H_
#define M3SERVE_INGEST_SAMPLE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/types.h"

namespace m3serve::ingest {

struct SampleOptions {
  // Output directory; M3IT/, M3IT-80/, bad/ and expected.json are written in it.
  std::string out;
  // Same seed, same bytes. Default 1.
  uint64_t seed = 1;
  // Multiplies the number of rows (1 = a few hundred instances). Default 1.
  int scale = 1;
  // Size of the drawn images. Default 96x72 (tests); benchmarks use 640x480.
  int image_width = 96;
  int image_height = 72;
  // JPEG quality of the drawn images. Default 90.
  int jpeg_quality = 90;
  // Also write bad/bad_lines.jsonl: one line of every kind of bad input, with
  // bad/expected_rejects.json saying what each must be rejected for.
  bool bad_lines = false;
};

struct SampleResult {
  std::map<storage::GroupKey, uint64_t> expected_counts;
  uint64_t expected_instances = 0;
  uint64_t expected_unique_images = 0;
  uint64_t jsonl_bytes = 0;  // raw JSONL bytes written
  std::vector<std::string> sources;  // the M3IT and M3IT-80 roots
};

// Write the sample tree. Unavailable when files cannot be written.
absl::StatusOr<SampleResult> WriteSample(const SampleOptions& options);

}  // namespace m3serve::ingest

#endif  // M3SERVE_INGEST_SAMPLE_H_
