#include "ingest/task_registry.h"

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ingest/test_util.h"

namespace m3serve::ingest {
namespace {

using ::m3serve::ingest::testing::TempDir;
using ::m3serve::ingest::testing::WriteFile;
using ::m3serve::testing::IsOk;
using ::m3serve::testing::StatusIs;
using ::testing::HasSubstr;

TEST(TaskRegistryTest, ShippedFileCoversEveryConfig) {
  auto reg = TaskRegistry::Load(TaskRegistry::DefaultMetadataPath(), "");
  ASSERT_THAT(reg, IsOk());
  EXPECT_GE(reg->size(), 54u);
  const TaskSpec* vqa = reg->Find("vqa-v2");
  ASSERT_NE(vqa, nullptr);
  EXPECT_EQ(vqa->folder, "vqa/vqav2");
  EXPECT_EQ(vqa->info.license, "CC-BY-4.0");        // SPDX id
  EXPECT_EQ(vqa->info.license_text, "CC-BY 4.0");   // the paper's wording
  // The paper's three spellings of CC BY 4.0 are one license.
  EXPECT_EQ(reg->Find("mocheg")->info.license, "CC-BY-4.0");
  EXPECT_EQ(reg->Find("viquae")->info.license, "CC-BY-4.0");
  EXPECT_EQ(reg->Find("imagenet")->info.license, "LicenseRef-NonCommercial");
  EXPECT_EQ(reg->Find("coco")->info.license, "LicenseRef-Custom");
  EXPECT_EQ(vqa->info.category, "vqa");
  EXPECT_EQ(reg->Find("imagenet")->info.commercial_use, storage::CommercialUse::kNo);
  EXPECT_EQ(reg->Find("mocheg")->info.commercial_use, storage::CommercialUse::kYes);
  EXPECT_TRUE(reg->Find("winoground")->info.held_out);
  EXPECT_EQ(reg->Find("coco-cn")->info.default_lang, "zh");
  EXPECT_EQ(reg->Find("msrvtt")->info.modality, storage::Modality::kVideo);
  EXPECT_EQ(reg->BaseForFolder("classification/chinesefoodnet-10")->info.name, "chinese-food");
  EXPECT_EQ(reg->VariantForFolder("vqa/shapes", "rephrased")->info.name, "shapes-rephrased");
}

TEST(TaskRegistryTest, UnknownTaskGetsUnknownLicense) {
  auto reg = TaskRegistry::Load(TaskRegistry::DefaultMetadataPath(), "");
  ASSERT_THAT(reg, IsOk());
  storage::TaskInfo t = reg->InfoFor("brand-new-task", "vqa", "en");
  EXPECT_EQ(t.license, "LicenseRef-Unknown");
  EXPECT_EQ(t.commercial_use, storage::CommercialUse::kUnknown);
  EXPECT_EQ(t.category, "vqa");
}

TEST(TaskRegistryTest, OverridesReplaceOnlyGivenFields) {
  TempDir dir;
  WriteFile(dir.path() / "o.json",
            R"json({"tasks": [{"name": "coco", "license": "apache 2.0", "commercial_use": "yes"},
                          {"name": "my-task", "category": "vqa"}]})json");
  auto reg = TaskRegistry::Load(TaskRegistry::DefaultMetadataPath(), (dir.path() / "o.json").string());
  ASSERT_THAT(reg, IsOk());
  EXPECT_EQ(reg->Find("coco")->info.license, "Apache-2.0");
  EXPECT_EQ(reg->Find("coco")->info.license_text, "apache 2.0");
  EXPECT_EQ(reg->Find("coco")->info.commercial_use, storage::CommercialUse::kYes);
  EXPECT_EQ(reg->Find("coco")->folder, "captioning/coco");
  EXPECT_EQ(reg->Find("my-task")->info.license, "LicenseRef-Unknown");
}

TEST(TaskRegistryTest, BadFilesNameTheFieldAndEntry) {
  TempDir dir;
  WriteFile(dir.path() / "bad.json", R"({"tasks": [{"name": "x", "commercial_use": "maybe"}]})");
  EXPECT_THAT(TaskRegistry::Load((dir.path() / "bad.json").string(), ""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr("tasks[0] (x)"), HasSubstr("commercial_use"))));
  WriteFile(dir.path() / "bad2.json", R"({"tasks": [{"name": "x", "licence": "MIT"}]})");
  EXPECT_THAT(TaskRegistry::Load((dir.path() / "bad2.json").string(), ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'licence' is not a known field")));
  // A license spelling no known license has is an error, not a new license.
  WriteFile(dir.path() / "bad3.json", R"json({"tasks": [{"name": "x", "license": "CC BY 4.0 (reviewed)"}]})json");
  EXPECT_THAT(TaskRegistry::Load((dir.path() / "bad3.json").string(), ""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr("tasks[0] (x): field 'license' 'CC BY 4.0 (reviewed)' is not a "
                                                  "known license (known: Apache-2.0,"),
                                        HasSubstr("CC-BY-4.0"))));
  EXPECT_THAT(TaskRegistry::Load((dir.path() / "nope.json").string(), ""),
              StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace m3serve::ingest
