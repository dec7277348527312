// File: server/instance_builder.h
//
// Turn stored instances into API messages: instruction (as ingested or
// re-sampled from the task's pool), template substitution, attribution, and
// images (passthrough bytes, decoded RGB with optional resize, or none).
#ifndef M3SERVE_SERVER_INSTANCE_BUILDER_H_
#define M3SERVE_SERVER_INSTANCE_BUILDER_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "m3serve/v1/dataset.pb.h"
#include "server/dataset.h"
#include "server/image_transform.h"
#include "server/metrics.h"

namespace m3serve::server {

enum class ImageMode { kEncoded, kDecoded, kNone };

struct BuildOptions {
  ImageMode images = ImageMode::kEncoded;
  ImageTarget target;
  uint32_t max_images = 0;  // 0: all
  bool resample_instructions = false;
  uint64_t seed = 0;
  uint64_t epoch = 0;
  // Decoded output pixels per image allowed (checked against the stored size
  // before decoding), and the largest instance message that can be sent.
  uint64_t max_decoded_pixels = uint64_t{1} << 24;
  uint64_t max_instance_bytes = UINT64_MAX;
};

// The instruction an instance is served with: its own (unless resampling or
// empty), else from the pool: pool[XXH3(id, seed, epoch) mod |pool|] when
// resampling, pool[XXH3(id) mod |pool|] as ingested (the same in every epoch
// and run); then "[NAME]" placeholders are replaced by the instance's
// template variables.
std::string ChooseInstruction(const Dataset& dataset, const storage::Instance& x,
                              const BuildOptions& options);

// Bytes one built instance is expected to take before any is built: a bound
// from the image options (decoded: the target size; encoded: 256 KiB per
// image; none: 1 KiB). Budget reservations start from it.
uint64_t EstimateInstanceBytes(const BuildOptions& options);

// Indices of the images kept under `max_images` (video: evenly spaced).
std::vector<size_t> KeptImages(size_t n, uint32_t max_images, bool video);

// Fill `out` from `x`. DataLoss when an image is missing or does not decode
// (the message names the instance and image). FailedPrecondition (not
// retryable: the same request fails the same way) when an image would decode
// to more than max_decoded_pixels, or the instance to more than
// max_instance_bytes.
absl::Status BuildInstance(const Dataset& dataset, const storage::Instance& x,
                           const BuildOptions& options, Metrics* metrics, v1::Instance* out);

}  // namespace m3serve::server

#endif  // M3SERVE_SERVER_INSTANCE_BUILDER_H_
