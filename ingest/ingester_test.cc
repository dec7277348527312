// In-process tests of the ingest pipeline against real stores in temp dirs:
// source identity (files that change while or between runs), regular files
// only, instruction pools, and the rejects file's exactly-once records.
#include "ingest/ingester.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ingest/test_util.h"
#include "storage/verify.h"

namespace m3serve::ingest {
namespace {

namespace fs = std::filesystem;
using ::m3serve::ingest::testing::ImageB64;
using ::m3serve::ingest::testing::ImageBytes;
using ::m3serve::ingest::testing::SetMtimeSecondsAgo;
using ::m3serve::ingest::testing::TempDir;
using ::m3serve::ingest::testing::WriteFile;
using ::m3serve::testing::IsOk;
using ::m3serve::testing::StatusIs;
using ::testing::HasSubstr;

// One gqa row: generic mapping (question -> inputs, answer -> outputs), the
// instruction from the folder's instruction.json unless `instruction` is set.
std::string Row(int i, const std::string& instruction = "") {
  std::string row = absl::StrCat("{\"question\": \"What is shown in picture ", i,
                                 "?\", \"answer\": \"thing ", i, "\", \"image_str\": \"",
                                 ImageB64(i % 37), "\"");
  if (!instruction.empty()) absl::StrAppend(&row, ", \"instruction\": \"", instruction, "\"");
  return row + "}";
}

std::string Rows(int from, int to) {
  std::string out;
  for (int i = from; i < to; ++i) absl::StrAppend(&out, Row(i), "\n");
  return out;
}

class IngesterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = TaskRegistry::Load(TaskRegistry::DefaultMetadataPath(), "");
    ASSERT_THAT(r, IsOk());
    registry_ = std::make_unique<TaskRegistry>(std::move(*r));
    gqa_ = dir_.path() / "src" / "data" / "vqa" / "gqa";
    WriteFile(gqa_ / "instruction.json", "[\"Answer the question.\", \"Look and answer.\"]");
  }

  fs::path Db(const std::string& name) const { return dir_.path() / name; }

  absl::StatusOr<IngestReport> Run(const fs::path& db, IngestOptions options = {}) {
    auto store = storage::Store::Open({.path = db.string(), .bulk_ingest = true});
    if (!store.ok()) return store.status();
    if (options.sources.empty()) options.sources = {(dir_.path() / "src").string()};
    options.threads = 2;
    options.chunk_lines = 3;
    options.chunk_bytes = 1 << 10;
    return Ingest(store->get(), *registry_, options);
  }

  storage::VerifyReport Verify(const fs::path& db) {
    auto store = storage::Store::Open({.path = db.string(), .read_only = true});
    EXPECT_THAT(store, IsOk());
    auto r = storage::VerifyStore(**store);
    EXPECT_THAT(r, IsOk());
    EXPECT_TRUE(r->ok()) << (r->problems.empty() ? "" : r->problems[0]);
    return *r;
  }

  // The digest of a store made by one uninterrupted ingest of the tree as it is now.
  Hash128 CleanDigest(const std::string& name) {
    auto r = Run(Db(name));
    EXPECT_THAT(r, IsOk());
    return Verify(Db(name)).digest;
  }

  static const FileReport& File(const IngestReport& r, absl::string_view rel_suffix) {
    for (const auto& f : r.files) {
      if (absl::EndsWith(f.rel_path, rel_suffix)) return f;
    }
    ADD_FAILURE() << "no file " << rel_suffix;
    return r.files.at(0);
  }

  std::string Rejects(const fs::path& db) {
    std::ifstream in(db / "rejects.jsonl");
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  TempDir dir_;
  std::unique_ptr<TaskRegistry> registry_;
  fs::path gqa_;
};

// A file that shrinks while it is read is not marked complete; once whole
// again, the next run ingests its group again and the store equals a clean
// ingest, rows and images. Random shrink points and sizes.
TEST_F(IngesterTest, FileShrinkingWhileReadIsReingestedByTheNextRun) {
  std::mt19937 rng(11);
  for (int round = 0; round < 4; ++round) {
    const int n = std::uniform_int_distribution<int>(12, 40)(rng);
    const std::string whole = Rows(0, n);
    WriteFile(gqa_ / "train.jsonl", whole);
    WriteFile(gqa_ / "validation.jsonl", Rows(100, 104));
    const fs::path db = Db(absl::StrCat("shrink", round));
    const uint64_t cut = std::uniform_int_distribution<uint64_t>(whole.size() / 5, whole.size() * 4 / 5)(rng);
    bool shrunk = false;
    IngestOptions o;
    o.after_chunk_for_testing = [&](const std::string& path, uint64_t) {
      if (!shrunk && absl::EndsWith(path, "train.jsonl")) {
        shrunk = true;
        ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(cut)), 0);
      }
    };
    auto first = Run(db, o);
    ASSERT_THAT(first, IsOk());
    EXPECT_TRUE(shrunk);
    EXPECT_EQ(File(*first, "train.jsonl").status, FileStatus::kChanged);
    EXPECT_THAT(File(*first, "train.jsonl").note, HasSubstr("file changed while it was read"));
    EXPECT_EQ(first->ExitCode(), 3);
    EXPECT_THAT(Rejects(db), HasSubstr("file changed while it was read"));
    // The other file of the run is whole.
    EXPECT_EQ(File(*first, "validation.jsonl").status, FileStatus::kIngested);
    EXPECT_EQ(File(*first, "validation.jsonl").rows, 4u);
    {
      // verify says the store holds stale rows until the next run.
      auto store = storage::Store::Open({.path = db.string(), .read_only = true});
      ASSERT_THAT(store, IsOk());
      auto v = storage::VerifyStore(**store);
      ASSERT_THAT(v, IsOk());
      EXPECT_THAT(v->problems, ::testing::Contains(HasSubstr("changed while it was ingested")));
    }

    WriteFile(gqa_ / "train.jsonl", whole);  // whole again
    auto second = Run(db);
    ASSERT_THAT(second, IsOk());
    EXPECT_EQ(File(*second, "train.jsonl").status, FileStatus::kReingested);
    EXPECT_EQ(File(*second, "train.jsonl").rows, static_cast<uint64_t>(n));
    EXPECT_EQ(File(*second, "validation.jsonl").status, FileStatus::kAlreadyIngested);
    EXPECT_EQ(second->ExitCode(), 0);
    EXPECT_EQ(Verify(db).digest, CleanDigest(absl::StrCat("clean_shrink", round)));
    // And a third run has nothing to do.
    auto third = Run(db);
    ASSERT_THAT(third, IsOk());
    EXPECT_EQ(File(*third, "train.jsonl").status, FileStatus::kAlreadyIngested);
  }
}

// A file rewritten between runs (same size, bytes changed in the middle, or
// shorter) is found by its content hash: its group is ingested again, and
// images only the old rows used are swept.
TEST_F(IngesterTest, FileChangedBetweenRunsIsReingested) {
  WriteFile(gqa_ / "train.jsonl", Rows(0, 20));
  const fs::path db = Db("db");
  ASSERT_THAT(Run(db), IsOk());

  std::string changed = Rows(0, 20);
  const size_t mid = changed.find("picture 10?");
  changed.replace(mid, 11, "picture X0?");  // same size
  WriteFile(gqa_ / "train.jsonl", changed);
  auto r = Run(db);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(File(*r, "train.jsonl").status, FileStatus::kReingested);
  EXPECT_THAT(File(*r, "train.jsonl").note, HasSubstr("its content changed since it was ingested"));
  EXPECT_EQ(Verify(db).digest, CleanDigest("clean1"));

  WriteFile(gqa_ / "train.jsonl", Rows(0, 7));  // shorter: images of rows 7..19 go
  auto shorter = Run(db);
  ASSERT_THAT(shorter, IsOk());
  EXPECT_EQ(File(*shorter, "train.jsonl").status, FileStatus::kReingested);
  EXPECT_GT(shorter->swept_images, 0u);
  EXPECT_EQ(Verify(db).digest, CleanDigest("clean2"));
}

// An instruction pool is part of its files' identity. Edited between runs:
// every group that uses it is ingested again and the task's pool becomes
// exactly the new one (instructions are drawn from it when served), so the
// store equals a clean ingest. Rewritten with the same instructions: nothing
// is read again.
TEST_F(IngesterTest, ChangedInstructionPoolReingestsItsGroups) {
  WriteFile(gqa_ / "train.jsonl", Rows(0, 8));
  WriteFile(gqa_ / "validation.jsonl", Rows(100, 103));
  const fs::path db = Db("db");
  ASSERT_THAT(Run(db), IsOk());

  WriteFile(gqa_ / "instruction.json", "[\"Answer briefly.\"]");
  auto r = Run(db);
  ASSERT_THAT(r, IsOk());
  for (const char* f : {"train.jsonl", "validation.jsonl"}) {
    EXPECT_EQ(File(*r, f).status, FileStatus::kReingested) << f;
    EXPECT_THAT(File(*r, f).note, HasSubstr("its instruction pool data/vqa/gqa/instruction.json changed"));
  }
  EXPECT_EQ(r->rows, 11u);
  EXPECT_EQ(r->ExitCode(), 0);
  {
    auto store = storage::Store::Open({.path = db.string(), .read_only = true});
    ASSERT_THAT(store, IsOk());
    auto catalog = (*store)->ReadCatalog();
    ASSERT_THAT(catalog, IsOk());
    EXPECT_EQ(catalog->pools.at({"gqa", "en"}), std::vector<std::string>{"Answer briefly."});
  }
  EXPECT_EQ(Verify(db).digest, CleanDigest("clean"));

  WriteFile(gqa_ / "instruction.json", "[ \"Answer briefly.\" ]\n");
  auto same = Run(db);
  ASSERT_THAT(same, IsOk());
  EXPECT_EQ(File(*same, "train.jsonl").status, FileStatus::kAlreadyIngested);
  EXPECT_EQ(same->rows, 0u);
}

// Progress records written before side files were recorded have nothing to
// compare with: the next run takes the side files as they are and records
// them, without ingesting anything again; from then on a change counts.
TEST_F(IngesterTest, ProgressWithoutSideFilesIsCompletedWithoutReingest) {
  WriteFile(gqa_ / "train.jsonl", Rows(0, 5));
  const fs::path db = Db("db");
  ASSERT_THAT(Run(db), IsOk());
  auto forget_side_files = [&] {
    auto store = storage::Store::Open({.path = db.string()});
    ASSERT_THAT(store, IsOk());
    storage::StoreWriteBatch batch;
    ASSERT_THAT((*store)->ForEachProgress([&](absl::string_view key, const storage::FileProgress& p) {
      storage::FileProgress old = p;
      EXPECT_TRUE(old.side_known);
      old.side_known = false;
      old.side_files.clear();
      batch.PutProgress(key, old);
      return true;
    }),
                IsOk());
    ASSERT_THAT((*store)->Write(&batch), IsOk());
  };
  forget_side_files();
  WriteFile(gqa_ / "instruction.json", "[\"Answer briefly.\"]");
  auto upgraded = Run(db);
  ASSERT_THAT(upgraded, IsOk());
  EXPECT_EQ(File(*upgraded, "train.jsonl").status, FileStatus::kAlreadyIngested);
  EXPECT_EQ(upgraded->rows, 0u);

  WriteFile(gqa_ / "instruction.json", "[\"Answer in one word.\"]");
  auto changed = Run(db);
  ASSERT_THAT(changed, IsOk());
  EXPECT_EQ(File(*changed, "train.jsonl").status, FileStatus::kReingested);
  EXPECT_EQ(Verify(db).digest, CleanDigest("clean"));
}

// Same size and modification time, other bytes: the quick check trusts the
// stat; --verify-sources re-hashes and finds the change. A file only touched
// is re-hashed once, found unchanged, and skipped.
TEST_F(IngesterTest, VerifySourcesFindsWhatTheQuickCheckCannot) {
  const fs::path train = gqa_ / "train.jsonl";
  WriteFile(train, Rows(0, 10));
  SetMtimeSecondsAgo(train, 3600);
  const fs::path db = Db("db");
  ASSERT_THAT(Run(db), IsOk());

  struct stat before;
  ASSERT_EQ(::stat(train.c_str(), &before), 0);
  std::string other = Rows(0, 10);
  other.replace(other.find("thing 3"), 7, "thing Z");
  {
    std::fstream f(train, std::ios::in | std::ios::out | std::ios::binary);  // in place: same inode
    f << other;
  }
  struct timespec times[2] = {before.st_atim, before.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, train.c_str(), times, 0), 0);
  auto quick = Run(db);
  ASSERT_THAT(quick, IsOk());
  EXPECT_EQ(File(*quick, "train.jsonl").status, FileStatus::kAlreadyIngested);

  IngestOptions verify;
  verify.verify_sources = true;
  auto full = Run(db, verify);
  ASSERT_THAT(full, IsOk());
  EXPECT_EQ(File(*full, "train.jsonl").status, FileStatus::kReingested);
  EXPECT_EQ(Verify(db).digest, CleanDigest("clean"));

  // Touched only: re-hashed, unchanged, skipped.
  SetMtimeSecondsAgo(train, 60);
  auto touched = Run(db);
  ASSERT_THAT(touched, IsOk());
  EXPECT_EQ(File(*touched, "train.jsonl").status, FileStatus::kAlreadyIngested);
  EXPECT_EQ(touched->rows, 0u);
}

// A FIFO named like a data file or a pool is refused with the reason; the run
// neither hangs nor loses the other files.
TEST_F(IngesterTest, FifosAreRejectedWithoutBlocking) {
  WriteFile(gqa_ / "train.jsonl", Rows(0, 5));
  ASSERT_EQ(::mkfifo((gqa_ / "validation.jsonl").c_str(), 0600), 0);
  const fs::path db = Db("db");
  auto r = Run(db);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(File(*r, "validation.jsonl").status, FileStatus::kFailed);
  EXPECT_EQ(File(*r, "train.jsonl").rows, 5u);
  EXPECT_EQ(r->ExitCode(), 3);
  EXPECT_THAT(Rejects(db), HasSubstr("is a FIFO (named pipe), not a regular file"));

  fs::remove(gqa_ / "validation.jsonl");
  fs::remove(gqa_ / "instruction.json");
  ASSERT_EQ(::mkfifo((gqa_ / "instruction.json").c_str(), 0600), 0);
  WriteFile(gqa_ / "test.jsonl", Rows(50, 53));
  auto p = Run(Db("db2"));
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(p->rows, 0u);
  EXPECT_THAT(Rejects(Db("db2")), HasSubstr("instruction.json is a FIFO"));
}

// Rows without their own instruction need a usable pool: a missing or
// malformed pool rejects them naming the file; rows with their own
// instruction are kept. Nothing is served with an empty instruction.
TEST_F(IngesterTest, RowsWithoutAUsableInstructionPoolAreRejected) {
  std::string mixed = Rows(0, 4);
  for (int i = 4; i < 7; ++i) absl::StrAppend(&mixed, Row(i, "Say what you see."), "\n");
  WriteFile(gqa_ / "train.jsonl", mixed);
  struct Case {
    std::string pool;  // "" = no pool file
    std::string reason;
  };
  const Case cases[] = {
      {"", "has no instructions.json / instruction.json"},
      {"[\"Answer.\", 3]", "instruction.json: instruction entry 1 is not a string"},
      {"[\"Answer.\", ", "instruction.json: not valid JSON"},
      {"[]", "holds no instructions"},
      {"[\"\"]", "is an empty string"},
      {"{\"prompts\": [\"x\"]}", "expected a JSON array of strings"},
  };
  int k = 0;
  for (const Case& c : cases) {
    fs::remove(gqa_ / "instruction.json");
    if (!c.pool.empty()) WriteFile(gqa_ / "instruction.json", c.pool);
    const fs::path db = Db(absl::StrCat("db", k++));
    auto r = Run(db);
    ASSERT_THAT(r, IsOk());
    EXPECT_EQ(r->ExitCode(), 3) << c.pool;
    EXPECT_EQ(r->rows, 3u) << c.pool;  // the rows with their own instruction
    const std::string rejects = Rejects(db);
    EXPECT_THAT(rejects, HasSubstr("missing instruction: the row has none, and ")) << c.pool;
    EXPECT_THAT(rejects, HasSubstr(c.reason)) << c.pool;
    auto store = storage::Store::Open({.path = db.string(), .read_only = true});
    ASSERT_THAT(store, IsOk());
    ASSERT_THAT((*store)->ForEachInstance([](storage::Instance&& x) {
      EXPECT_EQ(x.instruction, "Say what you see.");
      return true;
    }), IsOk());
  }
}

// A placeholder the row cannot fill is never served unsubstituted.
TEST_F(IngesterTest, UnfillablePlaceholdersAreRejected) {
  WriteFile(gqa_ / "instruction.json", "[\"Is [HYPO] true of the image?\"]");
  WriteFile(gqa_ / "train.jsonl", Rows(0, 2) + Row(2, "Does [HYPO] hold?") + "\n");
  const fs::path db = Db("db");
  auto r = Run(db);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->rows, 0u);
  EXPECT_EQ(r->rejected, 3u);
  const std::string rejects = Rejects(db);
  EXPECT_THAT(rejects, HasSubstr("the task's instructions use [HYPO], and the row gives nothing"));
  EXPECT_THAT(rejects, HasSubstr("the row's instruction uses [HYPO], and the row gives nothing"));
}

// A rejects file that cannot be written fails the run before the commit that
// would cover its records; a re-run writes them all, once.
TEST_F(IngesterTest, RejectWriteFailureIsFatalAndRedoneByTheNextRun) {
  std::string lines = Rows(0, 3) + "{not json\n" + Rows(3, 6) + "[1]\n";
  WriteFile(gqa_ / "train.jsonl", lines);
  const fs::path db = Db("db");
  IngestOptions full;
  full.rejects_path = "/dev/full";
  EXPECT_THAT(Run(db, full), StatusIs(absl::StatusCode::kUnavailable,
                                      HasSubstr("cannot write the rejects file /dev/full: No space left")));
  auto again = Run(db);
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->ExitCode(), 3);
  EXPECT_EQ(File(*again, "train.jsonl").rejected, 2u);
  const std::string rejects = Rejects(db);
  EXPECT_EQ(std::count(rejects.begin(), rejects.end(), '\n'), 2);
  EXPECT_EQ(File(*again, "train.jsonl").rows, 6u);
  EXPECT_EQ(Verify(db).instances, 6u);
}

// Records past the committed length (written by a run killed before its
// commit) are cut by the next run, even one that rejects nothing.
TEST_F(IngesterTest, UncommittedRejectRecordsAreCut) {
  WriteFile(gqa_ / "train.jsonl", Rows(0, 3) + "{not json\n");
  const fs::path db = Db("db");
  ASSERT_THAT(Run(db), IsOk());
  const std::string committed = Rejects(db);
  {
    std::ofstream f(db / "rejects.jsonl", std::ios::app);
    f << "{\"file\": \"from a killed run\"}\n{\"cut mid-";
  }
  auto r = Run(db);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(Rejects(db), committed);
}

// Two files of one group (canonical JSONL): a change in one re-ingests both;
// a change when the other is not part of the run is refused, not half-done.
TEST_F(IngesterTest, AChangedFileReingestsItsWholeGroup) {
  const fs::path a = dir_.path() / "a.jsonl", b = dir_.path() / "b.jsonl";
  auto canonical = [](int from, int to) {
    std::string out;
    for (int i = from; i < to; ++i) {
      absl::StrAppend(&out, "{\"instruction\": \"Describe.\", \"inputs\": \"\", \"outputs\": \"o", i,
                      "\", \"image_base64_str\": [\"", ImageB64(i), "\"]}\n");
    }
    return out;
  };
  WriteFile(a, canonical(0, 5));
  WriteFile(b, canonical(5, 9));
  IngestOptions both;
  both.sources = {a.string(), b.string()};
  both.discover = {"mine", "train", "en", {}};
  const fs::path db = Db("db");
  ASSERT_THAT(Run(db, both), IsOk());

  WriteFile(a, canonical(0, 3));
  auto r = Run(db, both);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(File(*r, "a.jsonl").status, FileStatus::kReingested);
  EXPECT_EQ(File(*r, "b.jsonl").status, FileStatus::kReingested);
  EXPECT_EQ(Verify(db).instances, 7u);
  IngestOptions clean = both;
  auto c = Run(Db("clean"), clean);
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(Verify(db).digest, Verify(Db("clean")).digest);

  WriteFile(a, canonical(0, 2));
  IngestOptions only_a = both;
  only_a.sources = {a.string()};
  auto refused = Run(db, only_a);
  ASSERT_THAT(refused, IsOk());
  EXPECT_EQ(refused->ExitCode(), 3);
  EXPECT_EQ(File(*refused, "a.jsonl").status, FileStatus::kFailed);
  EXPECT_THAT(Rejects(db), HasSubstr("b.jsonl, which this run does not ingest: run ingest with every source"));
  EXPECT_EQ(Verify(db).instances, 7u);  // untouched
}

// A task whose rows need a class table (ss labels.json, imagenet mapping.txt)
// and whose table is defective is rejected with the side file named; the
// store gets none of its rows mapped without it.
TEST_F(IngesterTest, DefectiveClassTablesRejectTheirTasksFiles) {
  const fs::path ss = dir_.path() / "src" / "data" / "classification" / "ss";
  WriteFile(ss / "instructions.json", "[\"Which action is shown?\"]");
  std::string rows;
  for (int i = 0; i < 3; ++i) {
    absl::StrAppend(&rows, "{\"video_str\": [\"", ImageB64(i), "\", \"", ImageB64(i + 1), "\"], \"label\": \"", i,
                    "\"}\n");
  }
  WriteFile(ss / "train.jsonl", rows);
  WriteFile(gqa_ / "train.jsonl", Rows(0, 4));
  WriteFile(ss / "labels.json", "{\"pushing\": \"0\", \"pulling\": ");  // cut short
  const fs::path db = Db("db");
  auto r = Run(db);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(File(*r, "ss/train.jsonl").status, FileStatus::kFailed);
  EXPECT_EQ(File(*r, "gqa/train.jsonl").rows, 4u);
  EXPECT_THAT(Rejects(db), HasSubstr("labels.json: not valid JSON"));

  fs::remove(ss / "labels.json");
  ASSERT_EQ(::mkfifo((ss / "labels.json").c_str(), 0600), 0);
  auto fifo = Run(Db("db2"));
  ASSERT_THAT(fifo, IsOk());
  EXPECT_EQ(File(*fifo, "ss/train.jsonl").status, FileStatus::kFailed);
  EXPECT_THAT(Rejects(Db("db2")), HasSubstr("labels.json is a FIFO (named pipe), not a regular file"));

  fs::remove(ss / "labels.json");
  WriteFile(ss / "labels.json",
            "{\"pushing\": \"0\", \"pulling\": \"1\", \"lifting\": \"2\", \"dropping\": \"3\"}");
  auto good = Run(Db("db3"));
  ASSERT_THAT(good, IsOk());
  EXPECT_EQ(File(*good, "ss/train.jsonl").rows, 3u);
  EXPECT_EQ(good->ExitCode(), 0);
}

// Rows missing their task's keys or with a label outside its vocabulary are
// rejected naming the key; every valid row of the same files is stored, and
// no stored snli-ve row lacks its hypothesis.
TEST_F(IngesterTest, RowsMissingTheirTasksKeysAreRejectedAndTheRestKept) {
  const fs::path snli = dir_.path() / "src" / "data" / "classification" / "snli-ve";
  const fs::path vqa = dir_.path() / "src" / "data" / "vqa" / "vqav2";
  WriteFile(snli / "instructions.json", "[\"Is [HYPO] true of the image?\"]");
  WriteFile(vqa / "instructions.json", "[\"Answer the question.\"]");
  auto snli_row = [](int i, const std::string& fields) {
    return absl::StrCat("{\"image_base64_str\": \"", ImageB64(i), "\"", fields, "}\n");
  };
  WriteFile(snli / "esnlive_train.jsonl",
            snli_row(1, ", \"hypothesis\": \"a dog runs\", \"label\": \"entailment\"") +
                snli_row(2, ", \"label\": \"entailment\"") +                                  // line 2
                snli_row(3, ", \"hypothesis\": \"a cat sits\", \"label\": \"perhaps\"") +      // line 3
                snli_row(4, ", \"hypothesis\": \"two men\", \"gold_label\": \"Contradiction\""));
  WriteFile(vqa / "train.jsonl",
            absl::StrCat("{\"img_str\": \"", ImageB64(5), "\", \"question\": \"How many?\", \"original_answer\": \"2\"}\n",
                         "{\"img_str\": \"", ImageB64(6), "\", \"original_answer\": \"3\"}\n"));  // line 2
  const fs::path db = Db("db");
  auto r = Run(db);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->ExitCode(), 3);
  EXPECT_EQ(File(*r, "esnlive_train.jsonl").rows, 2u);
  EXPECT_EQ(File(*r, "vqav2/train.jsonl").rows, 1u);
  const std::string rejects = Rejects(db);
  EXPECT_THAT(rejects, HasSubstr("\"line\":2,\"task\":\"snli-ve\",\"split\":\"train\",\"lang\":\"en\","
                                 "\"reason\":\"missing hypothesis"));
  EXPECT_THAT(rejects, HasSubstr("\"line\":3,\"task\":\"snli-ve\",\"split\":\"train\",\"lang\":\"en\","
                                 "\"reason\":\"field 'label': 'perhaps' is not one of"));
  EXPECT_THAT(rejects, HasSubstr("\"line\":2,\"task\":\"vqa-v2\",\"split\":\"train\",\"lang\":\"en\","
                                 "\"reason\":\"missing question"));
  auto store = storage::Store::Open({.path = db.string(), .read_only = true});
  ASSERT_THAT(store, IsOk());
  std::vector<std::string> outputs;
  ASSERT_THAT((*store)->ScanGroup({"snli-ve", "train", "en"}, 0, 0, [&](storage::Instance&& x) {
    EXPECT_EQ(x.instruction, "");  // drawn from the pool when served, [HYPO] filled
    EXPECT_EQ(x.template_vars.size(), 1u);
    outputs.push_back(x.outputs);
    return true;
  }), IsOk());
  EXPECT_THAT(outputs, ::testing::ElementsAre("yes", "no"));
}


// M3IT-80: whatever the budget for English rows loaded ahead (none, less than
// one file, some, all) and however many workers, every translated row takes
// its images from its own task's and split's English file: the store is the
// same, and a row's images are the English row's of the same line. Random
// tasks, splits, languages and row counts; each English file has images of
// its own, so a file joined to another task's rows would change the store.
TEST_F(IngesterTest, TranslatedRowsJoinTheirOwnEnglishRowsWhateverIsLoadedAhead) {
  const std::vector<std::string> kTasks = {"vqa-v2", "okvqa", "gqa", "text-vqa", "docvqa", "clevr"};
  const std::vector<std::string> kLangs = {"fr", "sw", "zh"};
  std::mt19937 rng(80);
  for (int round = 0; round < 3; ++round) {
    const fs::path root = dir_.path() / absl::StrCat("m80-", round);
    WriteFile(root / "data" / "instructions" / "fr.jsonl", "\"Répondez.\"\n");
    const int ntasks = std::uniform_int_distribution<int>(2, static_cast<int>(kTasks.size()))(rng);
    std::map<std::string, std::vector<int>> image_of;  // "<task>/<split>" -> image seed per English line
    uint64_t english_bytes = 0;
    int seed = 1000 * round;
    for (int t = 0; t < ntasks; ++t) {
      const std::string& task = kTasks[t];
      for (auto [raw, split] : {std::pair{"train_500", "train"}, std::pair{"val_500", "validation"}}) {
        const int n = std::uniform_int_distribution<int>(1, 6)(rng);
        std::string english, translated;
        for (int i = 0; i < n; ++i) {
          image_of[absl::StrCat(task, "/", split)].push_back(++seed);
          absl::StrAppend(&english, "{\"question\": \"q", i, "\", \"img_str\": \"", ImageB64(seed),
                          "\", \"original_answer\": \"a", i, "\"}\n");
          absl::StrAppend(&translated, "{\"instruction\": \"Répondez.\", \"input\": \"", task, " ", split, " ", i,
                          "\", \"output\": \"r", i, "\"}\n");
        }
        WriteFile(root / "data" / task / absl::StrCat(raw, ".jsonl"), english);
        english_bytes += english.size();
        const int nlangs = std::uniform_int_distribution<int>(1, 3)(rng);
        for (int l = 0; l < nlangs; ++l) {
          WriteFile(root / "data" / task / absl::StrCat(task, "_", split, "_", kLangs[l], ".jsonl"), translated);
        }
      }
    }
    auto ingest = [&](const std::string& name, uint64_t ahead, int threads) -> Hash128 {
      const fs::path db = Db(absl::StrCat(name, "-", round));
      auto store = storage::Store::Open({.path = db.string(), .bulk_ingest = true});
      EXPECT_THAT(store, IsOk());
      IngestOptions o;
      o.sources = {root.string()};
      o.threads = threads;
      o.chunk_lines = 2;
      o.english_ahead_bytes = ahead;
      auto r = Ingest(store->get(), *registry_, o);
      EXPECT_THAT(r, IsOk());
      EXPECT_EQ(r->ExitCode(), 0) << Rejects(db);
      store->reset();
      return Verify(db).digest;
    };
    const Hash128 loaded_when_needed = ingest("none", 0, 1);
    const uint64_t budgets[] = {1, english_bytes / 3 + 1, english_bytes, 256u << 20};
    for (uint64_t ahead : budgets) {
      EXPECT_EQ(ingest(absl::StrCat("ahead", ahead), ahead, std::uniform_int_distribution<int>(1, 4)(rng)),
                loaded_when_needed)
          << "budget " << ahead << " of " << english_bytes << " bytes";
    }
    // And the join itself: each translated row has the image of its English line.
    auto store = storage::Store::Open({.path = Db(absl::StrCat("ahead", 256u << 20, "-", round)).string(),
                                       .read_only = true});
    ASSERT_THAT(store, IsOk());
    size_t rows = 0;
    ASSERT_THAT((*store)->ForEachInstance([&](storage::Instance&& x) {
      if (x.group.lang == "en") return true;
      const std::vector<std::string> words = absl::StrSplit(x.inputs, ' ');
      EXPECT_EQ(words.size(), 3u) << x.inputs;
      if (words.size() != 3) return true;
      const std::vector<int>& seeds = image_of[absl::StrCat(words[0], "/", words[1])];
      const size_t line = std::stoul(words[2]);
      EXPECT_LT(line, seeds.size());
      EXPECT_EQ(x.images.size(), 1u);
      if (line < seeds.size() && x.images.size() == 1) {
        EXPECT_EQ(x.images[0], ContentHash(ImageBytes(seeds[line]))) << x.inputs;
      }
      ++rows;
      return true;
    }), IsOk());
    EXPECT_GT(rows, 0u);
  }
}

}  // namespace
}  // namespace m3serve::ingest
