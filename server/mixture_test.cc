#include "server/mixture.h"

#include <cmath>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace m3serve::server {
namespace {

using ::m3serve::testing::IsOk;
using ::m3serve::testing::StatusIs;
using ::testing::HasSubstr;

std::unique_ptr<Dataset> MakeDataset(LicensePolicy policy = {}) {
  using storage::CommercialUse;
  using storage::Modality;
  storage::Catalog c;
  auto task = [&](const char* name, const char* license, CommercialUse cu) {
    c.tasks[name] = {name, "vqa", name, license, cu, false, Modality::kImage, "en"};
  };
  task("coco", "CC BY 4.0", CommercialUse::kYes);
  task("vqa-v2", "CC BY 4.0", CommercialUse::kYes);
  task("gqa", "CC BY 4.0", CommercialUse::kYes);
  task("coco-cn", "Non-commercial", CommercialUse::kNo);
  c.counts[{"coco", "train", "en"}] = 900;
  c.counts[{"coco", "validation", "en"}] = 50;
  c.counts[{"vqa-v2", "train", "en"}] = 300;
  c.counts[{"vqa-v2", "train", "fr"}] = 60;
  c.counts[{"gqa", "train", "en"}] = 40;
  c.counts[{"coco-cn", "train", "zh"}] = 25;
  c.fingerprint = ContentHash("mixture-test");
  return Dataset::FromCatalog(std::move(c), std::move(policy));
}

class MixtureTest : public ::testing::Test {
 protected:
  absl::StatusOr<std::vector<OrderComponent>> Resolve(const MixtureSpec& m, SelectionSpec s = {},
                                                      const LicensePolicy* entitlement = nullptr) {
    if (s.splits.empty()) s.splits = {"train"};
    auto sel = dataset_->Resolve(s);
    EXPECT_THAT(sel, IsOk());
    return ResolveMixture(*dataset_, *sel, m, entitlement, "alice");
  }
  std::unique_ptr<Dataset> dataset_ = MakeDataset();
};

MixtureSpec Weights(std::vector<std::pair<std::string, std::optional<double>>> w) {
  MixtureSpec m;
  m.components = std::move(w);
  return m;
}

TEST_F(MixtureTest, NoMixtureIsTheSelection) {
  auto c = Resolve({});
  ASSERT_THAT(c, IsOk());
  ASSERT_EQ(c->size(), 1u);
  EXPECT_EQ((*c)[0].key, "");
  EXPECT_EQ((*c)[0].selection->total(), 900u + 300 + 60 + 40 + 25);
}

TEST_F(MixtureTest, KeysAreTasksOrTaskLanguageSortedAndStarTakesTheRest) {
  auto c = Resolve(Weights({{"vqa-v2:fr", 2.0}, {"coco", 0.2}, {"*", 1.0}}));
  ASSERT_THAT(c, IsOk());
  std::vector<std::string> keys;
  for (const auto& x : *c) keys.push_back(x.key + "=" + std::to_string(x.selection->total()));
  // '*' expands to the tasks the other keys leave: coco-cn, gqa and vqa-v2's English part.
  EXPECT_THAT(keys, ::testing::ElementsAre("coco=900", "coco-cn=25", "gqa=40", "vqa-v2=300", "vqa-v2:fr=60"));
  EXPECT_EQ((*c)[0].weight, 0.2);
  EXPECT_EQ((*c)[4].weight, 2.0);
}

TEST_F(MixtureTest, TemperatureWeightsAreSizeToTheOneOverT) {
  MixtureSpec m;
  m.temperature = 2.0;
  auto c = Resolve(m);
  ASSERT_THAT(c, IsOk());
  ASSERT_EQ(c->size(), 4u);  // every task of the selection
  for (const auto& x : *c) {
    EXPECT_DOUBLE_EQ(x.weight, std::sqrt(static_cast<double>(x.selection->total()))) << x.key;
  }
  // T = 1: the natural proportions, so the quotas are the sizes.
  m.temperature = 1.0;
  auto natural = Resolve(m);
  ASSERT_THAT(natural, IsOk());
  auto order = EpochOrder::Create(*natural, {});
  ASSERT_THAT(order, IsOk());
  for (size_t i = 0; i < natural->size(); ++i) {
    EXPECT_EQ((*order)->quota(i), (*natural)[i].selection->total());
  }
}

TEST_F(MixtureTest, BadMixturesNameTheField) {
  auto bad = [&](MixtureSpec m, absl::StatusCode code, const std::string& text) {
    EXPECT_THAT(Resolve(m), StatusIs(code, HasSubstr(text))) << text;
  };
  using absl::StatusCode;
  bad(Weights({{"nope", 1.0}}), StatusCode::kInvalidArgument, "mixture.components[0].key: unknown task 'nope'");
  bad(Weights({{"coco", 1.0}, {"gqa", -1.0}}), StatusCode::kInvalidArgument, "mixture.components[1].weight");
  bad(Weights({{"coco", 0.0}}), StatusCode::kInvalidArgument, "must be finite and > 0");
  bad(Weights({{"coco", NAN}}), StatusCode::kInvalidArgument, "must be finite and > 0");
  bad(Weights({{"coco", INFINITY}}), StatusCode::kInvalidArgument, "must be finite and > 0");
  bad(Weights({{"coco", std::nullopt}}), StatusCode::kInvalidArgument, "is missing");
  bad(Weights({{"coco:xx", 1.0}}), StatusCode::kInvalidArgument, "unknown language 'xx'");
  bad(Weights({{"vqa-v2", 1.0}, {"vqa-v2:fr", 1.0}}), StatusCode::kInvalidArgument, "overlaps 'vqa-v2'");
  bad(Weights({{"coco", 1.0}, {"coco", 2.0}}), StatusCode::kInvalidArgument, "overlaps");
  bad(Weights({{"vqa-v2:zh", 1.0}}), StatusCode::kInvalidArgument, "matches no instance");
  bad(Weights({{"*", 1.0}, {"*", 2.0}}), StatusCode::kInvalidArgument, "'*' given twice");
  MixtureSpec t;
  t.temperature = 0;
  bad(t, StatusCode::kInvalidArgument, "mixture.temperature must be finite and > 0");
  t.temperature = -1;
  bad(t, StatusCode::kInvalidArgument, "mixture.temperature");
  t.temperature = NAN;
  bad(t, StatusCode::kInvalidArgument, "mixture.temperature");
  t.temperature = 1e-300;
  bad(t, StatusCode::kInvalidArgument, "too small");
  t.temperature = 2;
  t.components = {{"coco", 1.0}};
  bad(t, StatusCode::kInvalidArgument, "not both");
  MixtureSpec zero;
  zero.epoch_size = 0;
  bad(zero, StatusCode::kInvalidArgument, "mixture.epoch_size must be at least 1");
  // A key the selection filters out entirely.
  SelectionSpec only_coco;
  only_coco.tasks = {"coco"};
  EXPECT_THAT(Resolve(Weights({{"gqa", 1.0}}), only_coco),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("matches no instance of the selection")));
}

TEST_F(MixtureTest, PolicyAndEntitlementApplyToEveryComponent) {
  LicensePolicy policy;
  policy.excluded_tasks = {"gqa"};
  dataset_ = MakeDataset(policy);
  EXPECT_THAT(Resolve(Weights({{"gqa", 1.0}})),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("license policy")));
  LicensePolicy narrow;
  narrow.allowed_commercial_use = {storage::CommercialUse::kYes};
  EXPECT_THAT(Resolve(Weights({{"coco-cn", 1.0}}), {}, &narrow),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("entitlement of identity 'alice'")));
  // '*' and temperature mixtures only ever see what the caller may read.
  SelectionSpec train;
  train.splits = {"train"};
  auto sel = dataset_->Resolve(train, &narrow, "alice");
  ASSERT_THAT(sel, IsOk());
  MixtureSpec t;
  t.temperature = 1;
  auto c = ResolveMixture(*dataset_, *sel, t, &narrow, "alice");
  ASSERT_THAT(c, IsOk());
  for (const auto& x : *c) EXPECT_NE(x.key, "coco-cn");
  for (const auto& x : *c) EXPECT_NE(x.key, "gqa");
}

}  // namespace
}  // namespace m3serve::server
