#include "server/attribution.h"

#include <map>
#include <random>
#include <set>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/mixture.h"
#include "server/test_world.h"

namespace m3serve::server {
namespace {

using ::m3serve::testing::IsOk;
using ::m3serve::testing::StatusIs;
using ::testing::HasSubstr;
using testing::MakeWorld;
using testing::World;

std::shared_ptr<const EpochOrder> Order(std::vector<OrderComponent> components, uint64_t epoch_size = 0) {
  OrderParams params;
  params.epoch_size = epoch_size;
  auto order = EpochOrder::Create(std::move(components), params);
  EXPECT_THAT(order, IsOk());
  return order.ok() ? *order : nullptr;
}

// For random stores and selections (with and without the guard): per source,
// instances equal the selection's count of its tasks, images are the distinct
// images of exactly the instances the selection keeps (brute force), and the
// totals equal the selection's total (Count) and the epoch's size.
TEST(AttributionTest, CountsEqualTheSelectionAndImagesAreDistinct) {
  for (uint64_t seed = 0; seed < 100; ++seed) {
    SCOPED_TRACE(seed);
    std::mt19937_64 rng(seed);
    World w = MakeWorld(rng);
    if (w.catalog.counts.empty()) continue;
    auto dataset = testing::IndexedDataset(w);
    SelectionSpec spec;
    spec.exclude_eval_images = rng() % 2;
    if (rng() % 2) spec.languages = {w.catalog.counts.begin()->first.lang};
    auto sel = dataset->Resolve(spec);
    ASSERT_THAT(sel, IsOk());
    if (sel->total() == 0) continue;
    auto order = Order({{"", std::make_shared<const ResolvedSelection>(*sel), 1}});
    auto report = BuildAttribution(*dataset, *order);
    ASSERT_THAT(report, IsOk());
    EXPECT_EQ(report->instances, sel->total());
    EXPECT_EQ(report->samples, sel->total());

    // Brute force over the instances the selection serves.
    std::map<std::string, uint64_t> instances;
    std::map<std::string, std::set<Hash128>> images;
    std::set<Hash128> all_images;
    for (uint64_t p = 0; p < sel->total(); ++p) {
      auto [g, o] = sel->Locate(p);
      const storage::GroupKey& gk = sel->groups[g];
      const std::string source = w.catalog.tasks.at(gk.task).source_dataset;
      ++instances[source];
      for (const auto& x : w.instances) {
        if (x.group == gk && x.ordinal == o) {
          images[source].insert(x.images.begin(), x.images.end());
          all_images.insert(x.images.begin(), x.images.end());
        }
      }
    }
    EXPECT_EQ(report->images, all_images.size());
    ASSERT_EQ(report->sources.size(), instances.size());
    for (const auto& s : report->sources) {
      EXPECT_EQ(s.instances, instances[s.source_dataset]) << s.source_dataset;
      EXPECT_EQ(s.samples, s.instances) << s.source_dataset;
      EXPECT_EQ(s.images, images[s.source_dataset].size()) << s.source_dataset;
      EXPECT_EQ(s.license, s.source_dataset == "coco-source" ? "LicenseRef-Custom" : "CC-BY-4.0");
    }
    EXPECT_EQ(report->eval_set, spec.exclude_eval_images ? "test+validation of every task" : "");
  }
}

TEST(AttributionTest, AMixturesSamplesAreItsQuotasAndASourceListsItsTasks) {
  std::mt19937_64 rng(11);
  World w = MakeWorld(rng);
  auto dataset = testing::IndexedDataset(w);
  auto sel = dataset->Resolve(SelectionSpec{});
  ASSERT_THAT(sel, IsOk());
  MixtureSpec mixture;
  mixture.components = {{"coco", 3.0}, {"*", 1.0}};
  auto components = ResolveMixture(*dataset, *sel, mixture, nullptr, "");
  ASSERT_THAT(components, IsOk());
  auto order = Order(*components, 1000);
  auto report = BuildAttribution(*dataset, *order);
  ASSERT_THAT(report, IsOk());
  EXPECT_EQ(report->samples, 1000u);
  EXPECT_EQ(report->instances, sel->total());
  std::map<std::string, uint64_t> quota;
  for (size_t c = 0; c < order->components().size(); ++c) {
    const std::string& task = order->components()[c].key;
    quota[w.catalog.tasks.at(task).source_dataset] += order->quota(c);
  }
  for (const auto& s : report->sources) {
    EXPECT_EQ(s.samples, quota[s.source_dataset]) << s.source_dataset;
    if (s.source_dataset == "VQA") EXPECT_EQ(s.tasks, (std::vector<std::string>{"okvqa", "vqa-v2"}));
  }
}

TEST(AttributionTest, ReportsRenderAsTextJsonAndMarkdown) {
  AttributionReport r;
  r.dataset_version = "abc";
  r.instances = 5;
  r.images = 4;
  r.samples = 5;
  r.sources.push_back({"VQA | v2", {"okvqa", "vqa-v2"}, "CC-BY-4.0", "CC-BY 4.0", storage::CommercialUse::kUnknown,
                       5, 4, 5});
  r.removed_by_policy = {"coco-cn"};
  const std::string text = RenderAttribution(r, ReportFormat::kText);
  EXPECT_THAT(text, HasSubstr("5 instances, 4 distinct images, 5 samples per epoch"));
  EXPECT_THAT(text, HasSubstr("okvqa, vqa-v2 (CC-BY 4.0)"));
  EXPECT_THAT(text, HasSubstr("left out by the server's license policy: coco-cn"));
  const std::string md = RenderAttribution(r, ReportFormat::kMarkdown);
  // A pipe in metadata text does not break the table.
  EXPECT_THAT(md, HasSubstr("| VQA \\| v2 | okvqa, vqa-v2 | `CC-BY-4.0` | CC-BY 4.0 | unknown | 5 | 4 | 5 |"));
  const std::string json = RenderAttribution(r, ReportFormat::kJson);
  EXPECT_THAT(json, HasSubstr("\"source_dataset\": \"VQA | v2\""));
  EXPECT_THAT(json, HasSubstr("\"commercial_use\": \"unknown\""));
}

TEST(AttributionTest, NeedsTheImageIndex) {
  std::mt19937_64 rng(5);
  World w = MakeWorld(rng);
  auto dataset = Dataset::FromCatalog(w.catalog, LicensePolicy{});
  auto sel = dataset->Resolve(SelectionSpec{});
  ASSERT_THAT(sel, IsOk());
  auto order = Order({{"", std::make_shared<const ResolvedSelection>(*sel), 1}});
  EXPECT_THAT(BuildAttribution(*dataset, *order),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("m3serve-admin ingest")));
}

}  // namespace
}  // namespace m3serve::server
