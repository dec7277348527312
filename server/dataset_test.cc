#include "server/dataset.h"

#include <unistd.h>

#include <filesystem>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/instance_builder.h"
#include "storage/verify.h"

namespace m3serve::server {
namespace {

using ::m3serve::testing::IsOk;
using ::m3serve::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class DatasetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("m3serve_dataset_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    auto store = storage::Store::Open({.path = dir_.string()});
    ASSERT_THAT(store, IsOk());
    storage::StoreWriteBatch b;
    using storage::CommercialUse;
    b.PutTask({"vqa-v2", "vqa", "VQA v2", "CC-BY 4.0", CommercialUse::kUnknown, false,
               storage::Modality::kImage, "en"});
    b.PutTask({"mocheg", "classification", "Mocheg", "CC BY 4.0", CommercialUse::kYes, false,
               storage::Modality::kImage, "en"});
    b.PutTask({"coco-cn", "captioning", "COCO-CN", "Non-commercial", CommercialUse::kNo, true,
               storage::Modality::kImage, "zh"});
    b.PutTask({"msrvtt", "captioning", "MSR-VTT", "Unknown", CommercialUse::kUnknown, true,
               storage::Modality::kVideo, "en"});
    b.PutCount({"vqa-v2", "train", "en"}, 10);
    b.PutCount({"vqa-v2", "train", "fr"}, 4);
    b.PutCount({"vqa-v2", "validation", "zh"}, 3);
    b.PutCount({"mocheg", "test", "en"}, 2);
    b.PutCount({"coco-cn", "train", "zh"}, 5);
    b.PutCount({"msrvtt", "train", "en"}, 6);
    b.PutPool("vqa-v2", "en", {"Answer it.", "Look and answer."});
    b.PutPool("vqa-v2", "fr", {"Répondez."});
    ASSERT_THAT((*store)->Write(&b), IsOk());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<Dataset> Open(LicensePolicy policy = {}) {
    auto d = Dataset::Open({.path = dir_.string(), .read_only = true}, std::move(policy));
    EXPECT_THAT(d, IsOk());
    return d.ok() ? std::move(*d) : nullptr;
  }
  std::filesystem::path dir_;
};

std::vector<std::string> Groups(const ResolvedSelection& r) {
  std::vector<std::string> out;
  for (const auto& g : r.groups) out.push_back(g.ToString());
  return out;
}

TEST_F(DatasetTest, FiltersCombine) {
  auto d = Open();
  SelectionSpec s;
  s.tasks = {"vqa-v2"};
  s.languages = {"zh", "fr"};
  auto r = d->Resolve(s);
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(Groups(*r), ElementsAre("vqa-v2/train/fr", "vqa-v2/validation/zh"));
  EXPECT_EQ(r->total(), 7u);

  SelectionSpec all;
  EXPECT_EQ(d->Resolve(all)->total(), 30u);
  SelectionSpec commercial;
  commercial.commercial_use_only = true;
  EXPECT_THAT(Groups(*d->Resolve(commercial)), ElementsAre("mocheg/test/en"));
  SelectionSpec video;
  video.modality = storage::Modality::kVideo;
  EXPECT_THAT(Groups(*d->Resolve(video)), ElementsAre("msrvtt/train/en"));
  SelectionSpec cats;
  cats.categories = {"captioning"};
  cats.exclude_tasks = {"msrvtt"};
  EXPECT_THAT(Groups(*d->Resolve(cats)), ElementsAre("coco-cn/train/zh"));
  // coco-cn and msrvtt are held out (for evaluation) in this catalog.
  SelectionSpec no_held_out;
  no_held_out.held_out = SelectionSpec::HeldOut::kExclude;
  EXPECT_THAT(Groups(*d->Resolve(no_held_out)),
              ElementsAre("mocheg/test/en", "vqa-v2/train/en", "vqa-v2/train/fr", "vqa-v2/validation/zh"));
  SelectionSpec held_out_only;
  held_out_only.held_out = SelectionSpec::HeldOut::kOnly;
  EXPECT_THAT(Groups(*d->Resolve(held_out_only)), ElementsAre("coco-cn/train/zh", "msrvtt/train/en"));
  held_out_only.languages = {"zh"};
  EXPECT_THAT(Groups(*d->Resolve(held_out_only)), ElementsAre("coco-cn/train/zh"));
  SelectionSpec lic;
  lic.licenses = {"CC BY 4.0", "CC-BY 4.0"};
  lic.splits = {"train"};
  EXPECT_EQ(d->Resolve(lic)->total(), 14u);
  // The store holds the metadata's spellings (as stores ingested before SPDX
  // ids do); any spelling of the license, and its id, select the same tasks.
  for (const char* spelling : {"CC-BY-4.0", "cc-by 4.0", "CC By 4.0"}) {
    lic.licenses = {spelling};
    EXPECT_EQ(d->Resolve(lic)->total(), 14u) << spelling;
  }
  EXPECT_EQ(d->Task("vqa-v2")->license, "CC-BY-4.0");
  EXPECT_EQ(d->Task("vqa-v2")->license_text, "CC-BY 4.0");
  lic.licenses = {"CC BY 5.0"};
  EXPECT_THAT(d->Resolve(lic), StatusIs(absl::StatusCode::kInvalidArgument,
                                        HasSubstr("selection.licenses: 'CC BY 5.0' is not a known license (known: ")));
  lic.licenses = {"MIT"};  // a license, but no task of this store has it
  EXPECT_THAT(d->Resolve(lic), StatusIs(absl::StatusCode::kNotFound, HasSubstr("selection.licenses: unknown license 'MIT'")));
}

TEST_F(DatasetTest, UnknownNamesAreNotFound) {
  auto d = Open();
  SelectionSpec s;
  s.tasks = {"vqa-v3"};
  EXPECT_THAT(d->Resolve(s), StatusIs(absl::StatusCode::kNotFound, HasSubstr("selection.tasks: unknown task 'vqa-v3'")));
  s = {};
  s.languages = {"xx"};
  EXPECT_THAT(d->Resolve(s), StatusIs(absl::StatusCode::kNotFound, HasSubstr("selection.languages")));
  s = {};
  s.splits = {"dev"};
  EXPECT_THAT(d->Resolve(s), StatusIs(absl::StatusCode::kNotFound, HasSubstr("selection.splits")));
  s = {};
  s.licenses = {"MIT"};
  EXPECT_THAT(d->Resolve(s), StatusIs(absl::StatusCode::kNotFound, HasSubstr("selection.licenses")));
}

TEST_F(DatasetTest, PolicyRemovesAndRefuses) {
  LicensePolicy p;
  p.allowed_commercial_use = {storage::CommercialUse::kYes, storage::CommercialUse::kUnknown};
  p.excluded_tasks = {"msrvtt"};
  auto d = Open(p);
  EXPECT_THAT(d->removed_tasks(), ElementsAre("coco-cn", "msrvtt"));
  auto all = d->Resolve({});
  ASSERT_THAT(all, IsOk());
  EXPECT_EQ(all->total(), 19u);
  EXPECT_THAT(all->removed_by_policy, ElementsAre("coco-cn", "msrvtt"));
  SelectionSpec s;
  s.tasks = {"coco-cn"};
  EXPECT_THAT(d->Resolve(s), StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("'coco-cn'")));
  LicensePolicy lp;
  lp.allowed_licenses = {"CC BY 4.0"};
  auto d2 = Open(lp);
  s = {};
  s.licenses = {"Non-commercial"};
  EXPECT_THAT(d2->Resolve(s), StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("selection.licenses")));
}

TEST_F(DatasetTest, ACorruptImageIndexIsServedWithoutTheGuardAndListedByVerify) {
  {
    auto store = storage::Store::Open({.path = dir_.string()});
    ASSERT_THAT(store, IsOk());
    storage::ImageIndex index;
    index.basis = (*store)->ReadCatalog()->fingerprint;
    index.images = 1;
    index.groups[{"vqa-v2", "train", "en"}].offsets = {0, 1};
    index.groups[{"vqa-v2", "train", "en"}].refs = {7};  // no image 7
    ASSERT_THAT((*store)->WriteImageIndex(index), IsOk());
    auto report = storage::VerifyStore(**store);
    ASSERT_THAT(report, IsOk());
    EXPECT_THAT(report->problems, ::testing::Contains(HasSubstr("the image index is corrupt")));
  }
  auto d = Open();
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->Resolve(SelectionSpec{})->total(), 30u);
  SelectionSpec guarded;
  guarded.exclude_eval_images = true;
  EXPECT_THAT(d->Resolve(guarded), StatusIs(absl::StatusCode::kFailedPrecondition,
                                            HasSubstr("image index is corrupt")));
}

TEST_F(DatasetTest, DigestFollowsTheResolvedGroups) {
  auto d = Open();
  SelectionSpec a, b;
  a.tasks = {"vqa-v2"};
  b.tasks = {"vqa-v2"};
  b.categories = {"vqa"};  // same groups
  EXPECT_EQ(d->Resolve(a)->digest, d->Resolve(b)->digest);
  b.languages = {"en"};
  EXPECT_NE(d->Resolve(a)->digest, d->Resolve(b)->digest);
}

TEST_F(DatasetTest, InstructionsComeFromThePool) {
  auto d = Open();
  storage::Instance x;
  x.group = {"vqa-v2", "train", "fr"};
  x.ordinal = 3;
  BuildOptions o;
  EXPECT_EQ(ChooseInstruction(*d, x, o), "Répondez.");  // empty -> pool of its language
  x.group.lang = "zh";  // no zh pool: the default language's
  std::string zh = ChooseInstruction(*d, x, o);
  EXPECT_TRUE(zh == "Answer it." || zh == "Look and answer.");
  // As ingested, a pooled instruction is the same in every epoch and seed.
  for (uint64_t epoch = 0; epoch < 20; ++epoch) {
    BuildOptions other;
    other.epoch = epoch;
    other.seed = epoch * 7 + 1;
    EXPECT_EQ(ChooseInstruction(*d, x, other), zh);
  }
  x.instruction = "Own instruction about [HYPO].";
  x.template_vars = {{"HYPO", "two dogs"}};
  EXPECT_EQ(ChooseInstruction(*d, x, o), "Own instruction about two dogs.");
  o.resample_instructions = true;
  std::set<std::string> seen;
  for (uint64_t epoch = 0; epoch < 20; ++epoch) {
    o.epoch = epoch;
    std::string a = ChooseInstruction(*d, x, o);
    EXPECT_EQ(a, ChooseInstruction(*d, x, o));
    seen.insert(a);
  }
  EXPECT_EQ(seen, (std::set<std::string>{"Answer it.", "Look and answer."}));
}

TEST(KeptImagesTest, VideoFramesAreSampledEvenly) {
  EXPECT_THAT(KeptImages(8, 4, true), ElementsAre(1, 3, 5, 7));
  EXPECT_THAT(KeptImages(8, 4, false), ElementsAre(0, 1, 2, 3));
  EXPECT_THAT(KeptImages(3, 0, true), ElementsAre(0, 1, 2));
  EXPECT_THAT(KeptImages(3, 5, true), ElementsAre(0, 1, 2));
}

}  // namespace
}  // namespace m3serve::server
