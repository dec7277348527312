// File: server/image_census.h
//
// How many distinct images the tasks of a view reference, for catalogs seen
// through a policy or an entitlement. One scan of the instances finds, for
// every image, the set of tasks whose instances use it (COCO images, for
// example, are shared by several tasks); images are then counted per distinct
// task set, so the count for any set of admitted tasks is a sum over a few
// dozen task sets, exact, with no per-image state kept after the scan.
#ifndef M3SERVE_SERVER_IMAGE_CENSUS_H_
#define M3SERVE_SERVER_IMAGE_CENSUS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "server/instance_reader.h"

namespace m3serve::server {

class ImageCensus {
 public:
  // Scan every instance of `reader`. Memory during the scan: about 20 bytes
  // per distinct (image, task) pair; errors as the reader's scan.
  static absl::StatusOr<ImageCensus> Build(const InstanceReader& reader);

  // Distinct images used by the instances of tasks that `admits`.
  uint64_t Count(const std::function<bool(const std::string& task)>& admits) const;
  // Distinct images used by any instance.
  uint64_t total() const;
  // Distinct task sets found (tests, logs).
  size_t task_sets() const { return sets_.size(); }

 private:
  std::vector<std::string> tasks_;                                // index -> name
  std::vector<std::pair<std::vector<uint32_t>, uint64_t>> sets_;  // task indices -> images
};

}  // namespace m3serve::server

#endif  // M3SERVE_SERVER_IMAGE_CENSUS_H_
