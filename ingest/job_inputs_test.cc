#include "ingest/job_inputs.h"

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ingest/source_check.h"
#include "ingest/test_util.h"

namespace m3serve::ingest {
namespace {

using ::m3serve::ingest::testing::TempDir;
using ::m3serve::ingest::testing::WriteFile;

FileJob JobIn(const TempDir& dir, const std::string& task, const std::string& task_rel) {
  FileJob job;
  job.rel_path = task_rel + "/train.jsonl";
  job.path = (dir.path() / "src" / job.rel_path).string();
  job.group.task = task;
  job.task_dir = (dir.path() / "src" / task_rel).string();
  job.format = RowFormat::kM3it;
  return job;
}

// imagenet's mapping.txt and ss's labels.json are side files of the mappings
// that read them (present or not: one added is a change); other tasks have
// none. An edit is named with the file's path under the source root.
TEST(JobInputsTest, ClassTablesAreSideFilesOfTheMappingsThatReadThem) {
  TempDir dir;
  FileJob job = JobIn(dir, "imagenet", "data/classification/imagenet");
  EXPECT_EQ(MappingOf(job), Mapping::kImagenet);
  WriteFile(job.task_dir + "/mapping.txt", "tench\ngoldfish\n");
  const auto before = SideFileIdentities(false, WallClockNs()).Current(job, {});
  ASSERT_EQ(before.size(), 2u);
  EXPECT_EQ(SideFilesChange(job, before, before), "");
  EXPECT_EQ(SideFilesChange(job, before, SideFileIdentities(true, WallClockNs()).Current(job, before)), "");

  WriteFile(job.task_dir + "/mapping.txt", "tench\nshark\n");
  const auto edited = SideFileIdentities(false, WallClockNs()).Current(job, before);
  EXPECT_EQ(SideFilesChange(job, before, edited),
            "its class table data/classification/imagenet/mapping.txt changed");

  WriteFile(job.task_dir + "/labels.json", "{\"tench\": \"0\"}");
  const auto added = SideFileIdentities(false, WallClockNs()).Current(job, edited);
  EXPECT_EQ(SideFilesChange(job, edited, added),
            "its class table data/classification/imagenet/labels.json changed");

  EXPECT_TRUE(SideFilesOf(JobIn(dir, "gqa", "data/vqa/gqa")).empty());
  EXPECT_EQ(SideFilesOf(JobIn(dir, "ss", "data/classification/ss")).size(), 2u);
}

// A pool's identity is what the task takes from it: in an M3IT-80 pool (one
// file per language, every task's instructions), an edit of another task's
// entry is no change for this task; an edit of its own is.
TEST(JobInputsTest, PoolIdentityIsTheTasksInstructions) {
  TempDir dir;
  FileJob job = JobIn(dir, "coco", "data/captioning/coco");
  const std::string pool = (dir.path() / "src/data/instructions/fr.jsonl").string();
  job.pools.push_back({pool, "fr"});
  auto pool_file = [&](const std::string& coco, const std::string& vqa) {
    WriteFile(pool, "{\"task\": \"coco\", \"instructions\": [\"" + coco + "\"]}\n{\"task\": \"vqa-v2\", \"instructions\": [\"" +
                        vqa + "\"]}\n");
  };
  pool_file("Décrivez l'image.", "Répondez.");
  SideFileIdentities first(false, WallClockNs());
  const auto before = first.Current(job, {});
  ASSERT_EQ(before.size(), 1u);
  EXPECT_EQ(before[0].role, "pool:fr:fr.jsonl");
  ASSERT_NE(first.LoadedPool(pool, "coco"), nullptr);
  EXPECT_EQ(*first.LoadedPool(pool, "coco"), std::vector<std::string>{"Décrivez l'image."});

  pool_file("Décrivez l'image.", "Répondez vite.");
  EXPECT_EQ(SideFilesChange(job, before, SideFileIdentities(false, WallClockNs()).Current(job, before)), "");

  pool_file("Décrivez la photo.", "Répondez vite.");
  EXPECT_EQ(SideFilesChange(job, before, SideFileIdentities(false, WallClockNs()).Current(job, before)),
            "its instruction pool data/instructions/fr.jsonl changed");

  // Broken, then gone: each is a change of its own.
  pool_file("", "Répondez vite.");
  const auto broken = SideFileIdentities(false, WallClockNs()).Current(job, before);
  EXPECT_NE(SideFilesChange(job, before, broken), "");
  std::filesystem::remove(pool);
  EXPECT_NE(SideFilesChange(job, broken, SideFileIdentities(false, WallClockNs()).Current(job, broken)), "");
}

// A side file whose stat matches a record taken well after its last
// modification keeps the recorded identity without being read; --verify-
// sources reads it anyway.
TEST(JobInputsTest, TrustedStatIsNotReadUnlessVerifying) {
  TempDir dir;
  FileJob job = JobIn(dir, "imagenet", "data/classification/imagenet");
  WriteFile(job.task_dir + "/mapping.txt", "tench\n");
  auto recorded = SideFileIdentities(false, WallClockNs()).Current(job, {});
  ASSERT_EQ(recorded.size(), 2u);
  // Pretend it was identified long after its modification, with another identity.
  recorded[0].checked_ns = recorded[0].mtime_ns + 10 * kRacyNs;
  recorded[0].identity = ContentHash("not what the file holds");
  EXPECT_EQ(SideFileIdentities(false, WallClockNs()).Current(job, recorded)[0], recorded[0]);
  EXPECT_NE(SideFileIdentities(true, WallClockNs()).Current(job, recorded)[0].identity, recorded[0].identity);
}

}  // namespace
}  // namespace m3serve::ingest
