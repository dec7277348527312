// File: server/test_world.h (test only)
//
// Random stores for property tests of the evaluation guard and attribution.
#ifndef M3SERVE_SERVER_TEST_WORLD_H_
#define M3SERVE_SERVER_TEST_WORLD_H_

#include <random>
#include <string>
#include <vector>

#include "common/status_matchers.h"
#include "gtest/gtest.h"
#include "server/dataset.h"
#include "storage/image_index.h"
#include "storage/types.h"

namespace m3serve::server::testing {

using storage::GroupKey;

// A random store: a few tasks, splits and languages; each instance uses 0-3
// images drawn from a small pool, so images are shared across tasks, splits
// and languages the way COCO images are in M3IT.
struct World {
  storage::Catalog catalog;
  std::vector<storage::Instance> instances;  // key order
  storage::ImageIndex index;
};

inline World MakeWorld(std::mt19937_64& rng) {
  World w;
  const std::vector<std::string> tasks = {"coco", "okvqa", "vist", "vqa-v2"};
  const std::vector<std::string> splits = {"test", "train", "validation"};
  const std::vector<std::string> langs = {"en", "zh"};
  const int pool = 1 + static_cast<int>(rng() % 40);
  for (const auto& t : tasks) {
    storage::TaskInfo info;
    info.name = t;
    info.category = "vqa";
    // Two tasks of one source dataset, as OK-VQA and VQA v2 are both on COCO.
    info.source_dataset = t == "okvqa" || t == "vqa-v2" ? "VQA" : t + "-source";
    info.license = t == "coco" ? "LicenseRef-Custom" : "CC-BY-4.0";
    w.catalog.tasks[t] = info;
  }
  for (const auto& t : tasks) {
    for (const auto& s : splits) {
      for (const auto& l : langs) {
        const uint64_t n = rng() % 4 == 0 ? 0 : rng() % 25;
        if (n == 0) continue;
        GroupKey g{t, s, l};
        w.catalog.counts[g] = n;
        for (uint64_t o = 0; o < n; ++o) {
          storage::Instance x;
          x.group = g;
          x.ordinal = o;
          const int k = static_cast<int>(rng() % 4);
          for (int i = 0; i < k; ++i) x.images.push_back(ContentHash(std::to_string(rng() % pool)));
          w.instances.push_back(std::move(x));
        }
      }
    }
  }
  auto index = storage::BuildImageIndex(
      [&](const std::function<bool(storage::Instance&&)>& fn) {
        for (storage::Instance x : w.instances) {
          if (!fn(std::move(x))) break;
        }
        return absl::OkStatus();
      },
      w.catalog.fingerprint);
  EXPECT_TRUE(index.ok()) << index.status();
  w.index = *index;
  return w;
}

template <typename T>
inline std::vector<T> Subset(std::mt19937_64& rng, const std::vector<T>& all) {
  std::vector<T> out;
  for (const auto& x : all) {
    if (rng() % 2) out.push_back(x);
  }
  return out;
}

// A dataset over the world's catalog that uses its image index.
inline std::unique_ptr<Dataset> IndexedDataset(const World& w) {
  auto dataset = Dataset::FromCatalog(w.catalog, LicensePolicy{});
  dataset->SetImageIndex(std::make_shared<const storage::ImageIndex>(w.index));
  return dataset;
}

}  // namespace m3serve::server::testing

#endif  // M3SERVE_SERVER_TEST_WORLD_H_
