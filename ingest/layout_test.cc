#include "ingest/layout.h"

#include <algorithm>

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
using ::testing::Contains;
using ::testing::HasSubstr;

TEST(SplitFileNameTest, RecognisesEveryVariant) {
  struct Case {
    const char* stem;
    const char* split;
    int priority;
    bool rephrased;
  };
  for (const Case& c : std::vector<Case>{
           {"train", "train", 0, false},
           {"val", "validation", 0, false},
           {"dev", "validation", 0, false},
           {"validation", "validation", 0, false},
           {"test", "test", 0, false},
           {"esnlive_train", "train", 0, false},
           {"science_qa_validation", "validation", 0, false},
           {"image_paragraph_captioning_test", "test", 0, false},
           {"winoground_test", "test", 0, false},
           {"train.large", "train", 1, false},
           {"train_v2", "train", 2, false},
           {"validation_v2", "validation", 2, false},
           {"para_val", "validation", 1, false},
           {"train_2023-10-08", "train", 0, true},
           {"test_2023-10-10", "test", 0, true},
           {"val_2023-10-07", "validation", 0, true},
       }) {
    auto p = ParseSplitFileName(c.stem);
    ASSERT_TRUE(p.has_value()) << c.stem;
    EXPECT_EQ(p->split, c.split) << c.stem;
    EXPECT_EQ(p->priority, c.priority) << c.stem;
    EXPECT_EQ(p->rephrased, c.rephrased) << c.stem;
  }
  EXPECT_FALSE(ParseSplitFileName("labels").has_value());
  EXPECT_FALSE(ParseSplitFileName("mapping").has_value());
  EXPECT_TRUE(ParseSplitFileName("train_500")->english_500);
}

class LayoutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = TaskRegistry::Load(TaskRegistry::DefaultMetadataPath(), "");
    ASSERT_THAT(r, IsOk());
    registry_ = std::move(*r);
  }
  const FileJob* Find(const Discovery& d, const std::string& rel) {
    for (const auto& j : d.jobs) {
      if (j.rel_path == rel) return &j;
    }
    return nullptr;
  }
  TaskRegistry registry_;
};

TEST_F(LayoutTest, M3itFoldersMapToConfigs) {
  TempDir dir;
  auto d = dir.path() / "M3IT" / "data";
  for (const char* f : {"vqa/vqav2/train.jsonl", "vqa/vqav2/val.jsonl", "vqa/vqav2/instructions.json",
                        "vqa/okvqa/train.jsonl", "vqa/okvqa/train_v2.jsonl",
                        "vqa/shapes/train.large.jsonl", "vqa/shapes/train_2023-10-08.jsonl",
                        "classification/snli-ve/esnlive_train.jsonl", "vqa/gqa/validation.jsonl",
                        "vqa/gqa/instruction.json", "vqa/fm-iqa/train.jsonl", "vqa/fm-iqa/para_train.jsonl",
                        "classification/chinesefoodnet-10/test.jsonl", "classification/imagenet/mapping.txt",
                        "classification/imagenet/val.jsonl", "vqa/new_task/train.jsonl",
                        "generation/mmchat/oddname.jsonl", "captioning/coco/README.md",
                        "captioning/coco/create_dataset.py", "captioning/coco/test.jsonl",
                        "classification/coco-text/train_2023-10-08.jsonl"}) {
    WriteFile(d / f, "{}\n");
  }
  auto disc = DiscoverSources({(dir.path() / "M3IT").string()}, registry_, {});
  ASSERT_THAT(disc, IsOk());
  auto group = [&](const std::string& rel) {
    const FileJob* j = Find(*disc, rel);
    return j ? j->group.ToString() : "(not found)";
  };
  EXPECT_EQ(group("data/vqa/vqav2/train.jsonl"), "vqa-v2/train/en");
  EXPECT_EQ(group("data/vqa/vqav2/val.jsonl"), "vqa-v2/validation/en");
  EXPECT_EQ(group("data/vqa/okvqa/train_v2.jsonl"), "okvqa/train/en");
  EXPECT_EQ(Find(*disc, "data/vqa/okvqa/train.jsonl"), nullptr);
  EXPECT_THAT(disc->warnings, Contains(HasSubstr("okvqa/train.jsonl: superseded by train_v2.jsonl")));
  EXPECT_EQ(group("data/vqa/shapes/train.large.jsonl"), "shapes/train/en");
  EXPECT_EQ(group("data/vqa/shapes/train_2023-10-08.jsonl"), "shapes-rephrased/train/en");
  EXPECT_EQ(Find(*disc, "data/vqa/shapes/train_2023-10-08.jsonl")->variant, "rephrased");
  EXPECT_EQ(group("data/classification/snli-ve/esnlive_train.jsonl"), "snli-ve/train/en");
  EXPECT_EQ(group("data/vqa/gqa/validation.jsonl"), "gqa/validation/en");
  EXPECT_EQ(Find(*disc, "data/vqa/gqa/validation.jsonl")->pools.size(), 1u);
  EXPECT_EQ(group("data/vqa/fm-iqa/para_train.jsonl"), "fm-iqa/train/zh");
  EXPECT_EQ(Find(*disc, "data/vqa/fm-iqa/train.jsonl"), nullptr);
  EXPECT_EQ(group("data/classification/chinesefoodnet-10/test.jsonl"), "chinese-food/test/zh");
  EXPECT_EQ(group("data/classification/imagenet/val.jsonl"), "imagenet/validation/en");
  EXPECT_EQ(group("data/vqa/new_task/train.jsonl"), "new-task/train/en");
  EXPECT_EQ(Find(*disc, "data/vqa/new_task/train.jsonl")->task.license, "LicenseRef-Unknown");
  EXPECT_EQ(group("data/captioning/coco/test.jsonl"), "coco/test/en");
  EXPECT_EQ(group("data/classification/coco-text/train_2023-10-08.jsonl"), "coco-text-rephrased/train/en");
  EXPECT_THAT(disc->warnings, Contains(HasSubstr("mmchat/oddname.jsonl: the file name names no split")));
  EXPECT_THAT(disc->warnings, Contains(HasSubstr("no instructions.json in data/vqa/okvqa")));
}

TEST_F(LayoutTest, TasksFilterAndDataDirAsRoot) {
  TempDir dir;
  WriteFile(dir.path() / "data/vqa/vqav2/train.jsonl", "{}\n");
  WriteFile(dir.path() / "data/vqa/gqa/train.jsonl", "{}\n");
  DiscoverOptions o;
  o.tasks = {"gqa"};
  auto a = DiscoverSources({dir.str()}, registry_, o);
  ASSERT_THAT(a, IsOk());
  ASSERT_EQ(a->jobs.size(), 1u);
  EXPECT_EQ(a->jobs[0].group.task, "gqa");
  // Pointing at data/ itself gives the same relative paths (same progress keys).
  auto b = DiscoverSources({(dir.path() / "data").string()}, registry_, o);
  ASSERT_THAT(b, IsOk());
  EXPECT_EQ(b->jobs[0].rel_path, a->jobs[0].rel_path);
}

TEST_F(LayoutTest, M3it80FilesAndPools) {
  TempDir dir;
  auto d = dir.path() / "M3IT-80" / "data";
  for (const char* f : {"vqa-v2/vqa-v2_train_fr.jsonl", "vqa-v2/vqa-v2_validation_zh.jsonl",
                        "vqa-v2/train_500.jsonl", "vqa-v2/val_500.jsonl", "msrvtt-qa/msrvtt-qa_test_ko.jsonl",
                        "imagenet/imagenet_validation_ckb.jsonl", "instructions/fr.jsonl",
                        "vqa-v2/notes.jsonl"}) {
    WriteFile(d / f, "{}\n");
  }
  auto disc = DiscoverSources({(dir.path() / "M3IT-80").string()}, registry_, {});
  ASSERT_THAT(disc, IsOk());
  const FileJob* fr = Find(*disc, "data/vqa-v2/vqa-v2_train_fr.jsonl");
  ASSERT_NE(fr, nullptr);
  EXPECT_EQ(fr->group.ToString(), "vqa-v2/train/fr");
  EXPECT_EQ(fr->format, RowFormat::kM3it80Translated);
  EXPECT_EQ(fr->raw_rel_path, "data/vqa-v2/train_500.jsonl");
  ASSERT_EQ(fr->pools.size(), 1u);
  EXPECT_EQ(fr->pools[0].lang, "fr");
  const FileJob* zh = Find(*disc, "data/vqa-v2/vqa-v2_validation_zh.jsonl");
  EXPECT_EQ(zh->raw_rel_path, "data/vqa-v2/val_500.jsonl");
  EXPECT_TRUE(zh->pools.empty());
  EXPECT_EQ(Find(*disc, "data/msrvtt-qa/msrvtt-qa_test_ko.jsonl")->raw_rel_path,
            "data/msrvtt-qa/test_500.jsonl");
  EXPECT_EQ(Find(*disc, "data/imagenet/imagenet_validation_ckb.jsonl")->group.lang, "ckb");
  EXPECT_EQ(Find(*disc, "data/vqa-v2/train_500.jsonl"), nullptr);
  EXPECT_THAT(disc->warnings, Contains(HasSubstr("notes.jsonl")));
}

TEST_F(LayoutTest, CanonicalFileNeedsGroup) {
  TempDir dir;
  WriteFile(dir.path() / "rows.jsonl", "{}\n");
  EXPECT_THAT(DiscoverSources({(dir.path() / "rows.jsonl").string()}, registry_, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--task, --split and --lang")));
  DiscoverOptions o{"my-task", "val", "de", {}};
  auto disc = DiscoverSources({(dir.path() / "rows.jsonl").string()}, registry_, o);
  ASSERT_THAT(disc, IsOk());
  ASSERT_EQ(disc->jobs.size(), 1u);
  EXPECT_EQ(disc->jobs[0].group.ToString(), "my-task/validation/de");
  EXPECT_EQ(disc->jobs[0].format, RowFormat::kCanonical);
  EXPECT_THAT(DiscoverSources({(dir.path() / "missing").string()}, registry_, o),
              StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace m3serve::ingest
