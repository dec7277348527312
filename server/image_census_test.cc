#include "server/image_census.h"

#include <random>
#include <set>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/dataset.h"

namespace m3serve::server {
namespace {

using ::m3serve::testing::IsOk;

Hash128 Image(int i) { return ContentHash("image " + std::to_string(i)); }

// Property: for random instances over random tasks drawing from one shared
// pool of images, and random sets of admitted tasks, the census counts
// exactly the distinct images of the admitted tasks' instances.
TEST(ImageCensusTest, CountsDistinctImagesOfAnyTaskSet) {
  std::mt19937_64 rng(42);
  for (int round = 0; round < 40; ++round) {
    const int tasks = 1 + static_cast<int>(rng() % 8);
    const int pool = 1 + static_cast<int>(rng() % 300);
    MemoryReader reader;
    std::map<std::string, std::set<Hash128>> used;
    std::map<storage::GroupKey, uint64_t> next;
    const int instances = static_cast<int>(rng() % 500);
    for (int i = 0; i < instances; ++i) {
      storage::Instance x;
      x.group = {"task" + std::to_string(rng() % tasks), rng() % 2 ? "train" : "test", "en"};
      x.ordinal = next[x.group]++;
      const int images = static_cast<int>(rng() % 4);  // none, one, or frames
      for (int k = 0; k < images; ++k) {
        x.images.push_back(Image(static_cast<int>(rng() % pool)));
        used[x.group.task].insert(x.images.back());
      }
      reader.Add(std::move(x));
    }
    auto census = ImageCensus::Build(reader);
    ASSERT_THAT(census, IsOk());
    for (int q = 0; q < 20; ++q) {
      std::set<std::string> admitted;
      for (int t = 0; t < tasks; ++t) {
        if (rng() % 2) admitted.insert("task" + std::to_string(t));
      }
      std::set<Hash128> expected;
      for (const auto& [task, images] : used) {
        if (admitted.count(task)) expected.insert(images.begin(), images.end());
      }
      EXPECT_EQ(census->Count([&](const std::string& t) { return admitted.count(t) > 0; }), expected.size());
    }
    std::set<Hash128> all;
    for (const auto& [task, images] : used) all.insert(images.begin(), images.end());
    EXPECT_EQ(census->total(), all.size());
    EXPECT_LE(census->task_sets(), all.size());
  }
}

// The catalog figure through a policy or an entitlement: the store's count
// when nothing is removed, the admitted tasks' images otherwise.
TEST(ImageCensusTest, DatasetCountsTheImagesOfTheTasksAViewAdmits) {
  auto reader = std::make_unique<MemoryReader>();
  storage::Catalog c;
  c.tasks["open"] = {"open", "vqa", "Open", "CC BY 4.0", storage::CommercialUse::kYes, false,
                     storage::Modality::kImage, "en"};
  c.tasks["closed"] = {"closed", "vqa", "Closed", "Non-commercial", storage::CommercialUse::kNo, false,
                       storage::Modality::kImage, "en"};
  // open uses images 0-2, closed uses 2-5: 6 distinct, 3 through the open task.
  for (int i = 0; i < 6; ++i) {
    storage::Instance x;
    x.group = {i < 3 ? "open" : "closed", "train", "en"};
    x.ordinal = static_cast<uint64_t>(i < 3 ? i : i - 3);
    x.images = {Image(i), Image(i < 3 ? 2 : i - 1)};
    reader->Add(std::move(x));
  }
  c.counts[{"open", "train", "en"}] = 3;
  c.counts[{"closed", "train", "en"}] = 3;
  c.unique_images = 6;
  auto d = Dataset::FromCatalog(c, {}, std::move(reader));
  EXPECT_EQ(*d->UniqueImages(nullptr), 6u);
  LicensePolicy open_only;
  open_only.allowed_licenses = {"CC-BY-4.0"};  // the id of the tasks' "CC BY 4.0"
  EXPECT_FALSE(d->AdmitsAll(&open_only));
  EXPECT_EQ(*d->UniqueImages(&open_only), 3u);
  // Without a reader, a narrowed count is an error, never the store's figure.
  auto bare = Dataset::FromCatalog(c, open_only);
  EXPECT_FALSE(bare->UniqueImages(nullptr).ok());
}

}  // namespace
}  // namespace m3serve::server
