#include "storage/image_index.h"

#include <limits>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"

namespace m3serve::storage {

absl::StatusOr<ImageIndex> BuildImageIndex(const InstanceScan& scan, const Hash128& basis) {
  ImageIndex index;
  index.basis = basis;
  absl::flat_hash_map<Hash128, uint32_t> numbers;
  ImageRefs* current = nullptr;
  const GroupKey* current_key = nullptr;
  absl::Status error;
  absl::Status s = scan([&](Instance&& x) {
    if (current == nullptr || x.group != *current_key) {
      auto [it, inserted] = index.groups.try_emplace(x.group);
      if (!inserted) {
        error = absl::DataLossError(absl::StrCat("image index: instances of group ", x.group.ToString(),
                                                 " are not contiguous in key order"));
        return false;
      }
      current = &it->second;
      current_key = &it->first;
    }
    if (x.ordinal != current->instances()) {
      error = absl::DataLossError(absl::StrCat("image index: group ", x.group.ToString(), " has ordinal ",
                                               x.ordinal, " where ", current->instances(),
                                               " was expected (ordinals must be dense)"));
      return false;
    }
    for (const Hash128& h : x.images) {
      auto [it, inserted] = numbers.try_emplace(h, static_cast<uint32_t>(numbers.size()));
      current->refs.push_back(it->second);
    }
    if (current->refs.size() > std::numeric_limits<uint32_t>::max() ||
        numbers.size() >= std::numeric_limits<uint32_t>::max()) {
      error = absl::ResourceExhaustedError(
          absl::StrCat("image index: group ", x.group.ToString(), " has more than 2^32 image references"));
      return false;
    }
    current->offsets.push_back(static_cast<uint32_t>(current->refs.size()));
    return true;
  });
  if (!s.ok()) return s;
  if (!error.ok()) return error;
  index.images = static_cast<uint32_t>(numbers.size());
  return index;
}

}  // namespace m3serve::storage
